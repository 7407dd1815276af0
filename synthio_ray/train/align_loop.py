"""The alignment training: one DPO / ERM step as plain functions, and the Ray Train worker loop.

``dpo_step`` / ``erm_step`` run on any ``AlignableStableAudio`` without Ray (tests, benchmarks);
``accumulate_step`` runs a step's forward and backward in micro-batches (``align.micro_batch``) with the
whole batch's randomness and gradient.
``train_loop_per_worker(config)`` is what ``TorchTrainer`` runs on every worker:

- data: the preference manifest's usable rows, sorted by pair id, padded to a multiple of the world
  size and sharded ``rank::world`` (``DistributedSampler``'s rule, so every worker runs the same number
  of steps); each worker VAE-encodes its shard and builds its conditioning once;
- model: LoRA adapters (or the whole DiT) wrapped by ``ray.train.torch.prepare_model`` (DDP when there
  is more than one worker); AdamW; gradient clipping;
- randomness: shuffling, noise and timesteps come from generators seeded by (seed, epoch, step, rank),
  so a resumed run draws exactly what an uninterrupted one would;
- every epoch: per-epoch means over pairs (and over workers) reported to Ray Train with a checkpoint
  (``state.pt``: epoch, trained tensors, optimizer, history, the epoch each (re)start began at,
  fingerprint); on (re)start the loop resumes from ``ray.train.get_checkpoint()`` and refuses a
  checkpoint made with other settings.

``config``: ``cfg`` (the Config as a dict), ``pref_dir``, ``t2a_path`` (or None) and, for failure drills
and tests only, ``crash_once = {"epoch": k, "marker": path}``: raise once right after epoch k's report.
"""
from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from synthio_ray.ids import stable_int
from synthio_ray.train.dpo import diffusion_dpo_loss, drop_text, pair_inputs, per_sample_mse, sample_timesteps

__all__ = ["dpo_step", "erm_step", "dpo_inputs", "dpo_forward", "erm_inputs", "erm_forward", "accumulate_step",
           "encode_pairs", "train_loop_per_worker", "fingerprint", "STATE_FILE"]

STATE_FILE = "state.pt"
LOSS_MARGIN_FRAMES = 4   # latent frames past a clip's end that still count in its loss (the VAE smears the end)
LOSS = "clip-frames-v1"  # what the per-sample error averages over (recorded in the checkpoint fingerprint)
METRIC_KEYS = ("loss", "implicit_acc", "reward_margin", "model_err_w", "model_err_l", "ref_err_w", "ref_err_l")


def dpo_inputs(model: Any, batch: dict, timesteps: str, generator: torch.Generator, cfg_dropout: float = 0.0
               ) -> dict[str, torch.Tensor]:
    """A DPO batch {x_w, x_l (B, C, F), enc, glob, frames?} -> its per-pair model inputs {z_w, z_l, tgt_w,
    tgt_l, t, enc, glob, frames?}, every random draw made once for the whole batch: one noise, one
    timestep and one conditioning-dropout draw per pair, shared by winner and loser. Row slices of it
    are micro-batches of the same step."""
    x_w = batch["x_w"]
    z, target, t, _ = pair_inputs(x_w, batch["x_l"], model.objective, timesteps, generator)
    enc, _ = drop_text(batch["enc"], cfg_dropout, generator)
    b = x_w.shape[0]
    out = {"z_w": z[:b], "z_l": z[b:], "tgt_w": target[:b], "tgt_l": target[b:], "t": t[:b], "enc": enc,
           "glob": batch["glob"]}
    if batch.get("frames") is not None:
        out["frames"] = batch["frames"]
    return out


