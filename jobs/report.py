"""Analyses of a synthetic set (paper section 6): diversity, spectral features, FAD, synthetic-only training.

    python jobs/report.py --data PREP_DIR --synthetic AUG_DIR [--out DIR] [--no-train] [key=value ...]

Compares D_small (PREP_DIR's train split) with the accepted clips of AUG_DIR (or the (k, p) subset given by
train_classifier.synthetic_k / synthetic_threshold): CLAP similarity between each gold clip and its own
synthetic clips (Table 2), distributions of spectral flatness, flux, pitch salience and complexity (Fig. 4,
OUT/features.png), FAD between the two sets on CLAP embeddings (Table 10); then trains the classifier on the
synthetic clips only and on gold only (Table 3; --no-train skips it). Writes OUT/analysis.json,
OUT/features.csv, OUT/features.png, OUT/report.md, OUT/synthetic_only/ and OUT/gold/ (metrics.json each).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout

from synthio_ray.cli import DEFAULT_CONFIG, fail, parse_job_args  # noqa: E402
from synthio_ray.config import build_config, config_to_dict, save_config  # noqa: E402

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
    t = cfg.train_classifier
    if not t.data or not t.synthetic:
        fail("give --data PREP_DIR (jobs/prepare.py output) and --synthetic AUG_DIR (jobs/augment.py output)")
    out = Path(cfg.out or "runs/report")
    from synthio_ray.data.manifest import load_prepared
    from synthio_ray.evaluate.analysis import analyze_synthetic
    from synthio_ray.models.clap import load_clap
    from synthio_ray.train.classifier_run import TrainError, run_train_classifier
    from synthio_ray.train.synthetic import synthetic_rows

    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    clap = load_clap(cfg.models.clap)
    syn = synthetic_rows(t.synthetic, t.synthetic_k, t.synthetic_threshold)
    if not len(syn):
        fail(f"no selected synthetic clips in {', '.join(t.synthetic)}")
    a = analyze_synthetic(load_prepared(t.data).split("train"), syn, clap, out)
    lines = ["# Synthetic set analyses", "", "```", json.dumps(a, indent=2), "```"]
    if train:
        try:
            for method in ("synthetic_only", "gold"):
                tree = config_to_dict(cfg)
                tree["train_classifier"].update(method=method, save_model=False, zero_shot=method == "gold",
                                                feature_cache=str(out / "features"))
                m = run_train_classifier(build_config(tree), out / method, clap=clap)
                lines.append(f"- trained on {method}: test {m['metric']} {m['test'][m['metric']]:.4f} "
                             f"({m['data']['train']} clips, epoch {m['best_epoch']} selected on validation)")
                if m.get("zero_shot_clap"):
                    lines.append(f"- zero-shot CLAP: test {m['metric']} {m['zero_shot_clap'][m['metric']]:.4f}")
        except (TrainError, ValueError) as e:
            fail(str(e), code=1)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
