"""The world report: how well each trained model of the procedural world does its job, and the method's effects.

    python jobs/world_report.py [--out DIR] [--parts models,align,augment] [--seeds 0,1,2] [--models DIR]
                                [--methods synthio,wo_dpo,...] [key=value ...]

``models``: the trained world zoo (default: the committed ``world:`` weights; ``--models DIR`` for the folder
``python -m synthio_ray.trained_zoo train --work DIR`` wrote) measured on held-out target clips with the judge:
VAE reconstruction ceiling, LLM answers that pass the checks per prompt, CLAP zero-shot accuracy, the
un-aligned text-to-audio model's label consistency and the CLAP filter's gap. ``align``: Diffusion-DPO and
ERM through the align job, judge Frechet distance aligned / un-aligned. ``augment``: the grid job on the
embedded world (Synthio, the baselines and every ablation minus gold-only; the judge's label consistency of
each synthetic set, final and by status). Writes OUT/world_report.json
and OUT/world_report.md; a re-run reuses finished alignments and grid trials in OUT (use another OUT
for other settings). ``key=value``: dotted config overrides for the align and augment parts, as the jobs
take them (``align.lr=5e-4``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout

PARTS = ("models", "align", "augment")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="jobs/world_report.py", description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None, help="trained models folder (default: the committed world zoo)")
    p.add_argument("--config", default=None, help="job config for align/augment (default: configs/default.yaml)")
    p.add_argument("--out", default="runs/world_report", help="output folder")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    p.add_argument("--seeds", default="0,1,2", help="seeds of the align and augment parts")
    p.add_argument("--methods", default=None, help="comma-separated grid rows of the augment part (default: "
                   "gold, every baseline and ablation); gold is always added")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (align/augment parts)")
    args = p.parse_args(argv)
    parts = [x for x in args.parts.split(",") if x]
    bad = sorted(set(parts) - set(PARTS))
    if bad:
        print(f"error: unknown parts {bad}; choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    from synthio_ray.world.effects import GRID_METHODS

    methods = GRID_METHODS if args.methods is None else ["gold"] + [m for m in args.methods.split(",")
                                                                    if m and m != "gold"]
    unknown = sorted(set(methods) - set(GRID_METHODS))
    if unknown:
        print(f"error: unknown methods {unknown}; choose from {', '.join(GRID_METHODS)}", file=sys.stderr)
        return 2
    from synthio_ray.cli import DEFAULT_CONFIG
    from synthio_ray.config import ConfigError, load_config
    from synthio_ray.world.judge import Judge
    from synthio_ray.world.report import markdown, model_report

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        cfg = load_config(args.config or DEFAULT_CONFIG, args.overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    judge = Judge.load(Path(args.models) / "judge" if args.models else _world("judge"))
    rows, extra, seconds = [], {}, {}
    for part in parts:
        t0 = time.monotonic()
        if part == "models":
            rows += model_report(args.models, judge)
        elif part == "align":
            from synthio_ray.world.effects import alignment_rows

            r, extra["align"] = alignment_rows(cfg, out / "align", judge, seeds)
            rows += r
        else:
            from synthio_ray.world.effects import augmentation_rows

            r, extra["grid_table"] = augmentation_rows(cfg, out / "grid", methods, seeds=seeds, judge=judge)
            rows += r
        seconds[part] = round(time.monotonic() - t0)
        print(f"[world_report] {part}: {seconds[part]} s", flush=True)
    table = markdown(rows)
    (out / "world_report.json").write_text(json.dumps({"rows": rows, "seconds": seconds,
                                                       "overrides": args.overrides, **extra}, indent=1))
    (out / "world_report.md").write_text(table + "\n")
    print(table)
    print(f"written to {out} ({', '.join(f'{k} {v} s' for k, v in seconds.items())})")
    return 0


def _world(name: str) -> Path:
    from synthio_ray.models.paths import resolve_model_path

    return Path(resolve_model_path(f"world:{name}"))


if __name__ == "__main__":
    from synthio_ray.lognoise import filter_stderr

    filter_stderr()
    sys.exit(main())