def dpo_forward(model: Any, module: torch.nn.Module, inputs: dict, beta: float) -> tuple[torch.Tensor, dict[str, float]]:
    """``dpo_inputs`` (or a row slice of them) -> (loss, metrics): the trained DiT and the frozen reference on
    the same 2B inputs, winners first."""
    z = torch.cat([inputs["z_w"], inputs["z_l"]])
    target = torch.cat([inputs["tgt_w"], inputs["tgt_l"]])
    t = torch.cat([inputs["t"], inputs["t"]])
    enc2, glob2 = torch.cat([inputs["enc"], inputs["enc"]]), torch.cat([inputs["glob"], inputs["glob"]])
    frames = inputs.get("frames")
    frames2 = None if frames is None else torch.cat([frames, frames])
    err = model.errors(module, z, t, enc2, glob2, target, frames2)
    ref = model.reference_errors(z, t, enc2, glob2, target, frames2)
    b = inputs["z_w"].shape[0]
    loss, acc, margin = diffusion_dpo_loss(err[:b], err[b:], ref[:b], ref[b:], beta)
    e = err.detach()
    return loss, {"loss": loss.item(), "implicit_acc": acc.item(), "reward_margin": margin.item(),
                  "model_err_w": e[:b].mean().item(), "model_err_l": e[b:].mean().item(),
                  "ref_err_w": ref[:b].mean().item(), "ref_err_l": ref[b:].mean().item()}


