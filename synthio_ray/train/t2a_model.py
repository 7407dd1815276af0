"""A Stable Audio (diffusers ``StableAudioPipeline``) model prepared for alignment training.

``AlignableStableAudio`` wraps a loaded ``StableAudioT2A``:

- audio in: ``(channels, samples)`` float waves at the model's rate -> VAE latents ``(B, C, F)``, the
  **posterior mean** (deterministic, so a worker encodes its shard once and reuses it every epoch;
  the Oobleck posterior's spread is small next to the diffusion noise);
- text in: captions + durations -> the DiT conditioning built by ``StableAudioT2A.conditioning`` with
  ``cfg_scale=1.0`` (the conditional branch exactly as the pipeline builds it);
- ``errors(...)``: per-sample MSE of the trained DiT, ``reference_errors(...)`` the same for the frozen
  reference, under ``torch.no_grad``;
- what trains: LoRA adapters (``peft``) on every DiT attention projection (``to_q, to_k, to_v,
  to_out.0`` of the self- and cross-attention of each block), the rest frozen; the reference is then
  the same module with its adapters disabled (no second copy of the DiT). With ``full_finetune`` every
  DiT weight trains and the reference is a frozen deep copy taken right after loading.
- ``save_aligned(folder, export=...)``: the LoRA adapters in peft format with the base model's location
  (``adapter``, what ``load_t2a`` merges onto the base at load time), or the adapters merged into the DiT
  weights and the complete pipeline written as a diffusers folder (``merged``); both load with ``load_t2a``.

Memory (``align.*``): ``base_dtype`` bf16 stores the frozen base (DiT, VAE, text encoder) in bf16 under
LoRA while the adapters, their gradients and the optimizer stay fp32; ``gradient_checkpointing`` keeps
only each DiT block's input for the backward and recomputes the rest (same loss and gradients).
"""
from __future__ import annotations

import copy
import json
import math
import os
import shutil
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthio_ray.train.dpo import objective_for_scheduler, per_sample_mse

__all__ = ["AlignableStableAudio", "LORA_TARGETS", "load_alignable"]

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]  # diffusers Attention projections (attn1 and attn2)


def base_dtype(cfg, device: str) -> str:
    """``align.base_dtype`` resolved: ``auto`` = bfloat16 for a LoRA run under bf16 autocast (``precision``
    bfloat16, or auto on a GPU), float32 otherwise (full fine-tuning keeps fp32 master weights)."""
    a = cfg.align
    if a.base_dtype != "auto":
        return a.base_dtype
    bf16 = a.precision == "bfloat16" or (a.precision == "auto" and str(device).startswith("cuda"))
    return "bfloat16" if bf16 and not a.full_finetune else "float32"


def checkpointing_on(cfg, device: str) -> bool:
    """``align.gradient_checkpointing`` resolved: null = on for GPU workers, off on CPU."""
    g = cfg.align.gradient_checkpointing
    return str(device).startswith("cuda") if g is None else bool(g)


def load_alignable(cfg, device: str = "cpu", path: str | None = None, dtype: str | None = None
                   ) -> "AlignableStableAudio":
    """Load ``cfg.models.t2a`` on ``device`` in ``dtype`` (default: ``base_dtype(cfg, device)``) and wrap it
    per ``cfg.align``."""
    from synthio_ray.models.t2a import load_t2a

    if cfg.models.t2a.backend != "stable_audio":
        raise ValueError(f"jobs/align.py trains the stable_audio backend (diffusers StableAudioPipeline); "
                         f"models.t2a.backend={cfg.models.t2a.backend!r} is not supported yet")
    t2a = load_t2a(replace(cfg.models.t2a, device=str(device), dtype=dtype or base_dtype(cfg, device)), path)
    a = cfg.align
    return AlignableStableAudio(t2a, full_finetune=a.full_finetune, lora_rank=a.lora_rank,
                                lora_alpha=a.lora_alpha, precision=a.precision,
                                gradient_checkpointing=checkpointing_on(cfg, device))


