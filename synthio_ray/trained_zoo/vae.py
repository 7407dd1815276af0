"""Train the world's Oobleck VAE (diffusers ``AutoencoderOobleck``, 8 kHz mono, hop 32, 16 latent channels).

In: a work folder and a wall-time budget. Out: ``work/vae/`` in diffusers format and ``work/vae.json``
(steps, time, validation losses). Data: clips of the general corpus (never the target dataset), random
4096-sample crops. Loss: multi-resolution STFT + log-mel + waveform L1 + a small KL term. The state is
saved every minute in ``work/vae_state.pt``; a rerun resumes it until the total budget is spent.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from synthio_ray.trained_zoo.checkpoint import Budget, Every, load_state, save_state
from synthio_ray.trained_zoo.losses import reconstruction_loss
from synthio_ray.world.corpus import WORLD_SAMPLE_RATE, general_corpus

__all__ = ["make_vae", "train_vae", "VAE_CONFIG", "corpus_waves"]

VAE_CONFIG = dict(encoder_hidden_size=32, downsampling_ratios=[2, 4, 4], channel_multiples=[1, 2, 4],
                  decoder_channels=32, decoder_input_channels=16, audio_channels=1,
                  sampling_rate=WORLD_SAMPLE_RATE)


def make_vae(seed: int = 0):
    from diffusers import AutoencoderOobleck

    torch.manual_seed(seed)
    return AutoencoderOobleck(**VAE_CONFIG)


def corpus_waves(work: Path, count: int, split: str) -> np.ndarray:
    """``count`` general-corpus waves ``(count, samples)`` float32, cached in ``work``."""
    path = work / f"general_{split}_{count}.npy"
    if path.exists():
        return np.load(path)
    waves = np.stack([c.wave for c in general_corpus(count, split)])
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, waves)
    tmp.replace(path)
    return waves


def _lr(step: int, fraction: float, peak: float, warmup: int = 200) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * fraction)))


@torch.no_grad()
def _validate(model, val: torch.Tensor) -> dict[str, float]:
    model.eval()
    z = model.encode(val[:, None]).latent_dist.mode()
    y = model.decode(z).sample[:, 0, : val.shape[1]]
    terms = reconstruction_loss(y, val, WORLD_SAMPLE_RATE)
    model.train()
    return {k: round(float(v), 4) for k, v in terms.items()} | {"latent_std": round(float(z.std()), 3)}


def train_vae(work: str | Path, seconds: float, steps: int | None = None, seed: int = 0, clips: int = 2400, batch: int = 8,
              crop: int = 4096, lr: float = 1e-3, kl_weight: float = 1e-4, save_every: float = 60.0, val_clips: int = 48,
              log: Callable[[str], None] = print) -> Path:
    """Train (or resume) for a total of ``seconds`` of wall time; return the exported ``work/vae``."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    model = make_vae(seed)
    use_fast_snake(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.8, 0.99))
    state = load_state(work / "vae_state.pt")
    step, spent, history = 0, 0.0, []
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, spent, history = state["step"], state["spent"], state["history"]
        log(f"vae: resuming at step {step} after {spent:.0f} s")
    budget = Budget(seconds, spent, steps)
    data = torch.from_numpy(corpus_waves(work, clips, "train"))
    val = torch.from_numpy(corpus_waves(work, val_clips, "val"))
    model.train()
    saving, validating = Every(save_every), Every(300)

    def checkpoint():
        save_state(work / "vae_state.pt", {"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                                           "spent": budget.spent, "history": history})

    while not budget.done(step):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(0, len(data), (batch,), generator=g)
        offs = torch.randint(0, data.shape[1] - crop + 1, (batch,), generator=g)
        x = torch.stack([data[i, o:o + crop] for i, o in zip(idx.tolist(), offs.tolist())])
        for group in opt.param_groups:
            group["lr"] = _lr(step, budget.fraction(step), lr)
        post = model.encode(x[:, None]).latent_dist
        y = model.decode(post.sample(generator=g)).sample[:, 0, :crop]
        terms = reconstruction_loss(y, x, WORLD_SAMPLE_RATE)
        loss = terms["loss"] + kl_weight * post.kl()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if validating.due(budget.done(step)):
            history.append({"step": step, "seconds": round(budget.spent), **_validate(model, val)})
            log(f"vae: step {step} {budget.spent:.0f} s {history[-1]}")
        if saving.due(budget.done(step)):
            checkpoint()
    out = work / "vae"
    model.eval()
    model.save_pretrained(out)
    (work / "vae.json").write_text(json.dumps({"steps": step, "seconds": round(budget.spent), "seed": seed,
                                               "clips": clips, "batch": batch, "crop": crop, "lr": lr,
                                               "kl_weight": kl_weight, "history": history}, indent=1))
    return out


class _SnakeFn(torch.autograd.Function):
    """y = x + sin(a x)^2 / b with a hand-written backward (about half the elementwise passes of autograd's)."""

    @staticmethod
    def forward(ctx, x, a, inv_b):
        ctx.save_for_backward(x, a, inv_b)
        s = torch.sin(a * x)
        return torch.addcmul(x, s * s, inv_b)

    @staticmethod
    def backward(ctx, g):
        x, a, inv_b = ctx.saved_tensors
        ax2 = torch.sin(2 * a * x)            # d/dx sin^2(ax) = a sin(2ax)
        gs = g * ax2
        grad_x = torch.addcmul(g, gs, a * inv_b)
        grad_a = (gs * x).sum(dim=(0, 2), keepdim=True) * inv_b
        s2 = (1 - torch.cos(2 * a * x)) / 2
        grad_inv_b = (g * s2).sum(dim=(0, 2), keepdim=True)
        return grad_x, grad_a, grad_inv_b


def _fast_snake_forward(self, hidden_states):
    alpha = torch.exp(self.alpha) if self.logscale else self.alpha
    beta = torch.exp(self.beta) if self.logscale else self.beta
    return _SnakeFn.apply(hidden_states, alpha, (beta + 1e-9).reciprocal())


def use_fast_snake(model) -> None:
    """Swap every ``Snake1d.forward`` of ``model`` for the fused one (same maths, same parameters)."""
    from diffusers.models.autoencoders.autoencoder_oobleck import Snake1d

    for m in model.modules():
        if isinstance(m, Snake1d):
            m.forward = _fast_snake_forward.__get__(m)
