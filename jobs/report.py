"""Analyses of a synthetic set (paper section 6): diversity, spectral features, FAD, synthetic-only training.

    python jobs/report.py [--data PREP_DIR] [--synthetic AUG_DIR] [--out DIR] [--no-train] [key=value ...]

Compares D_small (PREP_DIR's train split) with the accepted clips of AUG_DIR (or the (k, p) subset given by
train_classifier.synthetic_k / synthetic_threshold): CLAP similarity between each gold clip and its own
synthetic clips (Table 2), distributions of spectral flatness, flux, pitch salience and complexity (Fig. 4,
OUT/features.png), FAD between the two sets on CLAP embeddings (Table 10); then trains the classifier on the
synthetic clips only and on gold only (Table 3; --no-train skips it). Without --data the configured dataset
(the embedded default) is prepared into OUT/prepared; without --synthetic the augmentation job runs into
OUT/synthetic. Writes OUT/analysis.json, OUT/features.csv, OUT/features.png, OUT/report.md,
OUT/synthetic_only/ and OUT/gold/ (metrics.json each).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout

from synthio_ray.cli import DEFAULT_CONFIG, fail, parse_job_args  # noqa: E402
from synthio_ray.config import save_config  # noqa: E402
from synthio_ray.placement import print_placement_warnings  # noqa: E402

FLAGS = {
    "--out": ("out", "output folder (default: runs/report)"),
    "--data": ("train_classifier.data", "prepared dataset folder (jobs/prepare.py output)"),
    "--synthetic": ("train_classifier.synthetic", "augmentation output (jobs/augment.py --out)"),
    "--epochs": ("train_classifier.epochs", "training epochs (synthetic-only and gold runs)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    train = "--no-train" not in argv
    argv = [a for a in argv if a != "--no-train"]
    cfg = parse_job_args(argv, "jobs/report.py", __doc__.splitlines()[0], FLAGS, DEFAULT_CONFIG)
    out = Path(cfg.out or "runs/report")
    from synthio_ray.evaluate.report import run_report
    from synthio_ray.train.classifier_run import TrainError

    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    print_placement_warnings(cfg, "augment")
    if train:
        print_placement_warnings(cfg, "train_classifier")
    try:
        lines = run_report(cfg, out, train=train)
    except (TrainError, ValueError, FileNotFoundError) as e:
        fail(str(e), code=1)
    print("\n".join(lines))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
