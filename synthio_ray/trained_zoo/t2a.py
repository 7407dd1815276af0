"""Pre-train the world's text-to-audio model: a diffusers ``StableAudioPipeline`` on the trained VAE.

In: a work folder holding ``vae/`` (:mod:`~synthio_ray.trained_zoo.vae`) and a wall-time budget. Out:
``work/t2a/`` (loads with the pipeline's ``StableAudioT2A``) and ``work/t2a.json``. The T5 text encoder,
the duration projection and the DiT train together on general-corpus clips with their captions, with
the v-objective the alignment job uses (``synthio_ray.train.dpo``), 10 % conditioning dropout (the
pipeline's unconditional branch, for classifier-free guidance) and the loss over each clip's own frames.
Latents are encoded once (posterior mean) and cached in ``work``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from synthio_ray.train.dpo import drop_text, per_sample_mse, sample_timesteps, v_objective
from synthio_ray.trained_zoo.checkpoint import Budget, Every, load_state, save_state
from synthio_ray.world.corpus import WORLD_SAMPLE_RATE, WORLD_SECONDS, general_corpus

__all__ = ["make_pipeline", "train_t2a", "LATENT_FRAMES"]

LATENT_FRAMES = 512          # DiT window: 512 * 32 / 8000 = 2.048 s
_COND_DIM, _TEXT_DIM = 128, 64


def make_pipeline(vae, captions: list[str], seed: int = 0):
    """A fresh ``StableAudioPipeline`` around ``vae`` with a T5 tokenizer trained on ``captions``."""
    from diffusers import (CosineDPMSolverMultistepScheduler, StableAudioDiTModel, StableAudioPipeline,
                           StableAudioProjectionModel)
    from transformers import T5Config, T5EncoderModel

    from synthio_ray.zoo import make_t5_tokenizer

    tok = make_t5_tokenizer(model_max_length=64, corpus=captions, vocab_size=800)
    torch.manual_seed(seed)
    text_encoder = T5EncoderModel(T5Config(
        vocab_size=len(tok), d_model=_TEXT_DIM, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
        relative_attention_num_buckets=16, relative_attention_max_distance=64, feed_forward_proj="gelu",
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id))
    projection = StableAudioProjectionModel(text_encoder_dim=_TEXT_DIM, conditioning_dim=_COND_DIM, min_value=0,
                                            max_value=int(math.ceil(WORLD_SECONDS)) + 1)
    latent = int(vae.config.decoder_input_channels)
    dit = StableAudioDiTModel(sample_size=LATENT_FRAMES, in_channels=latent, num_layers=4, attention_head_dim=32,
                              num_attention_heads=4, num_key_value_attention_heads=2, out_channels=latent,
                              cross_attention_dim=_COND_DIM, time_proj_dim=64,
                              global_states_input_dim=2 * _COND_DIM, cross_attention_input_dim=_COND_DIM)
    scheduler = CosineDPMSolverMultistepScheduler(
        sigma_min=0.3, sigma_max=500, sigma_data=1.0, sigma_schedule="exponential", num_train_timesteps=1000,
        solver_order=2, prediction_type="v_prediction", rho=7.0, solver_type="midpoint", lower_order_final=True,
        euler_at_final=False, final_sigmas_type="zero")
    return StableAudioPipeline(vae=vae, text_encoder=text_encoder, projection_model=projection, tokenizer=tok,
                               transformer=dit, scheduler=scheduler)


@torch.no_grad()
def _latents(work: Path, vae, waves: np.ndarray) -> torch.Tensor:
    path = work / f"latents_{len(waves)}.pt"
    if path.exists():
        return torch.load(path)
    n = LATENT_FRAMES * int(np.prod(vae.config.downsampling_ratios))
    out = []
    for i in range(0, len(waves), 32):
        x = torch.from_numpy(np.pad(waves[i:i + 32], ((0, 0), (0, n - waves.shape[1]))))[:, None]
        out.append(vae.encode(x).latent_dist.mean)
    z = torch.cat(out)
    torch.save(z, path)
    return z


def train_t2a(work: str | Path, seconds: float, steps: int | None = None, seed: int = 0, clips: int = 2400, batch: int = 16,
              lr: float = 1e-3, cfg_dropout: float = 0.1, save_every: float = 60.0,
              log: Callable[[str], None] = print) -> Path:
    """Train (or resume) for a total of ``seconds``; return the exported ``work/t2a``."""
    from diffusers import AutoencoderOobleck
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    from synthio_ray.models.t2a_stable_audio import StableAudioT2A

    work = Path(work)
    vae = AutoencoderOobleck.from_pretrained(work / "vae").eval().requires_grad_(False)
    corpus = general_corpus(clips, "train")
    captions = [c.caption for c in corpus]
    pipe = make_pipeline(vae, captions, seed)
    t2a = StableAudioT2A(str(work / "t2a"), device="cpu", dtype="float32", pipeline=pipe)
    z_all = _latents(work, vae, np.stack([c.wave for c in corpus]))
    hop = int(np.prod(vae.config.downsampling_ratios))
    frames = torch.full((batch,), min(LATENT_FRAMES, int(WORLD_SECONDS * WORLD_SAMPLE_RATE / hop) + 4))
    modules = [pipe.transformer, pipe.text_encoder, pipe.projection_model]
    params = [p for m in modules for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    state = load_state(work / "t2a_state.pt")
    step, spent, history = 0, 0.0, []
    if state:
        for m, sd in zip(modules, state["modules"]):
            m.load_state_dict(sd)
        opt.load_state_dict(state["opt"])
        step, spent, history = state["step"], state["spent"], state["history"]
        log(f"t2a: resuming at step {step} after {spent:.0f} s")
    budget = Budget(seconds, spent, steps)
    for m in modules:
        m.train()
    rot = get_1d_rotary_pos_embed(pipe.rotary_embed_dim, LATENT_FRAMES + 1, use_real=True,
                                  repeat_interleave_real=False)
    saving, losses = Every(save_every), []
    while not budget.done(step):
        g = torch.Generator().manual_seed(seed * 7_000_003 + step)
        idx = torch.randint(0, len(z_all), (batch,), generator=g)
        for group in opt.param_groups:
            cosine = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * budget.fraction(step)))
            group["lr"] = lr * min(1.0, (step + 1) / 100) * cosine
        enc, glob = t2a._conditioning([captions[i] for i in idx], [WORLD_SECONDS] * batch, 1.0, None)
        enc, _ = drop_text(enc, cfg_dropout, g)
        x0 = z_all[idx]
        t = sample_timesteps(batch, "uniform", g)
        noise = torch.randn(x0.shape, generator=g)
        zt, target = v_objective(x0, noise, t)
        pred = pipe.transformer(zt, t, encoder_hidden_states=enc, global_hidden_states=glob,
                                rotary_embedding=rot, return_dict=False)[0]
        loss = per_sample_mse(pred, target, frames).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        losses.append(float(loss))
        if saving.due(budget.done(step)):
            history.append({"step": step, "seconds": round(budget.spent),
                            "loss": round(float(np.mean(losses)), 4)})
            losses = []
            save_state(work / "t2a_state.pt", {"modules": [m.state_dict() for m in modules],
                                               "opt": opt.state_dict(), "step": step, "spent": budget.spent,
                                               "history": history})
            log(f"t2a: {history[-1]}")
    out = work / "t2a"
    for m in modules:
        m.eval().requires_grad_(False)
    pipe.save_pretrained(out)
    (work / "t2a.json").write_text(json.dumps({"steps": step, "seconds": round(budget.spent), "seed": seed,
                                               "clips": clips, "batch": batch, "lr": lr,
                                               "cfg_dropout": cfg_dropout, "history": history}, indent=1))
    return out
