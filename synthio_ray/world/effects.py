"""The method's effects on the world, measured through the real jobs: alignment distances and augmentation.

``alignment_rows(cfg, out)``: for each seed, the align job (``run_align``) with Diffusion-DPO and with ERM on
the embedded D_small, then clips for every target label from the un-aligned and the aligned models; the
judge's Frechet distance of each set to held-out target clips, as aligned / un-aligned (mean ± std over
seeds); each seed's figures go to ``out/figures.json`` as soon as they are measured. ``augmentation_rows(cfg, out)``: the grid job (``run_grid``) on the embedded world, each row's test
accuracy minus gold-only, and with a judge, the label consistency of each synthetic row's final set and of
its accepted and rejected clips (what explains a row's accuracy). Rows are ``{"measure", "value", "target", "met"}`` like the model rows.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Callable, Sequence

from synthio_ray.config import Config, build_config, config_to_dict
from synthio_ray.world.corpus import TARGET_CLASSES
from synthio_ray.world.judge import Judge
from synthio_ray.world.measures import generate_for_labels, held_out, judge_frechet, set_consistency

__all__ = ["alignment_rows", "augmentation_rows", "GRID_METHODS"]

GRID_METHODS = ["gold", "vanilla_syn", "vanilla_llm", "synthio", "w_template", "w_erm", "wo_reflection",
                "wo_mixcap", "wo_dpo", "wo_clap"]


def _with(cfg: Config, **dotted) -> Config:
    tree = config_to_dict(cfg)
    for key, value in dotted.items():
        node = tree
        *parents, leaf = key.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return build_config(tree)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return round(statistics.mean(values), 4), round(statistics.stdev(values), 4) if len(values) > 1 else 0.0


def alignment_rows(cfg: Config, out: str | Path, judge: Judge, seeds: Sequence[int] = (0, 1, 2),
                   per_label: int = 10, log: Callable[[str], None] = print) -> tuple[list[dict], dict]:
    """DPO and ERM distance ratios over ``seeds``; returns (rows, per-seed figures)."""
    from synthio_ray.models.t2a import load_t2a
    from synthio_ray.train.align import run_align

    out = Path(out)
    real = [c.wave for c in held_out()]
    t = cfg.models.t2a
    base = load_t2a(t)
    figures: dict[str, list[dict]] = {"dpo": [], "erm": []}
    for seed in seeds:
        plain = generate_for_labels(base, TARGET_CLASSES, per_label, seed=seed, steps=t.steps, cfg_scale=t.cfg_scale)[0]
        d0 = judge_frechet(judge, plain, real)
        acc0 = judge.accuracy(plain, [lab for lab in TARGET_CLASSES for _ in range(per_label)])
        for objective in ("dpo", "erm"):
            folder = out / f"{objective}-seed{seed}"
            if (folder / "metrics.json").is_file() and (folder / "checkpoint").is_dir():
                ckpt = folder / "checkpoint"
            else:
                ckpt = run_align(_with(cfg, align__objective=objective, align__seed=seed), folder,
                                 log=lambda s: None).checkpoint
            aligned = generate_for_labels(load_t2a(t, path=str(ckpt)), TARGET_CLASSES, per_label, seed=seed,
                                          steps=t.steps, cfg_scale=t.cfg_scale)[0]
            d = judge_frechet(judge, aligned, real)
            acc = judge.accuracy(aligned, [lab for lab in TARGET_CLASSES for _ in range(per_label)])
            figures[objective].append({"seed": seed, "unaligned": round(d0, 3), "aligned": round(d, 3),
                                       "ratio": round(d / d0, 4), "judge_unaligned": round(acc0, 4),
                                       "judge_aligned": round(acc, 4)})
            log(f"{objective} seed {seed}: {figures[objective][-1]}")
            (out / "figures.json").write_text(json.dumps(figures, indent=1))   # kept if a later seed is cut off
    m, s = _mean_std([f["unaligned"] for f in figures["dpo"]])
    rows = [{"measure": f"un-aligned: judge Frechet distance to target test clips across {len(seeds)} generation "
                        f"seeds (the distance's own noise)", "value": f"{m} ± {s}", "target": "reported", "met": None}]
    for objective, target in (("dpo", "<= 0.75"), ("erm", "reported")):
        m, s = _mean_std([f["ratio"] for f in figures[objective]])
        rows.append({"measure": f"{objective.upper()}: judge Frechet distance to target test clips, aligned / "
                                f"un-aligned (mean ± std, {len(seeds)} seeds)",
                     "value": f"{m} ± {s}", "target": target, "met": m <= 0.75 if objective == "dpo" else None})
    return rows, figures


def augmentation_rows(cfg: Config, out: str | Path, methods: Sequence[str] = tuple(GRID_METHODS),
                      seeds: Sequence[int] = (0, 1, 2), n: int = 64, judge: Judge | None = None,
                      log: Callable[[str], None] = print) -> tuple[list[dict], str]:
    """The grid's rows at ``n`` gold clips (8 per class at n=64): each row's mean test accuracy minus
    gold-only, in points, then (with ``judge``) each synthetic set's label consistency; returns (rows,
    the grid's markdown table)."""
    from synthio_ray.experiments.grid import run_grid

    g = _with(cfg, grid__datasets=["embedded"], grid__ns=[n], grid__methods=list(methods), grid__seeds=list(seeds))
    report = run_grid(g, out, log=log)
    r = report.results
    r = r[r["k_selected"].astype(bool) & (r["status"] == "ok")]
    score = r.groupby("method")["value"].agg(["mean", "std", "count"])
    gold = float(score.loc["gold", "mean"])
    rows = []
    for method in methods:
        if method not in score.index:
            rows.append({"measure": f"augmentation n={n}: {method}", "value": None, "target": "reported",
                         "met": None})
            continue
        count = int(score.loc[method, "count"])
        mean = float(score.loc[method, "mean"])
        std = float(score.loc[method, "std"]) if count > 1 else 0.0   # pandas gives nan for one seed
        gain = 100 * (mean - gold)
        target = ">= +5 points" if method == "synthio" else "reported"
        rows.append({"measure": f"augmentation n={n}: {method} test accuracy (minus gold-only), {count} seed"
                                f"{'s' if count > 1 else ''}",
                     "value": f"{100 * mean:.2f} ± {100 * std:.2f} ({gain:+.2f}){_paired(r, method, n)}",
                     "target": target, "met": gain >= 5 if method == "synthio" else None})
    for method in methods if judge is not None else ():
        folder = Path(out) / "synthetic" / f"embedded-n{n}-{method}"
        if method == "gold" or not (folder / "manifest.parquet").is_file():
            continue
        c = set_consistency(judge, folder)
        parts = ", ".join(f"{s} {c[s]['consistency']:.2f} of {c[s]['clips']}" for s in ("accepted", "kept_best",
                                                                                         "rejected") if s in c)
        rows.append({"measure": f"synthetic set n={n}: {method} judge label consistency of the final set "
                                f"(of every clip made, by status)",
                     "value": f"{c['final']['consistency']:.2f} of {c['final']['clips']} ({parts})",
                     "target": "reported", "met": None})
    return rows, report.markdown


def _paired(r, method: str, n: int) -> str:
    """For a synthetic row of the selected results ``r``: its per-seed difference to gold-only at the same
    seed (mean ± std, points), and the k chosen with the synthetic clips it trained on."""
    if method in ("gold", "zero-shot CLAP"):
        return ""
    mine = r[r["method"] == method].set_index("seed")
    diff = 100 * (mine["value"] - r[r["method"] == "gold"].set_index("seed")["value"]).dropna()
    if diff.empty:
        return ""
    spread = diff.std(ddof=1) if len(diff) > 1 else 0.0
    k = "/".join(sorted({f"{float(v):g}" for v in mine["k"].dropna()}))
    syn = "/".join(sorted({str(int(v) - n) for v in mine["train_clips"].dropna()}))
    return (f"; paired with gold-only per seed {diff.mean():+.2f} ± {spread:.2f}; k = {k}, {syn} synthetic clips "
            f"in training")
