"""Diffusion-DPO and the diffusion objectives it is computed on: pure tensor functions, no model code.

Shapes: latents ``x0`` and noise are ``(B, C, F)``; timesteps ``t`` are ``(B,)`` in [0, 1]; per-sample
errors are ``(B,)`` (mean squared error over every non-batch dimension).

Objectives (which one a checkpoint needs is read from its scheduler, see ``objective_for_scheduler``):

- ``v_objective`` (Stable Audio Open, diffusers ``CosineDPMSolverMultistepScheduler`` with
  ``v_prediction``): ``alpha = cos(pi t / 2)``, ``sigma = sin(pi t / 2)``, the DiT sees
  ``z = alpha x0 + sigma eps`` with timestep ``t`` and must output ``v = alpha eps - sigma x0``. This is
  what the pipeline feeds at sampling time: ``x / sqrt(s^2 + 1)`` and ``atan(s) * 2 / pi`` for a noise
  level ``s``, i.e. ``t = (2 / pi) atan(s)``.
- ``flow_objective`` (Stable Audio 3 base, rectified flow, ``FlowMatchEulerDiscreteScheduler``):
  ``x_t = (1 - t) x0 + t eps`` with timestep ``t``, target velocity ``eps - x0``.

Diffusion-DPO (Wallace et al.): per (winner, loser) pair ONE timestep and ONE noise, shared by both
(``pair_inputs`` enforces it), then
``loss = -logsigmoid(-0.5 * beta * ((e_w - e_l) - (e_ref_w - e_ref_l)))``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["diffusion_dpo_loss", "per_sample_mse", "v_objective", "flow_objective", "OBJECTIVES",
           "objective_for_scheduler", "sample_timesteps", "pair_inputs"]


def diffusion_dpo_loss(model_err_w: torch.Tensor, model_err_l: torch.Tensor, ref_err_w: torch.Tensor,
                       ref_err_l: torch.Tensor, beta: float
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair errors ``(B,)`` of the trained model and of the frozen reference -> (loss, implicit
    accuracy, reward margin), each a scalar.

    The reference errors are detached (no gradient ever reaches the reference). The per-pair logit is
    ``-0.5 * beta * ((e_w - e_l) - (e_ref_w - e_ref_l))``: positive when the trained model denoises the
    winner better, relative to the loser, than the reference does. The reward margin is its mean (the
    implicit reward of the winner minus that of the loser); the implicit accuracy is the share of
    pairs with a positive logit, ties (model == reference, e.g. at step 0 with LoRA) counted as half.
    """
    model_diff = model_err_w - model_err_l
    ref_diff = (ref_err_w - ref_err_l).detach()
    logits = -0.5 * beta * (model_diff - ref_diff)
    loss = -F.logsigmoid(logits).mean()
    with torch.no_grad():
        acc = ((logits > 0).float() + 0.5 * (logits == 0).float()).mean()
        margin = logits.mean()
    return loss, acc, margin


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, ..., F)`` prediction and target -> ``(B,)`` mean squared error (fp32). ``frames`` ``(B,)``: each
    sample's own latent frames; the mean is then over those frames only, so the padding after a short clip
    does not dilute its error (a 5 s clip in a 47.5 s window weighs as it does cropped, and beta keeps
    its meaning). Without ``frames``: the mean over every non-batch element."""
    err = (pred.float() - target.float()).pow(2)
    if frames is None:
        return err.flatten(1).mean(dim=1)
    per_frame = err.flatten(1, -2).mean(dim=1) if err.dim() > 2 else err          # (B, F)
    keep = torch.arange(per_frame.shape[1], device=err.device)[None, :] < frames.to(err.device)[:, None]
    return (per_frame * keep).sum(1) / keep.sum(1).clamp_min(1)


def drop_text(enc: torch.Tensor, p: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Conditioning dropout: ``enc`` ``(B, S, D)`` -> (``enc`` with each sample's text conditioning zeroed
    with probability ``p``, as the pipeline's unconditional branch is, and the ``(B,)`` bool mask). The
    caller uses the one result for winner, loser and reference."""
    drop = torch.rand(enc.shape[0], generator=generator) < p
    if not drop.any():
        return enc, drop
    return torch.where(drop.to(enc.device)[:, None, None], torch.zeros_like(enc), enc), drop


def _bcast(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))


def v_objective(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stable Audio Open (v-objective): -> (model input ``z_t``, target ``v``); the DiT timestep is ``t``."""
    alpha, sigma = _bcast(torch.cos(t * math.pi / 2), x0), _bcast(torch.sin(t * math.pi / 2), x0)
    return alpha * x0 + sigma * noise, alpha * noise - sigma * x0


def flow_objective(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rectified flow (Stable Audio 3): -> (``x_t = (1 - t) x0 + t eps``, target ``eps - x0``); timestep ``t``."""
    tt = _bcast(t, x0)
    return (1 - tt) * x0 + tt * noise, noise - x0


OBJECTIVES: dict[str, Callable] = {"v": v_objective, "flow": flow_objective}


def objective_for_scheduler(scheduler) -> str:
    """A diffusers scheduler -> ``"v"`` or ``"flow"``; a clear error for prediction types we do not train."""
    name = type(scheduler).__name__
    if "FlowMatch" in name:
        return "flow"
    prediction = getattr(scheduler.config, "prediction_type", None)
    if prediction == "v_prediction":
        return "v"
    raise ValueError(f"cannot align a model whose scheduler is {name} with prediction_type={prediction!r}: "
                     f"supported are v_prediction (Stable Audio Open) and flow matching (Stable Audio 3)")


def sample_timesteps(n: int, mode: str, generator: torch.Generator, device: torch.device | str = "cpu"
                     ) -> torch.Tensor:
    """``n`` training timesteps in [0, 1]: ``uniform`` or ``logit_normal`` (sigmoid of N(0, 1))."""
    if mode == "uniform":
        t = torch.rand(n, generator=generator)
    elif mode == "logit_normal":
        t = torch.sigmoid(torch.randn(n, generator=generator))
    else:
        raise ValueError(f"unknown timestep sampling {mode!r}: uniform or logit_normal")
    return t.to(device)


def pair_inputs(x_w: torch.Tensor, x_l: torch.Tensor, objective: str, timesteps: str, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Winner and loser latents ``(B, C, F)`` -> (model input ``(2B, C, F)``, target, timesteps ``(2B,)``,
    noise ``(B, C, F)``): winners first, losers second; pair i shares ONE noise tensor and ONE timestep."""
    if x_w.shape != x_l.shape:
        raise ValueError(f"winner and loser latents differ in shape: {tuple(x_w.shape)} vs {tuple(x_l.shape)}")
    t = sample_timesteps(x_w.shape[0], timesteps, generator, x_w.device)
    noise = torch.randn(x_w.shape, generator=generator, dtype=torch.float32).to(x_w.device, x_w.dtype)
    fn = OBJECTIVES[objective]
    z_w, tgt_w = fn(x_w, noise, t)
    z_l, tgt_l = fn(x_l, noise, t)
    return torch.cat([z_w, z_l]), torch.cat([tgt_w, tgt_l]), torch.cat([t, t]), noise
