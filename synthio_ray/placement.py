"""Where each model runs, and a loud warning when a large model would run on CPU.

Rules (from the config alone, before any work starts):

- A model is *large* unless it is ``zoo:<name>`` or a local file / folder whose weight files total under
  ``LARGE_MODEL_BYTES`` (the tiny zoo, the trained-world models, a CLAP fine-tuned from the zoo). A hub id
  is large: it is a real checkpoint (AST is 0.35 GB, LAION-CLAP 0.6 GB, Stable Audio Open 5 GB,
  Qwen2-Audio 16 GB in bf16).
- A model lands on CPU when its device is ``cpu``, or ``auto`` with no GPU asked for it (the config key
  that asks, e.g. ``resources.t2a_gpus``). A large model on CPU gets a warning line naming the model and
  the key to set (``placement_warnings(cfg, job)``); jobs print them and the augmentation dataset card
  lists them.
- ``in_driver(path, gpus)``: only a small model with no GPU may run in the job's driver process (on a
  cluster the driver runs on the CPU head, which holds no model); everything else runs in a Ray actor or
  task that reserves its GPUs (``run_placed``).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from synthio_ray.lognoise import stderr_isatty
from synthio_ray.models.paths import is_builtin

__all__ = ["LARGE_MODEL_BYTES", "JOBS", "ModelUse", "is_large", "in_driver", "captioner_gpus", "model_uses",
           "placement_warnings", "print_placement_warnings", "run_placed"]

LARGE_MODEL_BYTES = 64 * 2**20
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")
JOBS = ("augment", "align", "train_classifier", "sweep", "grid")


def is_large(path: str | None) -> bool:
    """True for a hub id, or a local checkpoint whose weight files total ``LARGE_MODEL_BYTES`` or more."""
    if not path or is_builtin(path):
        return False
    p = Path(os.path.expanduser(path))
    if not p.exists():
        return True
    files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files if f.suffix in WEIGHT_SUFFIXES) >= LARGE_MODEL_BYTES


def in_driver(path: str | None, gpus: float) -> bool:
    """May this model load in the driver process? Only a small one that asks for no GPU."""
    return not gpus and not is_large(path)


def captioner_gpus(cfg) -> float:
    """GPUs per gold-captioner actor: ``resources.captioner_gpus``, or ``resources.llm_gpus`` when null."""
    g = cfg.resources.captioner_gpus
    return cfg.resources.llm_gpus if g is None else g


@dataclass(frozen=True)
class ModelUse:
    """One model a job loads: its config section, path, device setting, the GPUs it gets, and the fix."""

    model: str          # config section, e.g. "models.t2a"
    path: str
    role: str           # what it does there, e.g. "synthesis actors"
    device: str
    gpus: float
    fix: str            # what to set to put it on a GPU, e.g. "resources.t2a_gpus=1"

    @property
    def on_cpu(self) -> bool:
        return self.device == "cpu" or (self.device == "auto" and not self.gpus)

    def warning(self, job: str) -> str:
        fix = f"set {self.model}.device=auto and {self.fix}" if self.device == "cpu" else f"set {self.fix}"
        return (f"WARNING: {self.model} ({self.path}) runs on CPU for the {self.role} of {job}: "
                f"{fix} to put it on a GPU")


def _augment_uses(cfg) -> list[ModelUse]:
    m, r = cfg.models, cfg.resources
    uses = [ModelUse("models.t2a", m.t2a.path, "synthesis actors", m.t2a.device, r.t2a_gpus,
                     "resources.t2a_gpus=1"),
            ModelUse("models.clap", m.clap.path, "CLAP fine-tuning and scoring", m.clap.device, r.clap_gpus,
                     "resources.clap_gpus=0.25 (a share of a GPU)")]
    if m.llm.backend == "transformers":   # vllm always runs on GPUs; http is a server elsewhere
        uses.append(ModelUse("models.llm", m.llm.path, "LLM actors", m.llm.device, r.llm_gpus,
                             "resources.llm_gpus=1"))
    if m.captioner.backend == "transformers":
        uses.append(ModelUse("models.captioner", m.captioner.path or "", "gold captions", m.captioner.device,
                             captioner_gpus(cfg), "resources.captioner_gpus=1"))
    return uses


def _align_uses(cfg) -> list[ModelUse]:
    t = cfg.models.t2a
    return [ModelUse("models.t2a", t.path, "loser generation", t.device, cfg.resources.t2a_gpus,
                     "resources.t2a_gpus=1"),
            ModelUse("models.t2a", t.path, "DPO training workers", "auto", cfg.align.gpus_per_worker,
                     "align.gpus_per_worker=1")]


def _classifier_uses(cfg, trial_gpus: float | None = None, trial_key: str = "") -> list[ModelUse]:
    """The AST trainer: Ray Train workers (``train_classifier.gpus_per_worker``), a Tune trial's own process
    (``trial_gpus``), or with backend=local outside Ray, this process (a GPU when this machine has one)."""
    c, t = cfg.models.classifier, cfg.train_classifier
    if trial_gpus is not None:
        return [ModelUse("models.classifier", c.path, "classifier trials", c.device, trial_gpus, f"{trial_key}=1")]
    if t.backend == "ray_train":
        return [ModelUse("models.classifier", c.path, "classifier training workers", c.device, t.gpus_per_worker,
                         "train_classifier.gpus_per_worker=1")]
    import torch

    return [ModelUse("models.classifier", c.path, "classifier training in this process", c.device,
                     float(torch.cuda.is_available()),
                     "train_classifier.backend=ray_train and train_classifier.gpus_per_worker=1")]


def _clap_use(cfg, role: str) -> ModelUse:
    c = cfg.models.clap
    return ModelUse("models.clap", c.path, role, c.device, cfg.resources.clap_gpus,
                    "resources.clap_gpus=0.25 (a share of a GPU)")


def _trials(cfg, section: str) -> list[ModelUse]:
    s = getattr(cfg, section)
    if s.backend == "local":
        return _classifier_uses(cfg, s.trial_gpus, f"{section}.trial_gpus")
    return [ModelUse(u.model, u.path, "classifier trials' training workers", u.device, u.gpus, u.fix)
            for u in _classifier_uses(cfg)]


def model_uses(cfg, job: str) -> list[ModelUse]:
    """Every model ``job`` (one of ``JOBS``) loads with the config, with where it runs."""
    if job == "augment":
        return _augment_uses(cfg)
    if job == "align":
        return _align_uses(cfg)
    if job == "train_classifier":
        from synthio_ray.train.classifier_data import parse_method

        t = cfg.train_classifier
        method = t.method or ("synthetic" if t.synthetic else "gold")
        uses = _classifier_uses(cfg)
        if t.zero_shot or parse_method(method).retrieval:
            uses.append(_clap_use(cfg, "zero-shot CLAP and retrieval"))
        return uses
    if job == "sweep":
        return ([] if cfg.sweep.synthetic else _augment_uses(cfg)) + _trials(cfg, "sweep")
    if job == "grid":
        from synthio_ray.experiments.grid import SYNTH_VARIANTS, parse_row

        variants = {parse_row(r)[0] for r in cfg.grid.methods} - {None}
        uses = _augment_uses(cfg) if variants else []
        if any(SYNTH_VARIANTS[v][0] for v in variants):
            uses += _align_uses(cfg)
        uses += _trials(cfg, "grid")
        if cfg.grid.zero_shot or cfg.grid.analyses:
            uses.append(_clap_use(cfg, "zero-shot CLAP row and analyses"))
        return uses
    raise ValueError(f"unknown job {job!r}: one of {', '.join(JOBS)}")


def placement_warnings(cfg, job: str) -> list[str]:
    """One warning line per large model that ``job`` would run on CPU (empty when every one has a GPU)."""
    lines = [u.warning(job) for u in model_uses(cfg, job) if u.on_cpu and is_large(u.path)]
    return list(dict.fromkeys(lines))


def print_placement_warnings(cfg, job: str, stream=None) -> list[str]:
    """Print ``placement_warnings`` to stderr (bold red on a terminal); returns them."""
    lines = placement_warnings(cfg, job)
    stream = stream or sys.stderr
    tty = stderr_isatty(stream)
    for line in lines:
        print(f"\033[1;31m{line}\033[0m" if tty else line, file=stream, flush=True)
    return lines


def run_placed(fn: Callable[..., Any], *args: Any, gpus: float = 0.0, cpus: float = 1.0, driver: bool = False,
               **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in this process when ``driver``, else in a Ray task reserving ``gpus`` and
    ``cpus`` (Ray must be initialised; ``fn`` and its arguments must pickle, files it writes must be on
    storage the driver sees)."""
    if driver:
        return fn(*args, **kwargs)
    import ray

    task = ray.remote(num_gpus=gpus or 0, num_cpus=cpus, max_retries=0)(fn)
    return ray.get(task.remote(*args, **kwargs))