class AlignableStableAudio:
    """A ``StableAudioT2A`` with a trainable DiT and a frozen reference.

    Weights fp32, or (LoRA only) a bf16 frozen base under bf16 autocast; ``gradient_checkpointing``
    recomputes each DiT block in the backward instead of keeping its activations."""

    def __init__(self, t2a: Any, full_finetune: bool = False, lora_rank: int = 8, lora_alpha: float = 8.0,
                 precision: str = "auto", gradient_checkpointing: bool = False):
        self.t2a, self.pipe = t2a, t2a.pipe
        self.device = torch.device(t2a.device)
        self.objective = objective_for_scheduler(self.pipe.scheduler)
        self.full_finetune = full_finetune
        low = self.pipe.transformer.dtype != torch.float32
        if low and full_finetune:
            raise ValueError(f"align.full_finetune trains every DiT weight: load it in float32, not "
                             f"{self.pipe.transformer.dtype} (align.base_dtype=float32)")
        for name in ("vae", "text_encoder", "projection_model"):
            getattr(self.pipe, name).requires_grad_(False).eval()
        dit = self.pipe.transformer
        if full_finetune:
            self.reference = copy.deepcopy(dit).requires_grad_(False).eval()
            self.module = dit.requires_grad_(True)
        else:
            from peft import LoraConfig, get_peft_model

            dit.requires_grad_(False)
            self.reference = None
            self.module = get_peft_model(dit, LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=0.0,
                                                         target_modules=LORA_TARGETS, init_lora_weights=True))
        self.module.train()
        if gradient_checkpointing:
            dit.enable_gradient_checkpointing()
        self.gradient_checkpointing = gradient_checkpointing
        use_bf16 = precision == "bfloat16" or (precision == "auto" and self.device.type == "cuda")
        if low and not use_bf16:
            raise ValueError("a bf16 frozen base needs bf16 autocast: align.precision=bfloat16 (or auto on a GPU), "
                             "or align.base_dtype=float32")
        self.autocast_dtype = torch.bfloat16 if use_bf16 else None
        self._rotary: dict[int, tuple] = {}

    # -- inputs -----------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.t2a.sample_rate

    def latent_frames(self, seconds: list[float]) -> int:
        """Latent frames of a training batch: the model's window, or (``crop_latents``) the longest clip's."""
        return max(self.t2a.latent_frames(float(s)) for s in seconds)

    def clip_frames(self, seconds: float) -> int:
        """Latent frames a clip of ``seconds`` fills (with or without ``crop_latents``)."""
        return max(1, math.ceil(float(seconds) * self.t2a.sample_rate / self.t2a.hop))

    @torch.no_grad()
    def encode_audio(self, waves: list[np.ndarray], frames: int, batch_size: int = 2) -> torch.Tensor:
        """Waves ``(channels, samples)`` at ``sample_rate`` -> fp32 latents ``(B, C, frames)`` (posterior mean),
        each wave zero-padded or trimmed to ``frames * hop`` samples as the pipeline's window is;
        ``batch_size`` clips per VAE call, halved when a call runs out of memory."""
        from synthio_ray.models.base import is_out_of_memory

        n = frames * self.t2a.hop
        vae = self.pipe.vae
        out, i = [], 0
        while i < len(waves):
            chunk = []
            for w in waves[i:i + batch_size]:
                w = np.asarray(w, np.float32)[:, :n]
                chunk.append(np.pad(w, ((0, 0), (0, n - w.shape[1]))))
            x = torch.from_numpy(np.stack(chunk)).to(self.device, vae.dtype)
            try:
                out.append(vae.encode(x).latent_dist.mean.float())
            except Exception as e:
                if not (is_out_of_memory(e) and batch_size > 1):
                    raise
                batch_size = max(1, len(chunk) // 2)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            i += len(chunk)
        return torch.cat(out)[:, :, :frames]

    @torch.no_grad()
    def conditioning(self, captions: list[str], seconds: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions and durations -> (encoder_hidden_states ``(B, S, D)``, global_hidden_states ``(B, 1, 2D)``)."""
        enc, glob = self.t2a.conditioning(list(captions), [float(s) for s in seconds], cfg_scale=1.0)
        return enc.float(), glob.float()

    def _rotary_for(self, frames: int, glob_len: int) -> tuple:
        key = frames + glob_len
        if key not in self._rotary:
            from diffusers.models.embeddings import get_1d_rotary_pos_embed

            cos, sin = get_1d_rotary_pos_embed(self.pipe.rotary_embed_dim, key, use_real=True,
                                               repeat_interleave_real=False)
            self._rotary[key] = (cos.to(self.device), sin.to(self.device))
        return self._rotary[key]

    # -- forward ----------------------------------------------------------------------------------
    def predict(self, module: torch.nn.Module, z: torch.Tensor, t: torch.Tensor, enc: torch.Tensor,
                glob: torch.Tensor) -> torch.Tensor:
        """DiT output for noisy latents ``z (B, C, F)`` at timesteps ``t (B,)``, as the pipeline calls it."""
        rot = self._rotary_for(z.shape[2], glob.shape[1])
        ctx = (torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype
               else nullcontext())
        with ctx:
            return module(z, t, encoder_hidden_states=enc, global_hidden_states=glob, rotary_embedding=rot,
                          return_dict=False)[0]

    def errors(self, module: torch.nn.Module, z, t, enc, glob, target, frames=None) -> torch.Tensor:
        """Per-sample MSE ``(B,)`` of ``module`` (the trained DiT, or its DDP wrapper) against ``target``,
        over each sample's own ``frames`` when given."""
        return per_sample_mse(self.predict(module, z, t, enc, glob), target, frames)

    @torch.no_grad()
    def reference_errors(self, z, t, enc, glob, target, frames=None) -> torch.Tensor:
        """Per-sample MSE ``(B,)`` of the frozen reference (no gradient, never updated)."""
        if self.reference is not None:
            return per_sample_mse(self.predict(self.reference, z, t, enc, glob), target, frames)
        with self.module.disable_adapter():
            return per_sample_mse(self.predict(self.module, z, t, enc, glob), target, frames)

    # -- state --------------------------------------------------------------------------------------
    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Name -> CPU copy of every trained tensor (LoRA A/B matrices, or the whole DiT)."""
        return {n: p.detach().cpu().clone() for n, p in self.module.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = {n: p for n, p in self.module.named_parameters() if p.requires_grad}
        if set(params) != set(state):
            missing, extra = sorted(set(params) - set(state))[:3], sorted(set(state) - set(params))[:3]
            raise ValueError(f"checkpoint does not match the model's trainable tensors (missing {missing}, "
                             f"unexpected {extra}): was it trained with other align.lora_rank / full_finetune?")
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(state[n].to(p.device, p.dtype))

    def save_aligned(self, folder: str | Path, info: dict | None = None, export: str = "merged",
                     base: str | None = None) -> Path:
        """Write the aligned model to ``folder``, atomically (written beside, then renamed).

        ``export="merged"``: a complete diffusers ``StableAudioPipeline`` folder, the adapters merged into the
        DiT weights, plus ``alignment.json`` (``info``); the wrapper is spent afterwards (its adapters are
        gone). ``export="adapter"`` (LoRA only): the adapters in peft format and ``alignment.json`` naming
        ``base`` (the starting model's location, see ``models.t2a_adapter``)."""
        from synthio_ray.models.t2a_adapter import save_adapter

        folder = Path(folder)
        if export not in ("merged", "adapter"):
            raise ValueError(f"unknown export {export!r}: merged or adapter")
        if export == "adapter" and (self.full_finetune or base is None):
            raise ValueError("an adapter export needs LoRA training and the base model's location")
        tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        if export == "adapter":
            tmp.mkdir(parents=True)
            save_adapter(self.module, tmp, base, self.pipe.transformer.config, {"export": "adapter", **(info or {})})
        else:
            if not self.full_finetune:
                merged = self.module.merge_and_unload()
                assert merged is self.pipe.transformer
            self.pipe.transformer.requires_grad_(False).eval()
            self.pipe.save_pretrained(tmp)
            record = {"export": "merged", **(info or {}), **({"base_model": base} if base else {})}
            (tmp / "alignment.json").write_text(json.dumps(record, indent=2, default=str))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        return folder
