"""Model locations: ``zoo:<name>`` (the tiny offline zoo, built on first use), a local path, or a hub id."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["resolve_model_path", "model_ref", "quiet_hub_progress"]


def resolve_model_path(path: str) -> str:
    """``zoo:t2a`` -> the zoo folder (built if missing); ``~/x`` -> expanded; hub ids unchanged."""
    if path.startswith("zoo:"):
        from synthio_ray.zoo import build_zoo

        name = path[4:]
        return str(build_zoo(only=[name])[name])
    expanded = os.path.expanduser(path)
    return str(Path(expanded).resolve()) if os.path.exists(expanded) else path


def model_ref(path: str) -> str:
    """A model location as it should be recorded to be found again elsewhere: ``zoo:`` names and hub ids
    unchanged, a local path made absolute (``~`` expanded)."""
    if path.startswith("zoo:"):
        return path
    expanded = os.path.expanduser(path)
    return str(Path(expanded).resolve()) if os.path.exists(expanded) else path


def quiet_hub_progress() -> None:
    """Turn off the per-file loading progress bars of transformers / diffusers (noise in job logs)."""
    try:
        from transformers.utils import logging as tlog

        tlog.disable_progress_bar()
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    try:
        from diffusers.utils import logging as dlog

        dlog.disable_progress_bar()
    except Exception:  # noqa: BLE001
        pass
