"""Stable Audio Open text-to-audio through diffusers' ``StableAudioPipeline`` format.

Loads any diffusers-format Stable Audio checkpoint (``stabilityai/stable-audio-open-1.0``, a local
folder, our aligned checkpoints, the tiny zoo model) and generates a batch of captions in one
denoising loop. Unlike the stock pipeline call, every row has its own duration conditioning and its
own seed (initial noise and the SDE sampler's Brownian tree), so a row's audio does not depend on
the batch it was generated in.

``conditioning`` builds the DiT's text+duration conditioning exactly as the pipeline does; the
alignment job (Diffusion-DPO / ERM) trains through the same function.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from synthio_ray.models.base import TextToAudio, pick_device, resolve_dtype
from synthio_ray.models.paths import quiet_hub_progress

__all__ = ["StableAudioT2A", "DEFAULT_STEPS", "DEFAULT_CFG_SCALE"]

DEFAULT_STEPS, DEFAULT_CFG_SCALE = 100, 7.0   # the paper's sampling for Stable Audio Open (null in the config)

# diffusers' Oobleck VAE still uses torch's old weight_norm: a deprecation, not a problem for users
warnings.filterwarnings("ignore", message=".*weight_norm.*is deprecated", category=FutureWarning)


class StableAudioT2A(TextToAudio):
    """Batched generation with a diffusers ``StableAudioPipeline`` checkpoint.

    ``crop_latents``: denoise only as many latent frames as the clip needs instead of the model's
    full window (Stable Audio Open: 47.5 s). Much faster for short clips; off by default because
    the released model was trained on full windows padded with silence. ``steps`` / ``cfg_scale`` None:
    100 steps, CFG 7.0 (the paper's).
    """

    def __init__(self, path: str, device: str = "auto", dtype: str = "auto", steps: int | None = None,
                 cfg_scale: float | None = None, negative_prompt: str | None = None, crop_latents: bool = False,
                 pipeline: Any = None):
        from diffusers import StableAudioPipeline

        quiet_hub_progress()
        self.device = pick_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.pipe = pipeline or StableAudioPipeline.from_pretrained(path, dtype=self.dtype)
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.model_id = str(path)
        self.steps = DEFAULT_STEPS if steps is None else int(steps)
        self.cfg_scale = DEFAULT_CFG_SCALE if cfg_scale is None else float(cfg_scale)
        self.negative_prompt = negative_prompt
        self.crop_latents = crop_latents
        vae = self.pipe.vae
        self.sample_rate = int(vae.config.sampling_rate)
        self.hop = int(np.prod(vae.config.downsampling_ratios))
        self.window = int(self.pipe.transformer.config.sample_size)
        self.max_seconds = self.window * self.hop / self.sample_rate
        self.channels = int(vae.config.audio_channels)

    # -- conditioning (shared with training) -----------------------------------------------------
    @torch.no_grad()
    def conditioning(self, captions: list[str], seconds: list[float], cfg_scale: float,
                     negative_prompt: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions and durations -> (encoder_hidden_states, global_hidden_states) for the DiT.

        With ``cfg_scale > 1`` the unconditional half comes first (all-zero conditioning, or the
        negative prompt's), as in the pipeline; shapes are then ``(2B, ...)``.
        """
        return self._conditioning(captions, seconds, cfg_scale, negative_prompt)

    def _conditioning(self, captions, seconds, cfg_scale, negative_prompt):
        pipe, b = self.pipe, len(captions)
        do_cfg = cfg_scale > 1.0
        neg = [negative_prompt] * b if (do_cfg and negative_prompt) else None
        text = pipe.encode_prompt(captions, self.device, do_cfg, neg)
        start, end = pipe.encode_duration([0.0] * b, [float(s) for s in seconds], self.device,
                                          do_cfg and neg is not None, b)
        enc = torch.cat([text, start, end], dim=1)
        glob = torch.cat([start, end], dim=2)
        if do_cfg and neg is None:
            enc = torch.cat([torch.zeros_like(enc), enc], dim=0)
            glob = torch.cat([glob, glob], dim=0)
        return enc, glob

    def latent_frames(self, seconds: float) -> int:
        """Latent frames denoised for a clip of ``seconds``."""
        if not self.crop_latents:
            return self.window
        return min(self.window, max(1, math.ceil(seconds * self.sample_rate / self.hop)))

    # -- generation --------------------------------------------------------------------------------
    def generate(self, captions: list[str], seconds: list[float], seeds: list[int], *,
                 steps: int | None = None, cfg_scale: float | None = None,
                 negative_prompt: str | None = None) -> list[np.ndarray]:
        if not (len(captions) == len(seconds) == len(seeds)):
            raise ValueError("captions, seconds and seeds must have the same length")
        too_long = [s for s in seconds if s > self.max_seconds + 1e-6 or s <= 0]
        if too_long:
            raise ValueError(f"durations must be in (0, {self.max_seconds:.2f}] s for this model, got {too_long[:3]}")
        out: list[np.ndarray | None] = [None] * len(captions)
        groups: dict[int, list[int]] = {}
        for i, s in enumerate(seconds):
            groups.setdefault(self.latent_frames(s), []).append(i)
        for frames, idx in groups.items():
            audio = self._denoise([captions[i] for i in idx], [seconds[i] for i in idx],
                                  [seeds[i] for i in idx], frames,
                                  steps or self.steps, self.cfg_scale if cfg_scale is None else cfg_scale,
                                  negative_prompt if negative_prompt is not None else self.negative_prompt)
            for j, i in enumerate(idx):
                n = int(round(seconds[i] * self.sample_rate))
                out[i] = audio[j, :, :n]
        return out  # type: ignore[return-value]

    @torch.no_grad()
    def _denoise(self, captions, seconds, seeds, frames, steps, cfg_scale, negative_prompt) -> np.ndarray:
        pipe = self.pipe
        enc, glob = self._conditioning(captions, seconds, cfg_scale, negative_prompt)
        do_cfg = cfg_scale > 1.0
        sched = type(pipe.scheduler).from_config(pipe.scheduler.config)  # fresh state per call
        sched.set_timesteps(steps, device=self.device)
        gen_device = "cpu" if self.device == "mps" else self.device
        gens = [torch.Generator(gen_device).manual_seed(int(s)) for s in seeds]
        shape = (1, pipe.transformer.config.in_channels, frames)
        latents = torch.cat([torch.randn(shape, generator=g, device=gen_device, dtype=torch.float32)
                             for g in gens]).to(self.device, enc.dtype)
        latents = latents * sched.init_noise_sigma
        with warnings.catch_warnings():  # torchsde warns at the sampler's end points: harmless
            warnings.filterwarnings("ignore", message="Should have", category=UserWarning)
            latents = self._loop(sched, latents, enc, glob, gens, cfg_scale, do_cfg)
        audio = pipe.vae.decode(latents).sample
        return audio.float().cpu().numpy()

    def _loop(self, sched, latents, enc, glob, gens, cfg_scale, do_cfg):
        from diffusers.models.embeddings import get_1d_rotary_pos_embed

        pipe = self.pipe
        rotary = get_1d_rotary_pos_embed(pipe.rotary_embed_dim, latents.shape[2] + glob.shape[1],
                                         use_real=True, repeat_interleave_real=False)
        for t in sched.timesteps:
            x = torch.cat([latents] * 2) if do_cfg else latents
            x = sched.scale_model_input(x, t)
            pred = pipe.transformer(x, t.unsqueeze(0), encoder_hidden_states=enc, global_hidden_states=glob,
                                    rotary_embedding=rotary, return_dict=False)[0]
            if do_cfg:
                uncond, cond = pred.chunk(2)
                pred = uncond + cfg_scale * (cond - uncond)
            latents = sched.step(pred, t, latents, generator=gens).prev_sample
        return latents
