"""The sweep over the augmentation factor k and the CLAP threshold p: ``run_sweep(cfg, out) -> SweepReport``.

**Generate once.** The augmentation runs a single time, at k_max = max(sweep.ks) and p_max = the largest
threshold (``OUT/synthetic``, resumable; or ``sweep.synthetic`` names an existing output made that way).
Every (k, p) trial then selects its clips from that manifest with ``select_synthetic`` (the first k
captions of each gold clip; per caption chain the first round scoring >= p), so synthesis is paid once,
not once per trial. ``sweep.thresholds`` null -> p_max = augment.threshold (with ``auto``: the p the
generation calibrated, ``synthio_ray.pipeline.threshold``), plus the 25th and 50th percentiles of the
round-0 scores below it (the clips p_max rejected at first). Numeric ``sweep.thresholds`` are used as given.

Trials (``trials.py``): one Tune function trainable per (k, p), metric = the validation accuracy (mAP for
multi-label sets) of the selected epoch. Features of every clip are computed once, before the trials
start, into ``OUT/features`` (shared by all trials).

Outputs: ``OUT/sweep.csv`` and ``OUT/sweep.md`` (k, p, synthetic clips, selected epoch, val and test
metric per trial), ``OUT/best.json`` (best (k, p) by validation, the generation note), ``OUT/sweep.png``,
``OUT/trials/k{k}_p{p}/metrics.json``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from synthio_ray.config import Config, build_config, config_to_dict, save_config
from synthio_ray.pipeline.threshold import applied_threshold

__all__ = ["run_sweep", "SweepReport", "default_thresholds", "sweep_thresholds", "generation_note"]


@dataclass
class SweepReport:
    out: Path
    best: dict
    table: pd.DataFrame
    note: str


def default_thresholds(manifest: pd.DataFrame, p_max: float) -> list[float]:
    """p_max and the 25th / 50th percentiles of the round-0 CLAP scores below p_max (the clips p_max rejected
    at first): each lower p lets a share of them in without reflection."""
    scores = manifest.loc[(manifest["round"] == 0) & manifest["clap_score"].notna(), "clap_score"].astype(float)
    below = scores[scores < p_max]
    ps = {round(float(p_max), 6)}
    if len(below):
        ps |= {round(float(np.quantile(below, q)), 6) for q in (0.25, 0.5)}
    return sorted(ps)


def sweep_thresholds(thresholds: list[float] | None, p_gen: float | str, folder: Path,
                     manifest: pd.DataFrame) -> list[float]:
    """The p values the trials try: ``sweep.thresholds`` as given (numbers), else p_max and
    :func:`default_thresholds` below it, where p_max is ``p_gen`` (augment.threshold) or, for ``auto``, the p
    the generation in ``folder`` calibrated and judged its clips with."""
    if thresholds:
        return sorted(set(float(p) for p in thresholds))
    p_max = applied_threshold(folder) if p_gen == "auto" else float(p_gen)
    if p_max is None:
        raise ValueError(f"{folder}: no CLAP threshold recorded (clap_threshold.json, config.yaml, the manifest's "
                         f"clap_threshold); give sweep.thresholds")
    return default_thresholds(manifest, p_max)


def generation_note(manifest: pd.DataFrame, ks: list[int], ps: list[float], selected: dict) -> str:
    """How many clips the one generation made, against generating each trial's set on its own."""
    generated = int((manifest["status"] != "failed").sum())
    per_trial = sum(int(((manifest["caption_index"] < k) & (manifest["status"] != "failed")).sum())
                    for k in ks for _ in ps)
    used = sum(selected.values())
    return (f"Generated once: {generated} clips (k_max={max(ks)}, p_max={max(ps):.4g}, reflection rounds "
            f"included). {len(ks) * len(ps)} trials trained on {used} selected clips in total; generating each "
            f"trial's set separately (its first k captions per gold clip, with the same reflection) would have "
            f"synthesised about {per_trial} clips, {per_trial / max(1, generated):.1f}x as many.")


def _generate(cfg: Config, out: Path, data_dir: Path, k_max: int, p_max: float | str, log: Callable) -> Path:
    """The one augmentation output every trial selects from; ``p_max`` a number or ``auto``."""
    s = cfg.sweep
    if s.synthetic:
        folder = Path(s.synthetic)
        saved = folder / "config.yaml"
        if saved.is_file():
            from synthio_ray.config import load_config

            prev, prev_p = load_config(saved).augment, applied_threshold(folder)
            if prev.k < k_max or (p_max != "auto" and prev_p is not None and prev_p < p_max):
                log(f"[sweep] warning: {folder} was made with k={prev.k}, p={prev_p}; the sweep asks for "
                    f"k up to {k_max} and p up to {p_max}: larger k select fewer captions than asked, and chains "
                    f"accepted below p were never reflected")
        return folder
    from synthio_ray.pipeline.augment import run_augment
    from synthio_ray.pipeline.card import write_card

    folder = out / "synthetic"
    tree = config_to_dict(cfg)
    tree["augment"].update(k=k_max, threshold=p_max, data=str(data_dir))
    gen_cfg = build_config(tree)
    folder.mkdir(parents=True, exist_ok=True)
    save_config(gen_cfg, folder / "config.yaml")
    shown = p_max if p_max == "auto" else f"{p_max:.4g}"
    log(f"[sweep] generating once: k={k_max}, p={shown}, {gen_cfg.augment.rounds} reflection round(s) -> {folder}")
    report = run_augment(gen_cfg, folder)
    write_card(gen_cfg, folder)
    log("[sweep] " + report.summary().replace("\n", "\n[sweep] "))
    return folder


