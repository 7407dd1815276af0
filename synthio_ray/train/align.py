"""The alignment job as a library call: ``run_align(cfg, out) -> AlignReport``.

1. D_small: ``align.data``, or the embedded default prepared into ``OUT/prepared``.
2. Preference set (``preferences.py``): winners = gold clips in the model's format, losers = the
   model's own generations through the augmentation ``Synthesizer`` on Ray Data. ERM: winners only.
3. Training on Ray Train (``TorchTrainer``, ``align_loop.train_loop_per_worker``): DDP over
   ``align.workers``, a checkpoint per epoch under ``OUT/ray_train/align``. Ray Train V2 reloads the
   run's checkpoint list from that folder when a run with the same name and storage path starts
   again, so re-running the same command resumes after the last finished epoch; within a run, a
   failed worker group is restarted from the last checkpoint up to ``align.max_failures`` times.
4. Export to ``OUT/checkpoint`` (``--t2a OUT/checkpoint`` for jobs/augment.py) per ``align.export``: the
   last checkpoint's LoRA adapters in peft format with the starting model's location (``adapter``, the
   default under LoRA: megabytes, loaded onto the base at generation time), or merged into the starting
   model and saved as a complete diffusers pipeline (``merged``); and ``OUT/metrics.json`` (per-epoch
   and per-step loss, implicit accuracy, reward margin; first and last).
"""
from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from synthio_ray.config import Config, config_to_dict

__all__ = ["AlignReport", "AlignError", "run_align", "fit", "export_checkpoint", "export_mode", "RUN_NAME"]

RUN_NAME = "align"


class AlignError(RuntimeError):
    """The alignment cannot run or did not finish (the message says why)."""


@dataclass
class AlignReport:
    out: Path
    checkpoint: Path
    pairs: int
    failed_pairs: int
    metrics: dict

    def summary(self) -> str:
        m = self.metrics
        first, last = m["first"], m["last"]
        lines = [f"{m['objective']} on {self.pairs} {'pairs' if m['objective'] == 'dpo' else 'gold clips'} "
                 f"({self.failed_pairs} unusable), {len(m['epochs'])} epochs, median step "
                 f"{m['step_seconds_median']:.3f} s"]
        for name, key in (("loss", "loss"), ("implicit accuracy", "implicit_acc"), ("reward margin", "reward_margin")):
            if key in first:
                lines.append(f"  {name:<18} first epoch {first[key]:+.4f}   last epoch {last[key]:+.4f}")
        kind = "merged pipeline" if m["export"] == "merged" else f"LoRA adapters on {m['base_model']}"
        lines.append(f"aligned checkpoint ({kind}): {self.checkpoint}")
        lines.append(f"use it: python jobs/augment.py --t2a {self.checkpoint}")
        return "\n".join(lines)


def fit(cfg: Config, out: Path, pref_dir: Path, t2a_path: str | None = None, crash_once: dict | None = None,
        name: str = RUN_NAME) -> Any:
    """Run (or resume) the Ray Train run ``OUT/ray_train/<name>``; returns its ``Result``."""
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from synthio_ray.train.align_loop import train_loop_per_worker

    a = cfg.align
    resources = {"CPU": a.cpus_per_worker}
    if a.gpus_per_worker:
        resources["GPU"] = a.gpus_per_worker
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": config_to_dict(cfg), "pref_dir": str(pref_dir), "t2a_path": t2a_path,
                           "crash_once": crash_once},
        scaling_config=ScalingConfig(num_workers=a.workers, use_gpu=a.gpus_per_worker > 0,
                                     resources_per_worker=resources),
        run_config=RunConfig(name=name, storage_path=str((out / "ray_train").resolve()),
                             failure_config=FailureConfig(max_failures=a.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=a.keep_checkpoints),
                             logging_config=LoggingConfig(log_level="WARNING")),
    )
    return trainer.fit()


def _final_state(result: Any) -> dict:
    from synthio_ray.train.align_loop import STATE_FILE

    if result.error is not None:
        raise AlignError(f"training failed: {result.error}")
    if result.checkpoint is None:
        raise AlignError("training finished without a checkpoint")
    with result.checkpoint.as_directory() as d:
        return torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=False)


