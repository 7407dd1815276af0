"""Pick the text-to-audio backend named in the config and load it."""
from __future__ import annotations

from synthio_ray.config import T2AConfig
from synthio_ray.models.base import TextToAudio
from synthio_ray.models.paths import resolve_model_path
from synthio_ray.models.t2a_adapter import is_adapter_folder

__all__ = ["load_t2a"]


def load_t2a(cfg: T2AConfig, path: str | None = None) -> TextToAudio:
    """Load ``cfg.backend`` from ``path`` (default ``cfg.path``; ``zoo:`` names build the tiny model; an
    adapter folder from jobs/align.py loads onto the base model it names)."""
    where = resolve_model_path(path or cfg.path)
    if cfg.backend != "stable_audio" and is_adapter_folder(where):
        raise ValueError(f"{where} holds LoRA adapters for a diffusers Stable Audio pipeline: they load with "
                         f"models.t2a.backend=stable_audio, not {cfg.backend!r}")
    if cfg.backend == "stable_audio":
        from synthio_ray.models.t2a_stable_audio import StableAudioT2A

        return StableAudioT2A(where, cfg.device, cfg.dtype, cfg.steps, cfg.cfg_scale, cfg.negative_prompt,
                              crop_latents=cfg.crop_latents, decode_batch=cfg.decode_batch,
                              decode_margin=cfg.decode_margin)
    if cfg.backend == "stable_audio3":
        from synthio_ray.models.t2a_stable_audio3 import StableAudio3T2A

        return StableAudio3T2A(where, cfg.device, cfg.dtype, cfg.steps, cfg.cfg_scale, cfg.negative_prompt)
    if cfg.backend == "stable_audio_tools":
        from synthio_ray.models.t2a_stable_audio_tools import StableAudioToolsT2A

        return StableAudioToolsT2A(where, cfg.device, cfg.steps, cfg.cfg_scale, cfg.negative_prompt,
                                   dtype=cfg.dtype)
    raise ValueError(f"unknown T2A backend {cfg.backend!r}")
