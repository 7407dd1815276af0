"""Model locations: ``zoo:<name>`` (the tiny random zoo, built on first use), ``world:<name>`` (the trained
world zoo committed in :mod:`synthio_ray.trained_zoo`), a local path, or a hub id."""
from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["resolve_model_path", "model_ref", "is_builtin", "quiet_hub_progress", "BUILTIN_PREFIXES"]

BUILTIN_PREFIXES = ("zoo:", "world:")


def is_builtin(path: str | None) -> bool:
    """True for the project's own small models (``zoo:`` and ``world:`` names)."""
    return bool(path) and path.startswith(BUILTIN_PREFIXES)


def resolve_model_path(path: str) -> str:
    """``zoo:t2a`` -> the zoo folder (built if missing); ``world:t2a`` -> the trained world model's folder
    (an fp32 copy of the committed weights, made on first use); ``~/x`` -> expanded; hub ids unchanged."""
    if path.startswith("zoo:"):
        from synthio_ray.zoo import build_zoo

        name = path[4:]
        return str(build_zoo(only=[name])[name])
    if path.startswith("world:"):
        from synthio_ray.trained_zoo.export import world_model

        return str(world_model(path[6:]))
    expanded = os.path.expanduser(path)
    return str(Path(expanded).resolve()) if os.path.exists(expanded) else path


def model_ref(path: str) -> str:
    """A model location as it should be recorded to be found again elsewhere: ``zoo:`` / ``world:`` names
    and hub ids unchanged, a local path made absolute (``~`` expanded)."""
    if is_builtin(path):
        return path
    expanded = os.path.expanduser(path)
    return str(Path(expanded).resolve()) if os.path.exists(expanded) else path


def quiet_hub_progress(diffusers: bool = False) -> None:
    """Turn off the per-file loading progress bars of transformers / diffusers (noise in job logs).
    diffusers is quieted when it is already imported, or when ``diffusers=True`` (importing it costs a
    CLAP or LLM server 1.5 s of start-up, and those never use it)."""
    try:
        from transformers.utils import logging as tlog

        tlog.disable_progress_bar()
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    if not (diffusers or "diffusers" in sys.modules):
        return
    try:
        from diffusers.utils import logging as dlog

        dlog.disable_progress_bar()
    except Exception:  # noqa: BLE001
        pass
