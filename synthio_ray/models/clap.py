"""``load_clap(cfg)``: the CLAP backend a :class:`~synthio_ray.config.ClapConfig` names, and the one way audio
files reach it (``clap_input`` / ``embed_files``), shared by the filter, the threshold calibration, CLAP
fine-tuning, zero-shot CLAP, retrieval and the analyses, so they all see a clip exactly alike."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from synthio_ray.data.audio import load_audio
from synthio_ray.models.base import AudioTextModel
from synthio_ray.models.paths import resolve_model_path

__all__ = ["load_clap", "clap_input", "embed_files"]


def load_clap(cfg) -> AudioTextModel:
    """``cfg``: a ``ClapConfig``. ``transformers`` -> :class:`~synthio_ray.models.clap_hf.HFClap` (folder,
    hub id or ``zoo:clap``); ``laion_clap`` -> :class:`~synthio_ray.models.clap_laion.LaionClap` (a ``.pt``
    file; runs in float32, ``cfg.dtype`` is not used). The scoring form and text template stay with the
    caller (``cfg.score``, ``cfg.text_template``)."""
    path = resolve_model_path(cfg.path)
    if cfg.backend == "transformers":
        from synthio_ray.models.clap_hf import HFClap

        return HFClap(path, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size)
    if cfg.backend == "laion_clap":
        from synthio_ray.models.clap_laion import LaionClap

        return LaionClap(path, device=cfg.device, batch_size=cfg.batch_size)
    raise ValueError(f"unknown CLAP backend {cfg.backend!r}: use 'transformers' or 'laion_clap'")


def clap_input(clap: AudioTextModel, path: str | Path) -> np.ndarray:
    """An audio file as CLAP gets it: float32 ``(frames,)`` mono at ``clap.sample_rate``, its whole length.
    Nothing here pads or trims: the backend fits the clip to its window as the checkpoint was trained (the
    processor's repeat-padding of short clips, a seeded crop of long ones). Raises ``AudioError``."""
    return load_audio(path, sample_rate=clap.sample_rate)[0]


def embed_files(clap: AudioTextModel, paths: list) -> np.ndarray:
    """Audio files -> ``(N, D)`` L2-normalised CLAP audio embeddings, through :func:`clap_input`."""
    return clap.embed_audio([clap_input(clap, p) for p in paths], clap.sample_rate)
