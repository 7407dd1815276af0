"""Classification metrics over predicted probabilities.

Inputs: ``probs`` float ``(N, C)`` (softmax or sigmoid outputs) and ``targets`` float/int ``(N, C)``
multi-hot (single-label sets: one-hot). Single-label sets are scored by accuracy (argmax); multi-label
sets (FSD50K) by mAP (mean over classes of average precision, classes without a positive skipped) and
macro-F1 at a 0.5 threshold. Per-class accuracy (recall of each class; the paper's long-tail analysis)
is reported for both.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["accuracy", "per_class_accuracy", "mean_average_precision", "macro_f1", "classification_metrics",
           "primary_metric"]


def primary_metric(multilabel: bool) -> str:
    """The metric the paper reports and model selection uses: ``accuracy`` or ``map`` (multi-label)."""
    return "map" if multilabel else "accuracy"


def accuracy(probs: np.ndarray, targets: np.ndarray) -> float:
    """Share of rows whose argmax is a positive class (for one-hot targets: plain accuracy)."""
    if len(probs) == 0:
        return float("nan")
    pred = probs.argmax(axis=1)
    return float(targets[np.arange(len(pred)), pred].astype(bool).mean())


def per_class_accuracy(probs: np.ndarray, targets: np.ndarray, labels: Sequence[str],
                       multilabel: bool = False) -> dict[str, float | None]:
    """Per label: share of its clips predicted correctly (argmax == label; multi-label: sigmoid >= 0.5).
    ``None`` for a label without clips."""
    out: dict[str, float | None] = {}
    pred = probs.argmax(axis=1)
    for c, lab in enumerate(labels):
        rows = targets[:, c].astype(bool)
        if not rows.any():
            out[lab] = None
        elif multilabel:
            out[lab] = float((probs[rows, c] >= 0.5).mean())
        else:
            out[lab] = float((pred[rows] == c).mean())
    return out


def mean_average_precision(probs: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes with at least one positive of scikit-learn's average precision."""
    from sklearn.metrics import average_precision_score

    keep = targets.astype(bool).any(axis=0)
    if not keep.any():
        return float("nan")
    return float(average_precision_score(targets[:, keep], probs[:, keep], average="macro"))


def macro_f1(probs: np.ndarray, targets: np.ndarray, multilabel: bool, threshold: float = 0.5) -> float:
    """Macro-F1 over classes present in ``targets`` or predictions (single-label: argmax)."""
    from sklearn.metrics import f1_score

    if multilabel:
        return float(f1_score(targets.astype(int), (probs >= threshold).astype(int), average="macro",
                              zero_division=0))
    return float(f1_score(targets.argmax(axis=1), probs.argmax(axis=1), average="macro", zero_division=0))


def classification_metrics(probs: np.ndarray, targets: np.ndarray, labels: Sequence[str],
                           multilabel: bool) -> dict:
    """-> ``{"accuracy", "macro_f1", "per_class_accuracy", "n"}`` plus ``"map"`` for multi-label sets."""
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if probs.shape != targets.shape:
        raise ValueError(f"probs {probs.shape} and targets {targets.shape} differ in shape")
    out = {"n": int(len(probs)), "accuracy": accuracy(probs, targets),
           "macro_f1": macro_f1(probs, targets, multilabel),
           "per_class_accuracy": per_class_accuracy(probs, targets, labels, multilabel)}
    if multilabel:
        out["map"] = mean_average_precision(probs, targets)
    return out
