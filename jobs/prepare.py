"""Prepare the small labelled set D_small from a dataset (or the embedded procedural default).

    python jobs/prepare.py --source PATH [--layout auto|manifest|folders|esc50|urbansound8k|pattern]
                           [--pattern REGEX] --n 50 --seed 0 --out DIR [key=value ...]

Writes DIR/{train,val,test,pool,quarantine}.parquet, labels.json, summary.json and config.yaml, and
prints where every input row went. Without --source it builds the embedded procedural dataset.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout

from synthio_ray.cli import fail, parse_job_args  # noqa: E402
from synthio_ray.config import save_config  # noqa: E402
from synthio_ray.data.prepare import format_summary, prepare_dataset  # noqa: E402
from synthio_ray.data.sampling import SamplingError  # noqa: E402
from synthio_ray.data.sources import SourceError  # noqa: E402

FLAGS = {
    "--source": ("data.source", "dataset folder or manifest file (default: embedded dataset)"),
    "--layout": ("data.layout", "auto, manifest, folders, esc50, urbansound8k or pattern"),
    "--pattern": ("data.pattern", "regex with a (?P<label>...) group for a flat folder"),
    "--n": ("data.n", "clips in the small training set"),
    "--seed": ("seed", "sampling seed"),
    "--out": ("out", "output folder (default: runs/prepared)"),
}


def main(argv: list[str] | None = None) -> int:
    cfg = parse_job_args(argv, "jobs/prepare.py", __doc__.splitlines()[0], FLAGS)
    out = Path(cfg.out or "runs/prepared")
    try:
        report = prepare_dataset(cfg, out)
    except (SourceError, SamplingError) as e:
        fail(str(e))
    save_config(cfg, out / "config.yaml")
    print(format_summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
