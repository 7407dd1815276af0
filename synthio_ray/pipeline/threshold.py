"""``augment.threshold=auto``: the CLAP threshold p calibrated on D_small's own gold clips.

A fixed p only means something for one CLAP: the tiny zoo's cosines sit near 0.13, LAION-CLAP's matched
pairs near 0.3-0.5, a CLAP fine-tuned on D_small higher still, and ``sigmoid`` scores live elsewhere
again. So ``auto`` measures the scoring CLAP on real clips of this dataset, as the filter sees them (the
same text template, score form and input path), and picks p from two distributions:

- **on-label**: each gold clip scored against the text of its own label(s), what the filter computes for a
  generated clip of that label;
- **off-label**: each gold clip scored against the text of every other label (label set) of D_small that
  shares no label with it: what a clip that sounds like another label scores.

**Rule**: ``p = min(q_off(0.95), q_on(0.10))``. The 95th percentile of the off-label scores is the p that
keeps out 95 % of (real clip, wrong label) pairs: a generated clip passes when it matches its own label
better than 95 % of mismatches do. The 10th percentile of the on-label scores caps it: p never rejects
more than about 10 % of clips that score like real recordings of their label (the paper's filter removed
at most about 10 % of the clips). When the distributions are apart, q_off(0.95) < q_on(0.10) and the
first decides (the most permissive p that still keeps mismatches out); when they overlap, the cap does,
and ``limited_by`` says ``on``. The point that best separates the two (max TPR - FPR) was not taken: it
weighs both errors alike and, with 50-100 gold clips, moves with a few of them, where the 95th percentile
of n * (labels - 1) off-label pairs is stable. Both quantiles commute with monotone maps, so the rule means
the same for cosine and sigmoid scores.

**Which clips**: D_small's training clips; but when ``models.clap.finetune`` has fitted the scoring CLAP to
those very clips (the default), their scores run optimistic, so its validation clips are used when they
cover at least two labels (``split`` in the record says which).

``resolve_threshold(cfg, prepared, out, fine_tuned)`` returns ``(p, record)``: a number from the config as
it is (record None), or the calibrated p with its record, written to ``OUT/clap_threshold.json`` (reused by
a re-run with the same CLAP, text, score form and clips): ``p, rule, limited_by, split, note, clap_model,
score, text_template, on, off`` (each ``n, mean, quantiles, histogram``), ``histogram_edges``, ``accepts``
(share of on- and off-label scores >= p), ``key``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from synthio_ray.config import Config, config_to_dict
from synthio_ray.data.labels import display_labels

__all__ = ["threshold_rule", "calibrate", "resolve_threshold", "applied_threshold", "FILE", "RULE"]

FILE = "clap_threshold.json"
OFF_QUANTILE, ON_QUANTILE = 0.95, 0.10
RULE = f"p = min(q_off({OFF_QUANTILE:g}), q_on({ON_QUANTILE:g}))"
QUANTILES = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0)
BINS = 20


def threshold_rule(on: np.ndarray, off: np.ndarray, off_quantile: float = OFF_QUANTILE,
                   on_quantile: float = ON_QUANTILE) -> tuple[float, str]:
    """On-label and off-label scores -> (p, which quantile decided: ``off`` or ``on``)."""
    on, off = np.asarray(on, np.float64), np.asarray(off, np.float64)
    if not len(on) or not len(off):
        raise ValueError("the threshold rule needs on-label and off-label scores")
    q_off, q_on = float(np.quantile(off, off_quantile)), float(np.quantile(on, on_quantile))
    return (q_off, "off") if q_off <= q_on else (q_on, "on")


def _summary(x: np.ndarray, edges: np.ndarray) -> dict:
    return {"n": int(len(x)), "mean": float(np.mean(x)),
            "quantiles": {f"{q:g}": float(np.quantile(x, q)) for q in QUANTILES},
            "histogram": np.histogram(x, bins=edges)[0].astype(int).tolist()}


def calibrate(clap, frame: pd.DataFrame, template: str, form: str = "cosine") -> dict:
    """Gold clips (``path``, ``labels``) -> the calibration record (without ``split``): p, the rule, and
    the on-label and off-label score distributions. Scores are ``form`` (cosine or sigmoid) of CLAP
    ``clap`` against ``template.format(label=display_labels(labels))``, exactly the filter's score."""
    from synthio_ray.models.clap import embed_files

    label_sets = [tuple(x) for x in frame["labels"]]
    keys = sorted(set(label_sets))
    audio = embed_files(clap, list(frame["path"]))
    text = clap.embed_text([template.format(label=display_labels(list(k))) for k in keys])
    cos = np.asarray(audio, np.float64) @ np.asarray(text, np.float64).T
    if form == "sigmoid":
        cos = 1.0 / (1.0 + np.exp(-float(clap.logit_scale) * cos))
    elif form != "cosine":
        raise ValueError(f"unknown score form {form!r}: use 'cosine' or 'sigmoid'")
    col = {k: j for j, k in enumerate(keys)}
    on = np.array([cos[i, col[k]] for i, k in enumerate(label_sets)])
    off = np.array([cos[i, col[k]] for i, mine in enumerate(label_sets) for k in keys if not set(k) & set(mine)])
    if not len(off):
        raise ValueError("augment.threshold=auto needs gold clips of at least two labels that share no label "
                         f"(got {len(keys)} label set(s)); set augment.threshold to a number")
    p, limited_by = threshold_rule(on, off)
    edges = np.histogram_bin_edges(np.concatenate([on, off]), bins=BINS)
    return {"p": p, "rule": RULE, "limited_by": limited_by, "clap_model": getattr(clap, "model_id", "clap"),
            "score": form, "text_template": template, "on": _summary(on, edges), "off": _summary(off, edges),
            "histogram_edges": edges.tolist(), "accepts": {"on": float(np.mean(on >= p)),
                                                           "off": float(np.mean(off >= p))}}


