"""Train the AST classifier on D_small (+ synthetic or augmented clips) with Ray Train; select on val, test once.

    python jobs/train_classifier.py [--data PREP_DIR] [--synthetic AUG_DIR ...] [--method NAME] [--out DIR]
                                    [--epochs N] [--workers W] [key=value ...]

Methods (the paper's baselines): gold, noise, pitch, specaugment, audiomentations, retrieval (CLAP-nearest
clips of an outside unlabelled pool, train_classifier.retrieval_pool: required), retrieval_in_domain (the
same from the prepared set's own pool split), synthetic (the accepted clips of each
--synthetic output; train_classifier.synthetic_k / synthetic_threshold select a (k, p) subset),
synthetic_only (paper Table 3), and synthetic+<noise|pitch|specaugment|audiomentations|retrieval[_in_domain]>.
Classic copies are drawn afresh every epoch (train_classifier.aug_draws bounds the distinct draws);
noise (gaussian, background) and audiomentations (train_classifier.audiomentations_search) train every
candidate and keep the one with the best validation score; only that one is tested.
Without --data the embedded default is prepared into OUT/prepared. Writes OUT/metrics.json (test
accuracy, macro-F1, mAP for multi-label sets, per-class accuracy, the validation curve, the selected
epoch, seed, what data went in, zero-shot CLAP on test), OUT/model (the selected weights) and
OUT/config.yaml.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout

from synthio_ray.cli import DEFAULT_CONFIG, fail, parse_job_args  # noqa: E402
from synthio_ray.config import save_config  # noqa: E402
from synthio_ray.placement import print_placement_warnings  # noqa: E402

FLAGS = {
    "--out": ("out", "output folder (default: runs/classifier)"),
    "--data": ("train_classifier.data", "prepared dataset folder (jobs/prepare.py output)"),
    "--synthetic": ("train_classifier.synthetic", "augmentation output (jobs/augment.py --out); repeat for several"),
    "--method": ("train_classifier.method", "gold, noise, pitch, specaugment, audiomentations, retrieval, "
                 "synthetic, synthetic_only, synthetic+<classic>"),
    "--epochs": ("train_classifier.epochs", "training epochs"),
    "--workers": ("train_classifier.workers", "Ray Train workers (DDP)"),
    "--seed": ("train_classifier.seed", "training seed"),
}


def _join_repeated(argv: list[str], flag: str) -> list[str]:
    """``--synthetic A --synthetic B`` -> ``--synthetic A,B`` (argparse keeps only the last)."""
    values, rest, i = [], [], 0
    while i < len(argv):
        if argv[i] == flag and i + 1 < len(argv):
            values.append(argv[i + 1])
            i += 2
        elif argv[i].startswith(flag + "="):
            values.append(argv[i].split("=", 1)[1])
            i += 1
        else:
            rest.append(argv[i])
            i += 1
    return rest + ([flag, ",".join(values)] if values else [])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = _join_repeated(argv, "--synthetic")
    cfg = parse_job_args(argv, "jobs/train_classifier.py", __doc__.splitlines()[0], FLAGS, DEFAULT_CONFIG)
    out = Path(cfg.out or "runs/classifier")
    from synthio_ray.train.classifier_run import TrainError, run_train_classifier, summary

    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    print_placement_warnings(cfg, "train_classifier")
    try:
        metrics = run_train_classifier(cfg, out)
    except (TrainError, ValueError, FileNotFoundError) as e:
        fail(str(e), code=1)
    print(summary(metrics))
    print(f"written to {out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