def export_mode(cfg: Config) -> str:
    """``align.export`` with ``auto`` resolved: adapter under LoRA, merged under full fine-tuning."""
    e = cfg.align.export
    return ("merged" if cfg.align.full_finetune else "adapter") if e == "auto" else e


def export_checkpoint(cfg: Config, state: dict, dest: Path, t2a_path: str | None = None, info: dict | None = None,
                      export: str | None = None) -> Path:
    """Trained tensors of a ``state.pt`` -> the aligned model at ``dest``: LoRA adapters + the base model's
    location, or a complete merged diffusers pipeline (``export``, default ``export_mode(cfg)``)."""
    from synthio_ray.models.paths import model_ref
    from synthio_ray.train.t2a_model import load_alignable

    model = load_alignable(cfg, "cpu", t2a_path, dtype="float32")   # merged into the fp32 base, whatever trained
    model.load_trainable_state(state["trainable"])
    return model.save_aligned(dest, info, export or export_mode(cfg), base=model_ref(t2a_path or cfg.models.t2a.path))


def _metrics(cfg: Config, state: dict, pairs: int, dest: Path, base: str) -> dict:
    epochs, steps = state["history"], state["steps"]
    return {"objective": cfg.align.objective, "beta": cfg.align.beta, "pairs": pairs, "base_model": base,
            "export": export_mode(cfg),
            "checkpoint": str(dest), "epochs": epochs, "first": epochs[0], "last": epochs[-1],
            "step_seconds_median": statistics.median(s["seconds"] for s in steps), "steps": steps}


def run_align(cfg: Config, out: str | Path, t2a_path: str | None = None, crash_once: dict | None = None,
              log: Any = print) -> AlignReport:
    """Run (or resume) the whole alignment into ``out``; see the module docstring for the outputs."""
    from ray.train import TrainingFailedError

    from synthio_ray.data.manifest import load_prepared
    from synthio_ray.data.prepare import prepare_dataset
    from synthio_ray.models.paths import model_ref
    from synthio_ray.pipeline.augment import ensure_ray, gold_rows
    from synthio_ray.train.preferences import build_preferences

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    a = cfg.align
    data_dir = Path(a.data) if a.data else out / "prepared"
    if not a.data and not (data_dir / "labels.json").is_file():
        prepare_dataset(cfg, data_dir)
    gold = gold_rows(load_prepared(data_dir), None)
    ensure_ray(cfg)
    pref_dir = out / "preferences"
    pairs = build_preferences(cfg, gold, pref_dir, t2a_path, log=log)
    ok = pairs[pairs["status"] == "ok"]
    if a.objective == "dpo":
        ok = ok[ok["loser_path"].notna()]
    if not len(ok):
        raise AlignError(f"no usable pairs in {pref_dir / 'manifest.parquet'} (see its error column)")
    log(f"training: {a.objective} on {len(ok)} rows, {a.epochs} epochs, {a.workers} worker(s)")
    try:
        result = fit(cfg, out, pref_dir, t2a_path, crash_once)
    except TrainingFailedError as e:
        raise AlignError(f"training failed after {a.max_failures} recoveries (re-run the same command to "
                         f"resume from the last epoch's checkpoint): {e}") from None
    state = _final_state(result)
    if state["epoch"] < a.epochs:
        raise AlignError(f"the last checkpoint holds epoch {state['epoch']} of {a.epochs}")
    base = model_ref(t2a_path or cfg.models.t2a.path)
    dest = out / "checkpoint"
    info = {"objective": a.objective, "epochs": state["epoch"],
            "align": config_to_dict(cfg)["align"], "first": state["history"][0], "last": state["history"][-1]}
    from synthio_ray.placement import is_large, run_placed

    # merging loads the whole pipeline: a real checkpoint does it on a worker node, never on the head's driver
    run_placed(export_checkpoint, cfg, state, dest, t2a_path, info, cpus=a.cpus_per_worker,
               driver=not is_large(t2a_path or cfg.models.t2a.path))
    metrics = _metrics(cfg, state, len(ok), dest, base)
    tmp = out / f".metrics.json.{os.getpid()}"
    tmp.write_text(json.dumps(metrics, indent=2))
    os.replace(tmp, out / "metrics.json")
    return AlignReport(out=out, checkpoint=dest, pairs=len(ok), failed_pairs=len(pairs) - len(ok), metrics=metrics)