def dpo_step(model: Any, module: torch.nn.Module, batch: dict, beta: float, timesteps: str,
             generator: torch.Generator, cfg_dropout: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """One Diffusion-DPO forward: ``batch`` = {x_w, x_l (B, C, F), enc, glob, frames?} -> (loss, metrics).

    ``module`` is the trained DiT (or its DDP wrapper); one noise, one timestep and one conditioning-
    dropout draw per pair, shared by winner and loser, and the reference sees the very same inputs.
    """
    return dpo_forward(model, module, dpo_inputs(model, batch, timesteps, generator, cfg_dropout), beta)


def erm_inputs(model: Any, batch: dict, timesteps: str, generator: torch.Generator, cfg_dropout: float = 0.0
               ) -> dict[str, torch.Tensor]:
    """An ERM batch {x_w, enc, glob, frames?} -> {z, target, t, enc, glob, frames?}, drawn once for the batch."""
    from synthio_ray.train.dpo import OBJECTIVES

    x = batch["x_w"]
    t = sample_timesteps(x.shape[0], timesteps, generator, x.device)
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
    z, target = OBJECTIVES[model.objective](x, noise, t)
    enc, _ = drop_text(batch["enc"], cfg_dropout, generator)
    out = {"z": z, "target": target, "t": t, "enc": enc, "glob": batch["glob"]}
    if batch.get("frames") is not None:
        out["frames"] = batch["frames"]
    return out


def erm_forward(model: Any, module: torch.nn.Module, inputs: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """``erm_inputs`` (or a row slice) -> (loss, metrics): the plain diffusion loss on the gold clips."""
    z, t, enc, glob, frames = inputs["z"], inputs["t"], inputs["enc"], inputs["glob"], inputs.get("frames")
    err = per_sample_mse(model.predict(module, z, t, enc, glob), inputs["target"], frames)
    ref = model.reference_errors(z, t, enc, glob, inputs["target"], frames)
    loss = err.mean()
    return loss, {"loss": loss.item(), "model_err_w": loss.item(), "ref_err_w": ref.mean().item()}


def erm_step(model: Any, module: torch.nn.Module, batch: dict, timesteps: str, generator: torch.Generator,
             cfg_dropout: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """One plain diffusion-loss forward on the gold clips: ``batch`` = {x_w, enc, glob} -> (loss, metrics)."""
    return erm_forward(model, module, erm_inputs(model, batch, timesteps, generator, cfg_dropout))


def accumulate_step(model: Any, module: torch.nn.Module, batch: dict, objective: str, beta: float, timesteps: str,
                    generator: torch.Generator, cfg_dropout: float = 0.0, micro_batch: int | None = None
                    ) -> dict[str, float]:
    """The forward and backward of one optimizer step over ``batch``, ``micro_batch`` pairs at a time -> the
    batch's metrics. The randomness is drawn for the whole batch first; each micro-batch's loss is weighted
    by its share of the batch before its backward, so the accumulated gradient (and every metric) is the
    whole batch's, while only one micro-batch's activations are alive. The caller zeroes the gradients
    before and steps after; under DDP the gradients are all-reduced once, on the last micro-batch."""
    from contextlib import nullcontext

    draw, forward = (dpo_inputs, dpo_forward) if objective == "dpo" else (erm_inputs, erm_forward)
    inputs = draw(model, batch, timesteps, generator, cfg_dropout)
    b = batch["x_w"].shape[0]
    size = min(b, micro_batch or b)
    sums: dict[str, float] = {}
    for start in range(0, b, size):
        part = {k: v[start:start + size] for k, v in inputs.items()}
        n = part["enc"].shape[0]
        last = start + size >= b
        sync = nullcontext() if last or not hasattr(module, "no_sync") else module.no_sync()
        with sync:
            loss, m = forward(model, module, part, beta) if objective == "dpo" else forward(model, module, part)
            (loss * (n / b)).backward()
        for k, v in m.items():
            sums[k] = sums.get(k, 0.0) + v * n / b
    return sums


def fingerprint(cfg: Any, pairs_key: str | None, t2a_path: str | None = None) -> dict:
    """What a checkpoint must agree with to be resumed."""
    a = cfg.align
    return {"objective": a.objective, "beta": a.beta, "full_finetune": a.full_finetune, "lora_rank": a.lora_rank,
            "lora_alpha": a.lora_alpha, "cfg_dropout": a.cfg_dropout, "seed": cfg.seed if a.seed is None else a.seed,
            "t2a": t2a_path or cfg.models.t2a.path, "preferences": pairs_key, "loss": LOSS}


def encode_pairs(model: Any, rows: list[dict], pref_dir: Path, batch_size: int = 2) -> dict[str, torch.Tensor]:
    """Pair rows -> {x_w, x_l (absent for ERM rows), enc, glob, frames (each pair's loss frames)} on the
    model's device; each distinct audio file is encoded once, ``batch_size`` clips per VAE call."""
    from synthio_ray.data.audio import load_audio

    sr = model.sample_rate
    frames = model.latent_frames([r["seconds"] for r in rows])
    cache: dict[str, torch.Tensor] = {}

    def latents(paths: list[str]) -> torch.Tensor:
        todo = sorted({p for p in paths if p not in cache})
        waves = []
        for p in todo:
            x, _ = load_audio(pref_dir / p, sample_rate=sr, mono=False)
            waves.append(x.T)
        if todo:
            for p, z in zip(todo, model.encode_audio(waves, frames, batch_size)):
                cache[p] = z
        return torch.stack([cache[p] for p in paths])

    out = {"x_w": latents([r["winner_path"] for r in rows])}
    if all(r.get("loser_path") for r in rows):
        out["x_l"] = latents([r["loser_path"] for r in rows])
    enc, glob = model.conditioning([r["caption"] for r in rows], [r["seconds"] for r in rows])
    out["enc"], out["glob"] = enc, glob
    # each pair's loss counts its clip's own frames (+ a small margin), not the window's padding
    out["frames"] = torch.tensor([min(frames, model.clip_frames(r["seconds"]) + LOSS_MARGIN_FRAMES) for r in rows],
                                 device=out["x_w"].device)
    return out


def _shard(rows: list[dict], rank: int, world: int) -> list[dict]:
    rows = sorted(rows, key=lambda r: r["pair_id"])
    total = math.ceil(len(rows) / world) * world
    padded = rows + rows[:total - len(rows)] if len(rows) else rows
    return padded[rank::world]


def _say(message: str) -> None:
    """One log line from a worker (Ray Train V2 patches ``print`` into its logger, which echoes it twice)."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def _mean_over_workers(values: dict[str, float], world: int) -> dict[str, float]:
    if world == 1:
        return values
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / world for k, v in zip(keys, t.tolist())}


def train_loop_per_worker(config: dict) -> None:
    import pandas as pd
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    from synthio_ray.config import build_config
    from synthio_ray.train.t2a_model import load_alignable

    cfg = build_config(config["cfg"])
    a = cfg.align
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, int(a.cpus_per_worker)))
    device = ray.train.torch.get_device()
    seed = cfg.seed if a.seed is None else a.seed
    pref_dir = Path(config["pref_dir"])

    torch.manual_seed(seed)  # same adapter init on every rank (DDP broadcasts rank 0's anyway)
    model = load_alignable(cfg, str(device), config.get("t2a_path"))
    table = pd.read_parquet(pref_dir / "manifest.parquet")
    table = table[table["status"] == "ok"]
    if a.objective == "dpo":
        table = table[table["loser_path"].notna()]
    rows = _shard(table.to_dict("records"), rank, world)
    key = str(table["build_key"].iloc[0]) if len(table) else None
    fp = fingerprint(cfg, key, config.get("t2a_path"))

    opt = torch.optim.AdamW(model.trainable_parameters(), lr=a.lr, weight_decay=a.weight_decay)
    start, history, steps_log, starts = 0, [], [], []
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            state = torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=False)
        if state["fingerprint"] != fp:
            diff = {k: (state["fingerprint"].get(k), v) for k, v in fp.items() if state["fingerprint"].get(k) != v}
            raise ValueError(f"the checkpoint to resume was made with other settings {diff}: use another --out")
        model.load_trainable_state(state["trainable"])
        opt.load_state_dict(state["optimizer"])
        start, history, steps_log, starts = state["epoch"], state["history"], state["steps"], state["starts"]
        if rank == 0:
            _say(f"[align] resuming after epoch {start} of {a.epochs}")
    if start >= a.epochs:
        return  # finished before: the run's last checkpoint is its result
    starts.append(start)
    data = encode_pairs(model, rows, pref_dir, a.encode_batch)
    module = ray.train.torch.prepare_model(model.module)
    params = model.trainable_parameters()

    per_worker = max(1, math.ceil(a.batch_size / world))
    n = len(rows)
    n_steps = math.ceil(n / per_worker)
    for epoch in range(start, a.epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(stable_int("align-order", seed, epoch)))
        sums = {k: 0.0 for k in METRIC_KEYS}
        times = []
        for step in range(n_steps):
            t0 = time.perf_counter()
            idx = order[step * per_worker:(step + 1) * per_worker].to(device)
            batch = {k: v[idx] for k, v in data.items()}
            gen = torch.Generator().manual_seed(stable_int("align-noise", seed, epoch, step, rank))
            opt.zero_grad(set_to_none=True)
            m = accumulate_step(model, module, batch, a.objective, a.beta, a.timesteps, gen, a.cfg_dropout,
                                a.micro_batch)
            if a.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, a.grad_clip)
            opt.step()
            times.append(time.perf_counter() - t0)
            m = _mean_over_workers(m, world)
            for k, v in m.items():
                sums[k] += v * len(idx)  # pair-weighted: the last batch of an epoch can be smaller
            g = epoch * n_steps + step + 1
            steps_log.append({"epoch": epoch + 1, "step": g, **m, "seconds": times[-1]})
            if rank == 0 and (g % a.log_every == 0 or step == n_steps - 1):
                acc = f" acc {m['implicit_acc']:.3f} margin {m['reward_margin']:+.4f}" if "implicit_acc" in m else ""
                _say(f"[align] epoch {epoch + 1} step {g}: loss {m['loss']:.4f}{acc} ({times[-1]:.2f} s)")
        summary = {k: v / n for k, v in sums.items() if k in m}
        summary.update(epoch=epoch + 1, steps=n_steps, step_s=statistics.median(times))
        history.append(summary)
        if rank == 0:
            acc = (f" implicit acc {summary['implicit_acc']:.3f} reward margin {summary['reward_margin']:+.4f}"
                   if "implicit_acc" in summary else "")
            _say(f"[align] epoch {epoch + 1}/{a.epochs}: loss {summary['loss']:.4f}{acc}")
        with tempfile.TemporaryDirectory() as d:
            checkpoint = None
            if rank == 0:
                torch.save({"epoch": epoch + 1, "trainable": model.trainable_state(), "optimizer": opt.state_dict(),
                            "history": history, "steps": steps_log, "starts": starts, "fingerprint": fp},
                           Path(d) / STATE_FILE)
                checkpoint = Checkpoint.from_directory(d)
            ray.train.report({k: v for k, v in summary.items()}, checkpoint=checkpoint)
        crash = config.get("crash_once")
        if crash and epoch + 1 == crash["epoch"] and not Path(crash["marker"]).exists():
            Path(crash["marker"]).write_text("crashed once\n")
            raise RuntimeError(f"injected failure after epoch {epoch + 1} (crash_once)")

