"""Align the text-to-audio model with the small set: Diffusion-DPO (or ERM) on Ray Train.

    python jobs/align.py [--config FILE] [--out DIR] [--objective dpo|erm] [--t2a PATH] [--data DIR]
                         [--epochs N] [--workers W] [key=value ...]

Reads D_small (align.data, or the embedded default prepared into OUT/prepared), builds the preference
set (each gold clip with the template caption beats align.losers clips the model generates itself,
through the augmentation job's synthesis stage on Ray Data; OUT/preferences/), trains LoRA adapters on
the DiT attention (align.full_finetune=true: the whole DiT) with Diffusion-DPO against a frozen
reference (--objective erm: the plain diffusion loss on the gold clips), with DDP over --workers Ray
Train workers and a checkpoint per epoch. Writes OUT/checkpoint (align.export: the LoRA adapters in peft
format with the base model they go on, by default; `merged`: a complete diffusers Stable Audio pipeline
with the adapters merged; either way `python jobs/augment.py --t2a OUT/checkpoint`), OUT/metrics.json,
OUT/config.yaml. Re-running the same command resumes after the last finished epoch.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout

from synthio_ray.cli import DEFAULT_CONFIG, fail, parse_job_args  # noqa: E402
from synthio_ray.config import config_to_dict, load_config, save_config  # noqa: E402
from synthio_ray.placement import print_placement_warnings  # noqa: E402

FLAGS = {
    "--out": ("out", "output folder (default: runs/align)"),
    "--objective": ("align.objective", "dpo (Diffusion-DPO) or erm (plain diffusion loss on the gold clips)"),
    "--t2a": ("models.t2a.path", "starting text-to-audio checkpoint (folder, hub id or zoo:t2a)"),
    "--data": ("align.data", "prepared dataset folder (jobs/prepare.py output)"),
    "--epochs": ("align.epochs", "training epochs"),
    "--workers": ("align.workers", "Ray Train workers (DDP)"),
}
RESUMABLE = ("epochs", "workers", "gpus_per_worker", "cpus_per_worker", "max_failures", "keep_checkpoints",
             "log_every", "export")  # may change between a run and its resumption


def _flat(tree: dict, prefix: str = "") -> dict:
    """A nested config dict -> {dotted key: value}."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_job_args(argv, "jobs/align.py", __doc__.splitlines()[0], FLAGS, DEFAULT_CONFIG)
    out = Path(cfg.out or "runs/align")
    saved = out / "config.yaml"
    if saved.is_file():
        before, now = _flat(config_to_dict(load_config(saved))), _flat(config_to_dict(cfg))
        fixed = [k for k in now if k == "seed" or k.startswith(("models.", "data."))
                 or (k.startswith("align.") and k.split(".")[1] not in RESUMABLE)]
        changed = [k for k in fixed if before.get(k) != now[k]]
        if changed:
            diff = ", ".join(f"{k}: {before.get(k)!r} -> {now[k]!r}" for k in changed)
            fail(f"{out} holds an alignment run with other settings ({diff}); resuming it would mix two runs. "
                 f"Use another --out.")
    from synthio_ray.train.align import AlignError, run_align

    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, saved)
    print_placement_warnings(cfg, "align")
    try:
        report = run_align(cfg, out)
    except AlignError as e:
        fail(str(e), code=1)
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
