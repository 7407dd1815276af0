"""Stable Audio 3 text-to-audio through diffusers' ``StableAudio3Pipeline`` format.

Stable Audio 3 small/medium are distilled rectified-flow models: about 8 sampling steps with CFG
off, against Stable Audio Open's 100-250 guided steps, which makes them the fast choice. The
pipeline takes one duration per call, so a batch is split into groups of equal duration (one
group for datasets of fixed-length clips); each row still gets its own seeded generator, so its
audio does not depend on its batch mates.
"""
from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np
import torch

from synthio_ray.models.base import TextToAudio, pick_device, resolve_dtype
from synthio_ray.models.paths import quiet_hub_progress

__all__ = ["StableAudio3T2A", "pipeline_defaults"]


def pipeline_defaults(scheduler_config: dict) -> tuple[int, float]:
    """(steps, cfg_scale) ``StableAudio3Pipeline.__call__`` uses when given none, for a checkpoint's scheduler
    config: steps as the installed diffusers picks them for ``num_inference_steps=None`` (8 with the distilled
    checkpoint's ``stochastic_sampling`` scheduler, 100 without), guidance from its signature (1.0 = off)."""
    from diffusers import StableAudio3Pipeline

    guidance = inspect.signature(StableAudio3Pipeline.__call__).parameters["guidance_scale"].default
    return (8 if scheduler_config.get("stochastic_sampling") else 100), float(guidance)


class StableAudio3T2A(TextToAudio):
    """Batched generation with a diffusers ``StableAudio3Pipeline`` checkpoint.

    ``steps`` / ``cfg_scale`` None = the pipeline's own defaults (:func:`pipeline_defaults`: 8 steps for the
    distilled sampler, CFG 1.0 = off, as CFG is baked into the distilled weights; use > 1 only with the
    non-distilled base model), never Stable Audio Open's 100 steps and CFG 7.
    """

    def __init__(self, path: str, device: str = "auto", dtype: str = "auto", steps: int | None = None,
                 cfg_scale: float | None = None, negative_prompt: str | None = None, pipeline: Any = None):
        from diffusers import StableAudio3Pipeline

        quiet_hub_progress()
        self.device = pick_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.pipe = pipeline or StableAudio3Pipeline.from_pretrained(path, dtype=self.dtype)
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.model_id = str(path)
        own_steps, own_cfg = pipeline_defaults(dict(self.pipe.scheduler.config))
        self.steps = own_steps if steps is None else int(steps)
        self.cfg_scale = own_cfg if cfg_scale is None else float(cfg_scale)
        self.negative_prompt = negative_prompt
        self.sample_rate = int(self.pipe.vae.config.sampling_rate)
        self.max_seconds = float(self.pipe.duration_embedder.config.get("max_val", 384.0))
        self.channels = int(getattr(self.pipe.vae.config, "audio_channels", 2))

    def generate(self, captions: list[str], seconds: list[float], seeds: list[int], *,
                 steps: int | None = None, cfg_scale: float | None = None,
                 negative_prompt: str | None = None) -> list[np.ndarray]:
        if not (len(captions) == len(seconds) == len(seeds)):
            raise ValueError("captions, seconds and seeds must have the same length")
        bad = [s for s in seconds if s <= 0 or s > self.max_seconds]
        if bad:
            raise ValueError(f"durations must be in (0, {self.max_seconds:g}] s for this model, got {bad[:3]}")
        gen_device = "cpu" if self.device == "mps" else self.device
        groups: dict[float, list[int]] = {}
        for i, s in enumerate(seconds):
            groups.setdefault(round(float(s), 3), []).append(i)
        out: list[np.ndarray | None] = [None] * len(captions)
        cfg = self.cfg_scale if cfg_scale is None else cfg_scale
        neg = negative_prompt if negative_prompt is not None else self.negative_prompt
        for duration, idx in groups.items():
            gens = [torch.Generator(gen_device).manual_seed(int(seeds[i])) for i in idx]
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                audio = self.pipe([captions[i] for i in idx], duration=duration,
                                  num_inference_steps=steps or self.steps, guidance_scale=cfg,
                                  negative_prompt=neg if cfg > 1.0 else None, generator=gens,
                                  output_type="pt").audios
            audio = audio.float().cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = audio[j, :, :int(round(seconds[i] * self.sample_rate))]
        return out  # type: ignore[return-value]
