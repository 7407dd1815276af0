"""Pick the text-to-audio backend named in the config and load it."""
from __future__ import annotations

from synthio_ray.config import T2AConfig
from synthio_ray.models.base import TextToAudio
from synthio_ray.models.paths import resolve_model_path
from synthio_ray.models.t2a_adapter import is_adapter_folder

__all__ = ["load_t2a", "t2a_settings"]


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


def t2a_settings(cfg: T2AConfig, path: str | None = None) -> dict:
    """``{"steps", "cfg_scale"}`` that generation with ``cfg`` uses: the configured values, a null as the
    backend's own default, read from config files only (no weights; what the loaded model's ``steps`` /
    ``cfg_scale`` then hold)."""
    steps, cfg_scale = cfg.steps, cfg.cfg_scale
    if steps is None or cfg_scale is None:
        if cfg.backend == "stable_audio3":
            from diffusers import FlowMatchEulerDiscreteScheduler

            from synthio_ray.models.t2a_stable_audio3 import pipeline_defaults

            where = resolve_model_path(path or cfg.path)
            own = pipeline_defaults(FlowMatchEulerDiscreteScheduler.load_config(where, subfolder="scheduler"))
        elif cfg.backend == "stable_audio_tools":
            from synthio_ray.models import t2a_stable_audio_tools as m

            own = (m.DEFAULT_STEPS, m.DEFAULT_CFG_SCALE)
        else:
            from synthio_ray.models import t2a_stable_audio as m

            own = (m.DEFAULT_STEPS, m.DEFAULT_CFG_SCALE)
        steps = own[0] if steps is None else steps
        cfg_scale = own[1] if cfg_scale is None else cfg_scale
    return {"steps": int(steps), "cfg_scale": float(cfg_scale)}