def _calibrate_with(tree: dict, records: list[dict]) -> dict:
    """Load the configured CLAP and calibrate (in the driver, or in a Ray task when CLAP needs a GPU)."""
    from synthio_ray.config import build_config
    from synthio_ray.models.clap import load_clap

    c = build_config(tree).models.clap
    return calibrate(load_clap(c), pd.DataFrame(records), c.text_template, c.score)


def _clips(prepared, fine_tuned: bool) -> tuple[str, pd.DataFrame]:
    """(split name, its clips) the calibration scores: train, or val when CLAP was fitted to train."""
    train = prepared.split("train")
    if fine_tuned:
        val = prepared.split("val")
        if len(val) and len({tuple(x) for x in val["labels"]}) >= 2:
            return "val", val
    return "train", train


def resolve_threshold(cfg: Config, prepared, out: Path, fine_tuned: bool = False, clap: Any = None,
                      log: Callable[[str], None] = print) -> tuple[float, dict | None]:
    """``cfg.augment.threshold`` as a number: as configured (record None), or for ``auto`` calibrated on
    ``prepared`` with ``cfg.models.clap`` (the CLAP that scores) and recorded in ``out/clap_threshold.json``.
    ``fine_tuned``: that CLAP was fine-tuned on the training clips (then the validation clips are scored).
    ``clap``: that CLAP already loaded (e.g. the job's served one); else it is loaded here."""
    t = cfg.augment.threshold
    if t != "auto":
        return float(t), None
    c = cfg.models.clap
    split, frame = _clips(prepared, fine_tuned)
    frame = frame[["id", "path", "labels"]].assign(labels=[list(x) for x in frame["labels"]])
    key = {"clap_model": c.path, "score": c.score, "text_template": c.text_template, "split": split,
           "ids": sorted(frame["id"])}
    f = Path(out) / FILE
    if f.is_file():
        saved = json.loads(f.read_text())
        if saved.get("key") == key:
            return float(saved["p"]), saved
    records = frame[["path", "labels"]].to_dict("records")
    res = cfg.resources
    if clap is not None:
        record = calibrate(clap, pd.DataFrame(records), c.text_template, c.score)
    elif res.clap_gpus > 0:   # a GPU model never loads in the driver
        import ray

        task = ray.remote(num_gpus=res.clap_gpus, num_cpus=res.cpus_per_actor)(_calibrate_with)
        record = ray.get(task.remote(config_to_dict(cfg), records))
    else:
        record = _calibrate_with(config_to_dict(cfg), records)
    note = ("the scoring CLAP was fine-tuned on these training clips (the validation split has clips of fewer "
            "than two labels), so their scores run optimistic" if fine_tuned and split == "train" else None)
    record.update(split=split, note=note, key=key)
    tmp = f.with_name(f".{FILE}.tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, f)
    log(f"[augment] CLAP threshold auto: p = {record['p']:.4g} ({RULE}, decided by the {record['limited_by']}-label "
        f"quantile) from {record['on']['n']} {split} clips; it accepts {record['accepts']['on']:.0%} of on-label "
        f"and {record['accepts']['off']:.0%} of off-label scores")
    return float(record["p"]), record


def applied_threshold(folder: str | Path) -> float | None:
    """The p an augmentation output judged its clips with: its config's number, or for ``auto`` its
    calibration (``clap_threshold.json``); else the manifest's ``clap_threshold``; None if unknown."""
    folder = Path(folder)
    saved = folder / "config.yaml"
    if saved.is_file():
        from synthio_ray.config import load_config

        t = load_config(saved).augment.threshold
        if t != "auto":
            return float(t)
    if (folder / FILE).is_file():
        return float(json.loads((folder / FILE).read_text())["p"])
    manifest = folder / "manifest.parquet"
    if manifest.is_file() and "clap_threshold" in pd.read_parquet(manifest).columns:
        col = pd.read_parquet(manifest, columns=["clap_threshold"])["clap_threshold"].dropna()
        return float(col.max()) if len(col) else None
    return None
