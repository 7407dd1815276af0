"""The world report: how well each trained model of the procedural world does its job.

    python jobs/world_report.py [--models DIR] [--judge DIR] [--out DIR]

Loads the models that ``python -m synthio_ray.trained_zoo train --work DIR`` wrote (through the pipeline's
own backends) and measures them on held-out target clips with the judge: VAE reconstruction ceiling, LLM
answers that pass the checks per prompt, CLAP zero-shot accuracy, the un-aligned text-to-audio model's
label consistency and the CLAP filter's gap. Writes OUT/world_report.json and OUT/world_report.md.
(The pipeline-level rows of the issue's table, DPO / ERM distances and augmentation, are not in yet.)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="jobs/world_report.py", description=__doc__.splitlines()[0])
    p.add_argument("--models", default="runs/world", help="trained models folder (default: runs/world)")
    p.add_argument("--judge", default=None, help="judge folder (default: MODELS/judge)")
    p.add_argument("--out", default="runs/world_report", help="output folder")
    args = p.parse_args(argv)
    from synthio_ray.world.report import markdown, model_report

    models = Path(args.models)
    judge = Path(args.judge) if args.judge else models / "judge"
    if not (judge / "judge.json").exists():
        print(f"error: no judge in {judge} (train one with synthio_ray.world.judge.train_judge)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    rows = model_report(models, judge)
    table = markdown(rows)
    (out / "world_report.json").write_text(json.dumps({"rows": rows, "seconds": round(time.monotonic() - t0)},
                                                      indent=1))
    (out / "world_report.md").write_text(table + "\n")
    print(table)
    print(f"written to {out} in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