def run_sweep(cfg: Config, out: str | Path, log: Callable[[str], None] = print) -> SweepReport:
    from synthio_ray.data.prepare import prepare_dataset
    from synthio_ray.experiments.trials import prefetch_features, run_trials, with_overrides
    from synthio_ray.pipeline.augment import ensure_ray
    from synthio_ray.train.synthetic import load_synthetic, select_synthetic

    s = cfg.sweep
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = cfg.train_classifier.data or cfg.augment.data
    data_dir = Path(data) if data else out / "prepared"
    if not data and not (data_dir / "labels.json").is_file():
        prepare_dataset(cfg, data_dir)
    from synthio_ray.train.classifier_run import check_prepared

    check_prepared(data_dir)
    ks = sorted(set(s.ks))
    p_gen = max(s.thresholds) if s.thresholds else cfg.augment.threshold
    ensure_ray(cfg)
    syn_dir = _generate(cfg, out, data_dir, max(ks), p_gen, log)
    manifest = load_synthetic(syn_dir)
    ps = sweep_thresholds(s.thresholds, p_gen, syn_dir, manifest)
    cache = out / "features"
    ok = manifest[(manifest["status"] != "failed") & manifest["path"].notna()]
    computed = prefetch_features(cfg, data_dir, list(ok["path"]), cache)
    log(f"[sweep] {len(ks)} k x {len(ps)} p = {len(ks) * len(ps)} trials (p in {ps}); features: {computed} computed")

    specs, selected = {}, {}
    for k in ks:
        for p in ps:
            tid = f"k{k}_p{p:.6g}"
            selected[tid] = len(select_synthetic(manifest, k, p))
            tree = with_overrides(cfg, {
                "train_classifier.data": str(data_dir), "train_classifier.synthetic": [str(syn_dir)],
                "train_classifier.method": s.method, "train_classifier.synthetic_k": k,
                "train_classifier.synthetic_threshold": float(p), "train_classifier.backend": s.backend,
                "train_classifier.zero_shot": False, "train_classifier.save_model": False,
                "train_classifier.feature_cache": str(cache)})
            specs[tid] = {"cfg": tree, "out": str(out / "trials" / tid), "threads": s.trial_cpus, "k": k, "p": p}
    results = run_trials(specs, out / "tune", "sweep", s.trial_cpus, s.max_concurrent,
                         s.trial_gpus if s.backend == "local" else 0.0)
    rows = []
    metric = "accuracy"
    for tid, spec in specs.items():
        r = results.get(tid, {"status": "failed", "error": "trial did not run"})
        m = r.get("metrics")
        if m:
            metric = m["metric"]
        rows.append({"k": spec["k"], "p": spec["p"], "synthetic_clips": selected[tid],
                     "best_epoch": m["best_epoch"] if m else np.nan, "val": m["val"][m["metric"]] if m else np.nan,
                     "test": m["test"][m["metric"]] if m else np.nan,
                     "status": r["status"] if m else f"failed: {r.get('error', '')}"})
    table = pd.DataFrame(rows).sort_values(["val", "k", "p"], ascending=[False, True, True], na_position="last")
    table = table.reset_index(drop=True)
    note = generation_note(manifest, ks, ps, selected)
    good = table[table["val"].notna()]
    if not len(good):
        raise RuntimeError(f"every sweep trial failed: {table['status'].tolist()}")
    top = good.iloc[0]
    best = {"k": int(top["k"]), "p": float(top["p"]), "val": float(top["val"]), "test": float(top["test"]),
            "metric": metric, "synthetic_clips": int(top["synthetic_clips"]), "synthetic": str(syn_dir),
            "note": note, "thresholds": ps, "ks": ks}
    from synthio_ray.evaluate.tables import plot_sweep, sweep_markdown

    table.to_csv(out / "sweep.csv", index=False)
    (out / "sweep.md").write_text(sweep_markdown(table, metric, best, note))
    (out / "best.json").write_text(json.dumps(best, indent=2))
    plot_sweep(good, out / "sweep.png", metric)
    return SweepReport(out=out, best=best, table=table, note=note)
