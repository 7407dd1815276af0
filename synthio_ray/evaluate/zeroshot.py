"""Zero-shot CLAP classification (the review's "is the method needed at all?" reference row).

Each clip's CLAP audio embedding is compared with the text embedding of ``template.format(label=...)``
for every label; probabilities are ``softmax(logit_scale * cosine)`` over labels (single-label sets) or
``sigmoid(logit_scale * cosine)`` per label (multi-label sets). No training data is used. Clips reach CLAP
whole, through the same path as the filter's (``synthio_ray.models.clap.clap_input``)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from synthio_ray.data.labels import display_label
from synthio_ray.evaluate.metrics import classification_metrics

__all__ = ["zero_shot_probs", "zero_shot_clap"]


def zero_shot_probs(clap, waves: list[np.ndarray], sample_rate: int, labels: Sequence[str], template: str,
                    multilabel: bool = False) -> np.ndarray:
    """Waves -> ``(N, C)`` probabilities; ``clap`` is an ``AudioTextModel``."""
    a = clap.embed_audio(waves, sample_rate)
    t = clap.embed_text([template.format(label=display_label(lab)) for lab in labels])
    logits = float(clap.logit_scale) * (a @ t.T)
    if multilabel:
        return 1.0 / (1.0 + np.exp(-logits))
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def zero_shot_clap(clap, frame: pd.DataFrame, labels: Sequence[str], template: str,
                   multilabel: bool = False) -> dict:
    """Metrics of zero-shot CLAP on a split (``path``, ``labels`` columns)."""
    from synthio_ray.models.clap import clap_input
    from synthio_ray.train.classifier_data import targets

    waves = [clap_input(clap, p) for p in frame["path"]]
    probs = zero_shot_probs(clap, waves, clap.sample_rate, labels, template, multilabel)
    y = targets([list(x) for x in frame["labels"]], labels).numpy()
    out = classification_metrics(probs, y, labels, multilabel)
    out.update(model=getattr(clap, "model_id", "clap"), template=template)
    return out
