"""``load_captioner(cfg)``: the audio captioner a :class:`~synthio_ray.config.CaptionerConfig` names.

Backends ``manifest`` (the dataset's caption column) and ``none`` (label only) involve no model: the
pipeline takes captions from the data, so they load as ``None``.
"""
from __future__ import annotations

from synthio_ray.models.base import Captioner
from synthio_ray.models.paths import resolve_model_path

__all__ = ["load_captioner"]


def load_captioner(cfg) -> Captioner | None:
    """``cfg``: a ``CaptionerConfig``. ``transformers`` -> a Qwen2-Audio captioner; ``manifest`` and
    ``none`` -> ``None``."""
    if cfg.backend in ("none", "manifest"):
        return None
    if cfg.backend == "transformers":
        if not cfg.path:
            raise ValueError("captioner backend 'transformers' needs a model path (e.g. zoo:captioner or "
                             "Qwen/Qwen2-Audio-7B-Instruct)")
        from synthio_ray.models.captioner_qwen2audio import Qwen2AudioCaptioner

        return Qwen2AudioCaptioner(resolve_model_path(cfg.path), device=cfg.device, dtype=cfg.dtype,
                                   prompt=cfg.prompt, max_tokens=cfg.max_tokens)
    raise ValueError(f"unknown captioner backend {cfg.backend!r}: use 'manifest', 'none' or 'transformers'")
