"""Ray Tune sweep over the augmentation factor k and the CLAP threshold p, generating synthetic clips once.

    python jobs/sweep.py [--config FILE] [--out DIR] [--data PREP_DIR] [--ks 1,2,3,4,5] [--thresholds P,...]
                         [--synthetic AUG_DIR] [key=value ...]

Runs the augmentation a single time at (max k, max p) into OUT/synthetic (or selects from --synthetic, an
output made that way), then one Tune trial per (k, p): each trains the classifier on D_small plus the
clips the (k, p) rule selects from that manifest (the first k captions of each gold clip; per caption, the
first reflection round scoring >= p) and reports the validation accuracy of its selected epoch. Without
--thresholds: augment.threshold (auto: the p the generation calibrated) and the 25th/50th percentiles of the
round-0 scores below it. Writes
OUT/best.json (best k, p by validation; how many clips the sweep generated against trials x clips),
OUT/sweep.csv, OUT/sweep.md, OUT/sweep.png, OUT/trials/*/metrics.json, OUT/config.yaml.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout

from synthio_ray.cli import DEFAULT_CONFIG, fail, parse_job_args  # noqa: E402
from synthio_ray.config import save_config  # noqa: E402
from synthio_ray.placement import print_placement_warnings  # noqa: E402

FLAGS = {
    "--out": ("out", "output folder (default: runs/sweep)"),
    "--data": ("train_classifier.data", "prepared dataset folder (jobs/prepare.py output)"),
    "--ks": ("sweep.ks", "augmentation factors k, comma-separated"),
    "--thresholds": ("sweep.thresholds", "CLAP thresholds p, comma-separated"),
    "--synthetic": ("sweep.synthetic", "an augmentation output made at (max k, max p) to select from"),
    "--epochs": ("train_classifier.epochs", "training epochs per trial"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_job_args(argv, "jobs/sweep.py", __doc__.splitlines()[0], FLAGS, DEFAULT_CONFIG)
    out = Path(cfg.out or "runs/sweep")
    from synthio_ray.experiments.sweep import run_sweep

    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    print_placement_warnings(cfg, "sweep")
    try:
        report = run_sweep(cfg, out)
    except (RuntimeError, ValueError, FileNotFoundError) as e:
        fail(str(e), code=1)
    b = report.best
    print((out / "sweep.md").read_text())
    print(f"best: k={b['k']} p={b['p']:.4g} (val {b['metric']} {b['val']:.4f}, test {b['test']:.4f}); "
          f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
