"""CLAP on a Ray actor, behind the same ``AudioTextModel`` interface: the driver's CLAP for zero-shot rows,
retrieval and analyses when it must not load in the driver (a large checkpoint, or one that asks for a GPU).

``load_placed_clap(cfg)``: ``load_clap(cfg.models.clap)`` in this process for a small CLAP on CPU; otherwise a
``RemoteClap`` whose actor reserves ``resources.clap_gpus`` GPUs and ``resources.cpus_per_actor`` CPUs and
loads the model there. Waves go to the actor ``CHUNK`` at a time, two chunks in flight (float32 numpy in,
embeddings out), so a large pool never sits in the object store at once.
"""
from __future__ import annotations

import numpy as np

from synthio_ray.models.base import AudioTextModel

__all__ = ["RemoteClap", "load_placed_clap", "CHUNK"]

CHUNK = 64


class _ClapHost:
    """The actor: one loaded CLAP."""

    def __init__(self, clap_cfg):
        from synthio_ray.models.clap import load_clap

        self.model = load_clap(clap_cfg)

    def info(self) -> dict:
        m = self.model
        return {"model_id": m.model_id, "sample_rate": int(m.sample_rate), "logit_scale": float(m.logit_scale),
                "embed_dim": int(getattr(m, "embed_dim", 0) or 0)}

    def embed_audio(self, waves: list[np.ndarray], sample_rate: int) -> np.ndarray:
        return self.model.embed_audio(waves, sample_rate)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return self.model.embed_text(texts)


class RemoteClap(AudioTextModel):
    """An ``AudioTextModel`` whose model lives on a Ray actor (Ray must be initialised)."""

    def __init__(self, clap_cfg, gpus: float = 0.0, cpus: float = 1.0):
        import ray

        self._actor = ray.remote(num_gpus=gpus or 0, num_cpus=cpus)(_ClapHost).remote(clap_cfg)
        info = ray.get(self._actor.info.remote())
        self.model_id, self.sample_rate = info["model_id"], info["sample_rate"]
        self._logit_scale, self.embed_dim = info["logit_scale"], info["embed_dim"]

    @property
    def logit_scale(self) -> float:
        return self._logit_scale

    def _chunks(self, method, items: list, *args) -> np.ndarray:
        import ray

        out, pending = [], None
        for i in range(0, len(items), CHUNK):   # one chunk in flight while the previous one is read back
            ref = method.remote(items[i:i + CHUNK], *args)
            if pending is not None:
                out.append(np.asarray(ray.get(pending), dtype=np.float32))
            pending = ref
        if pending is not None:
            out.append(np.asarray(ray.get(pending), dtype=np.float32))
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), np.float32)

    def embed_audio(self, waves: list[np.ndarray], sample_rate: int) -> np.ndarray:
        return self._chunks(self._actor.embed_audio, list(waves), sample_rate)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return self._chunks(self._actor.embed_text, list(texts))

    def close(self) -> None:
        """End the actor (it also ends with this object's last reference)."""
        import ray

        ray.kill(self._actor)


def load_placed_clap(cfg) -> AudioTextModel:
    """``cfg``: the whole ``Config``. A small CLAP with no GPU loads here; any other on a ``RemoteClap``."""
    from synthio_ray.placement import in_driver

    c, res = cfg.models.clap, cfg.resources
    if in_driver(c.path, res.clap_gpus):
        from synthio_ray.models.clap import load_clap

        return load_clap(c)
    from synthio_ray.pipeline.augment import ensure_ray

    ensure_ray(cfg)
    return RemoteClap(c, gpus=res.clap_gpus, cpus=res.cpus_per_actor)
