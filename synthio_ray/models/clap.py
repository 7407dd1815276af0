"""``load_clap(cfg)``: the CLAP backend a :class:`~synthio_ray.config.ClapConfig` names."""
from __future__ import annotations

from synthio_ray.models.base import AudioTextModel
from synthio_ray.models.paths import resolve_model_path

__all__ = ["load_clap"]


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
