"""Stable Audio Open text-to-audio through diffusers' ``StableAudioPipeline`` format.

Loads any diffusers-format Stable Audio checkpoint (``stabilityai/stable-audio-open-1.0``, a local
folder, our aligned checkpoints: merged pipelines or LoRA adapter folders, see ``t2a_adapter``, the tiny
zoo model) and generates a batch of captions in one
denoising loop. Unlike the stock pipeline call, every row has its own duration conditioning and its
own seed (initial noise and the SDE sampler's Brownian tree), so a row's audio does not depend on
the batch it was generated in.

Decoding: the VAE decodes only the latent frames a clip keeps plus ``decode_margin`` (16: the Oobleck
decoder's convolutions reach about 10 latent frames, so the kept samples equal the full window's to
float tolerance), ``decode_batch`` clips per call. A decode that runs out of memory is retried with
half as many clips per call (the smaller size is kept for later batches); a clip that fails alone is
reported through ``RowErrors``, so the caller records it and never re-runs the denoising.

``conditioning`` builds the DiT's text+duration conditioning exactly as the pipeline does; the
alignment job (Diffusion-DPO / ERM) trains through the same function.
"""
from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np
import torch

from synthio_ray.models.base import RowErrors, TextToAudio, is_out_of_memory, pick_device, resolve_dtype
from synthio_ray.models.paths import quiet_hub_progress
from synthio_ray.models.t2a_adapter import is_adapter_folder, load_adapted_transformer

__all__ = ["StableAudioT2A", "DEFAULT_STEPS", "DEFAULT_CFG_SCALE"]

DEFAULT_STEPS, DEFAULT_CFG_SCALE = 100, 7.0   # the paper's sampling for Stable Audio Open (null in the config)

log = logging.getLogger("synthio_ray")

# diffusers' Oobleck VAE still uses torch's old weight_norm: a deprecation, not a problem for users
warnings.filterwarnings("ignore", message=".*weight_norm.*is deprecated", category=FutureWarning)


