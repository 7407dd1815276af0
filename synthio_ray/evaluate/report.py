"""The analyses job as a library call: ``run_report(cfg, out, train=True, log=print) -> list[str]``.

Inputs: ``train_classifier.data`` (D_small, a jobs/prepare.py output) and ``train_classifier.synthetic``
(augmentation outputs; ``synthetic_k`` / ``synthetic_threshold`` pick a (k, p) subset). Either may be
unset: the configured dataset (the embedded default unless ``data.source`` says otherwise) is prepared
into ``OUT/prepared`` and the augmentation job runs into ``OUT/synthetic`` (both resumable, reused on a
re-run). Writes ``OUT/analysis.json``, ``OUT/features.csv``, ``OUT/features.png`` (``analyze_synthetic``),
with ``train`` the classifier trained on the synthetic clips only and on gold only (``OUT/synthetic_only/``,
``OUT/gold/``; paper Table 3), and ``OUT/report.md``, whose lines are returned.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from synthio_ray.config import Config, build_config, config_to_dict

__all__ = ["run_report"]


def _inputs(cfg: Config, out: Path, log: Callable[[str], None]) -> tuple[Path, list[str]]:
    """The prepared folder and the synthetic folders, made in ``out`` when the config names none."""
    from synthio_ray.data.prepare import prepare_dataset

    t = cfg.train_classifier
    data = Path(t.data) if t.data else out / "prepared"
    if not t.data and not (data / "labels.json").is_file():
        log(f"[report] preparing {cfg.data.source or 'the embedded default'} into {data}")
        prepare_dataset(cfg, data)
    if t.synthetic:
        return data, list(t.synthetic)
    from synthio_ray.pipeline.augment import run_augment

    tree = config_to_dict(cfg)
    tree["augment"]["data"] = str(data)
    log(f"[report] generating the synthetic set into {out / 'synthetic'}")
    log(run_augment(build_config(tree), out / "synthetic").summary())
    return data, [str(out / "synthetic")]


def run_report(cfg: Config, out: str | Path, train: bool = True, log: Callable[[str], None] = print) -> list[str]:
    from synthio_ray.data.manifest import load_prepared
    from synthio_ray.evaluate.analysis import analyze_synthetic
    from synthio_ray.models.clap_remote import load_placed_clap
    from synthio_ray.train.classifier_run import run_train_classifier
    from synthio_ray.train.synthetic import synthetic_rows

    out = Path(out)
    t = cfg.train_classifier
    data, synthetic = _inputs(cfg, out, log)
    clap = load_placed_clap(cfg)   # on its own actor unless small and on CPU
    syn = synthetic_rows(synthetic, t.synthetic_k, t.synthetic_threshold)
    if not len(syn):
        raise ValueError(f"no selected synthetic clips in {', '.join(synthetic)}")
    a = analyze_synthetic(load_prepared(data).split("train"), syn, clap, out)
    lines = ["# Synthetic set analyses", "", f"D_small: {data}; synthetic: {', '.join(synthetic)}", "",
             "```", json.dumps(a, indent=2), "```"]
    if train:
        for method in ("synthetic_only", "gold"):
            tree = config_to_dict(cfg)
            tree["train_classifier"].update(data=str(data), synthetic=synthetic, method=method, save_model=False,
                                            zero_shot=method == "gold", feature_cache=str(out / "features"))
            m = run_train_classifier(build_config(tree), out / method, clap=clap, log=log)
            lines.append(f"- trained on {method}: test {m['metric']} {m['test'][m['metric']]:.4f} "
                         f"({m['data']['train']} clips, epoch {m['best_epoch']} selected on validation)")
            if m.get("zero_shot_clap"):
                lines.append(f"- zero-shot CLAP: test {m['metric']} {m['zero_shot_clap'][m['metric']]:.4f}")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return lines
