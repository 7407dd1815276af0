"""Resumable training state: one file per trainer, written atomically, with the wall time spent so far.

A trainer calls :func:`load_state` once (``None`` on a fresh start) and :func:`save_state` every minute or
so; a killed run (``kill -9``, a session's end) loses at most the work since the last save, and a rerun
with the same budget continues where it stopped until the *total* wall time reaches the budget.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["save_state", "load_state", "Budget", "Every"]


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """``state`` (tensors, optimizer states, plain values) -> ``path``, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: str | Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


class Budget:
    """A training budget across restarts: wall time (``spent`` counts earlier runs' time plus this run's)
    or, when ``steps`` is set, optimizer steps (reproducible whatever else the machine is doing; the
    wall time is then only a cap). ``fraction(step)`` drives the learning-rate schedules."""

    def __init__(self, seconds: float, spent: float = 0.0, steps: int | None = None):
        self.seconds, self.steps = float(seconds), steps
        self._before, self._start = float(spent), time.monotonic()

    @property
    def spent(self) -> float:
        return self._before + time.monotonic() - self._start

    def fraction(self, step: int) -> float:
        if self.steps:
            return min(step / self.steps, 1.0)
        return min(self.spent / max(self.seconds, 1e-9), 1.0)

    def done(self, step: int) -> bool:
        return bool(self.steps and step >= self.steps) or self.spent >= self.seconds


class Every:
    """``due()`` is True once per ``seconds`` of wall time (and whenever ``force``): when to save or log."""

    def __init__(self, seconds: float):
        self.seconds, self._last = float(seconds), time.monotonic()

    def due(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._last > self.seconds:
            self._last = now
            return True
        return False