class StableAudioT2A(TextToAudio):
    """Batched generation with a diffusers ``StableAudioPipeline`` checkpoint.

    ``crop_latents``: denoise only as many latent frames as the clip needs instead of the model's
    full window (Stable Audio Open: 47.5 s). Much faster for short clips; off by default because
    the released model was trained on full windows padded with silence. ``steps`` / ``cfg_scale`` None:
    100 steps, CFG 7.0 (the paper's). ``decode_batch`` / ``decode_margin``: clips per VAE decode call,
    latent frames decoded past a clip's end.
    """

    def __init__(self, path: str, device: str = "auto", dtype: str = "auto", steps: int | None = None,
                 cfg_scale: float | None = None, negative_prompt: str | None = None, crop_latents: bool = False,
                 decode_batch: int = 4, decode_margin: int = 16, pipeline: Any = None):
        from diffusers import StableAudioPipeline

        quiet_hub_progress()
        self.device = pick_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if pipeline is None and is_adapter_folder(path):  # aligned LoRA adapters: merged onto their base
            base, dit = load_adapted_transformer(path, self.dtype)
            pipeline = StableAudioPipeline.from_pretrained(base, transformer=dit, dtype=self.dtype)
        self.pipe = pipeline or StableAudioPipeline.from_pretrained(path, dtype=self.dtype)
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.model_id = str(path)
        self.steps = DEFAULT_STEPS if steps is None else int(steps)
        self.cfg_scale = DEFAULT_CFG_SCALE if cfg_scale is None else float(cfg_scale)
        self.negative_prompt = negative_prompt
        self.crop_latents = crop_latents
        self.decode_batch, self.decode_margin = max(1, int(decode_batch)), max(0, int(decode_margin))
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
        self._note_truncation(captions)
        # diffusers reports each cut caption with the whole padded batch decoded (hundreds of <pad>s); the
        # cut is reported once per model by _note_truncation instead
        pipe_log = logging.getLogger("diffusers.pipelines.stable_audio.pipeline_stable_audio")
        level = pipe_log.level
        pipe_log.setLevel(logging.ERROR)
        try:
            text = pipe.encode_prompt(captions, self.device, do_cfg, neg)
        finally:
            pipe_log.setLevel(level)
        start, end = pipe.encode_duration([0.0] * b, [float(s) for s in seconds], self.device,
                                          do_cfg and neg is not None, b)
        enc = torch.cat([text, start, end], dim=1)
        glob = torch.cat([start, end], dim=2)
        if do_cfg and neg is None:
            enc = torch.cat([torch.zeros_like(enc), enc], dim=0)
            glob = torch.cat([glob, glob], dim=0)
        return enc, glob

    def _note_truncation(self, captions: list[str]) -> None:
        """One warning per model (not per batch) when captions run past the text encoder's token limit."""
        if getattr(self, "_truncation_noted", False):
            return
        tok = self.pipe.tokenizer
        limit = int(tok.model_max_length)
        long = [c for c in captions if len(tok(c).input_ids) > limit]
        if long:
            self._truncation_noted = True
            log.warning("%d of %d captions in a batch run past the text encoder's %d tokens and are cut there "
                        "(e.g. %r); later cuts are not reported", len(long), len(captions), limit, long[0][:120])

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
        errors: dict[int, str] = {}
        groups: dict[int, list[int]] = {}
        for i, s in enumerate(seconds):
            groups.setdefault(self.latent_frames(s), []).append(i)
        for frames, idx in groups.items():
            latents = self._denoise([captions[i] for i in idx], [seconds[i] for i in idx],
                                    [seeds[i] for i in idx], frames,
                                    steps or self.steps, self.cfg_scale if cfg_scale is None else cfg_scale,
                                    negative_prompt if negative_prompt is not None else self.negative_prompt)
            audio, errs = self.decode(latents, [int(round(seconds[i] * self.sample_rate)) for i in idx])
            for j, i in enumerate(idx):
                out[i] = audio[j]
                if j in errs:
                    errors[i] = errs[j]
        if errors:
            raise RowErrors(out, errors)
        return out  # type: ignore[return-value]

    # -- decoding ----------------------------------------------------------------------------------
    def decode_frames(self, samples: int, frames: int) -> int:
        """Latent frames decoded for a clip that keeps ``samples`` of a ``frames``-frame latent."""
        return min(frames, math.ceil(samples / self.hop) + self.decode_margin)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, samples: list[int]) -> tuple[list[np.ndarray | None], dict[int, str]]:
        """Latents ``(B, C, F)`` -> (row j's first ``samples[j]`` samples as ``(channels, samples)`` float32,
        or None, and {row: reason} for the rows whose decode failed even alone).

        Rows are grouped by their decoded length (``decode_frames``), so a row's audio does not depend on
        its batch mates, and decoded ``decode_batch`` at a time."""
        audio: list[np.ndarray | None] = [None] * len(samples)
        errors: dict[int, str] = {}
        lengths: dict[int, list[int]] = {}
        for j, n in enumerate(samples):
            lengths.setdefault(self.decode_frames(n, latents.shape[2]), []).append(j)
        for crop, rows in lengths.items():
            start = 0
            while start < len(rows):
                chunk = rows[start:start + self.decode_batch]
                try:
                    wave = self._vae_decode(latents[chunk, :, :crop])
                except Exception as e:  # noqa: BLE001 - smaller calls next, then a per-row error
                    if is_out_of_memory(e) and len(chunk) > 1:
                        self.decode_batch = max(1, len(chunk) // 2)
                        log.warning("VAE decode of %d clips (%d latent frames) ran out of memory: decoding %d "
                                    "at a time from now on (models.t2a.decode_batch)", len(chunk), crop,
                                    self.decode_batch)
                        self._free_cache()
                        continue
                    if len(chunk) > 1:      # not a memory error: find the row(s) it belongs to
                        for j in chunk:
                            a, err = self._decode_alone(latents, j, crop, samples[j])
                            audio[j] = a
                            if err:
                                errors[j] = err
                    else:
                        errors[chunk[0]] = self._decode_error(e, crop)
                        self._free_cache()
                    start += len(chunk)
                    continue
                for k, j in enumerate(chunk):
                    audio[j] = wave[k, :, :samples[j]]
                start += len(chunk)
        return audio, errors

    def _vae_decode(self, latents: torch.Tensor) -> np.ndarray:
        return self.pipe.vae.decode(latents).sample.float().cpu().numpy()

    def _decode_alone(self, latents, j, crop, n):
        try:
            return self._vae_decode(latents[j:j + 1, :, :crop])[0, :, :n], None
        except Exception as e:  # noqa: BLE001 - recorded for this row
            self._free_cache()
            return None, self._decode_error(e, crop)

    @staticmethod
    def _decode_error(e: BaseException, crop: int) -> str:
        what = "ran out of memory" if is_out_of_memory(e) else "failed"
        return (f"VAE decode of this clip alone ({crop} latent frames) {what} after its denoising finished: "
                f"{type(e).__name__}: {e}")

    def _free_cache(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    @torch.no_grad()
    def _denoise(self, captions, seconds, seeds, frames, steps, cfg_scale, negative_prompt) -> torch.Tensor:
        """-> the denoised latents ``(B, C, frames)`` on the model's device."""
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
            return self._loop(sched, latents, enc, glob, gens, cfg_scale, do_cfg)

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
