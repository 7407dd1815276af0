"""Fine-tune CLAP's audio projection on the small labelled set before filtering (Synthio section 4.2.2).

Only ``audio_projection`` of the transformers ``ClapModel`` changes (both of its linear layers, or with
``layers="last"`` only the final one); the audio encoder, the text side and ``logit_scale_a`` stay
frozen. The frozen encoder's pooled outputs are computed once and cached, and the label texts
("Sound of a {label}") are embedded once, so each epoch is a few small matrix products.

Objective: logits = exp(logit_scale_a) * cosine(projected audio, label text).

- single-label (``labels`` is a list of strings): cross-entropy over the label texts (the audio-to-text
  half of CLAP's contrastive loss with the label texts as the candidate set);
- multi-label (``labels`` is a list of lists of strings): binary cross-entropy on the same logits,
  i.e. on sigmoid(logit_scale * cosine), the score the filter uses.

Accuracy in the metrics is zero-shot top-1: the clip's best-scoring label text is (one of) its labels.
"""
from __future__ import annotations

import copy
import time
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from synthio_ray.data.labels import display_label, multi_hot
from synthio_ray.models.clap_hf import HFClap

__all__ = ["finetune_clap_projection"]


def _label_sets(labels: Sequence) -> tuple[list[list[str]], bool]:
    """Labels per clip -> (list of label lists, multilabel?)."""
    multilabel = any(isinstance(x, (list, tuple, set, frozenset)) for x in labels)
    if multilabel:
        sets = [[str(v) for v in x] if isinstance(x, (list, tuple, set, frozenset)) else [str(x)] for x in labels]
    else:
        sets = [[str(x)] for x in labels]
    if any(not s for s in sets):
        raise ValueError("every clip needs at least one label")
    return sets, multilabel


_UNKNOWN = "label {label!r} has no text in label_texts"


def _top1(trunk: torch.Tensor, proj: torch.nn.Module, text: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        best = (F.normalize(proj(trunk), dim=-1) @ text.T).argmax(dim=1)
        return float(y[torch.arange(len(y)), best].mean()) if len(y) else float("nan")


def finetune_clap_projection(
    model: HFClap,
    waves: list[np.ndarray],
    sample_rate: int,
    labels: Sequence,
    label_texts: dict[str, str] | None = None,
    *,
    template: str = "Sound of a {label}",
    epochs: int = 100,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    batch_size: int = 64,
    layers: str = "projection",
    val_waves: list[np.ndarray] | None = None,
    val_labels: Sequence | None = None,
    seed: int = 0,
) -> dict:
    """Train ``model.model.audio_projection`` in place on (waves, labels); returns metrics.

    ``labels``: one label per clip, or a list of labels per clip (multi-label, BCE objective).
    ``label_texts``: ``{label: text}``; its keys (in order) are the candidate classes. Default: the
    sorted labels seen, each as ``template.format(label=...)``. ``layers``: ``"projection"`` (the whole
    audio projection) or ``"last"`` (its final linear layer only). Optional ``val_waves``/``val_labels``
    are scored before and after too.

    Returns ``{"classes", "multilabel", "n", "epochs", "lr", "layers", "trained_parameters",
    "accuracy_before", "accuracy_after", "loss" (mean per epoch), ["val_accuracy_before",
    "val_accuracy_after"], "seconds"}``. Save the result with ``model.save(folder)``.
    """
    if len(waves) != len(labels):
        raise ValueError(f"{len(waves)} waves but {len(labels)} labels")
    if not len(waves):
        raise ValueError("no training clips")
    if layers not in ("projection", "last"):
        raise ValueError(f"layers must be 'projection' or 'last', got {layers!r}")
    t0 = time.perf_counter()
    sets, multilabel = _label_sets(labels)
    if label_texts is None:
        label_texts = {c: template.format(label=display_label(c)) for c in sorted({v for s in sets for v in s})}
    classes = list(label_texts)
    y = torch.from_numpy(multi_hot(sets, classes, _UNKNOWN))

    # Everything frozen is computed once: encoder outputs of every clip and the label-text embeddings.
    trunk = torch.from_numpy(model.audio_trunk_features(waves, sample_rate))
    text = torch.from_numpy(model.embed_text([label_texts[c] for c in classes]))
    scale = float(model.logit_scale)
    val = None
    if val_waves is not None:
        vsets, _ = _label_sets(val_labels if val_labels is not None else [])
        if len(vsets) != len(val_waves):
            raise ValueError(f"{len(val_waves)} validation waves but {len(vsets)} labels")
        val = (torch.from_numpy(model.audio_trunk_features(val_waves, sample_rate)),
               torch.from_numpy(multi_hot(vsets, classes, _UNKNOWN)))

    # Train a float32 copy (the model may run in bf16/fp16 on GPU), then load it back.
    target = model.model.audio_projection
    proj = copy.deepcopy(target).float().cpu().train()
    trainable = list(proj.parameters()) if layers == "projection" else list(proj.linear2.parameters())
    names = [f"audio_projection.{n}" for n, p in proj.named_parameters()
             if any(p is q for q in trainable)]
    for p in proj.parameters():
        p.requires_grad_(any(p is q for q in trainable))

    metrics: dict = {"classes": classes, "multilabel": multilabel, "n": len(waves), "epochs": int(epochs),
                     "lr": float(lr), "layers": layers, "trained_parameters": names,
                     "accuracy_before": _top1(trunk, proj, text, y)}
    if val is not None:
        metrics["val_accuracy_before"] = _top1(val[0], proj, text, val[1])

    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    curve = []
    for _ in range(int(epochs)):
        order = torch.randperm(len(trunk), generator=gen)
        total = 0.0
        for i in range(0, len(order), max(1, int(batch_size))):
            idx = order[i:i + batch_size]
            logits = scale * F.normalize(proj(trunk[idx]), dim=-1) @ text.T
            if multilabel:
                loss = F.binary_cross_entropy_with_logits(logits, y[idx])
            else:
                loss = F.cross_entropy(logits, y[idx].argmax(dim=1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        curve.append(total / len(order))
    proj.eval()
    metrics["loss"] = curve
    metrics["accuracy_after"] = _top1(trunk, proj, text, y)
    if val is not None:
        metrics["val_accuracy_after"] = _top1(val[0], proj, text, val[1])

    live = dict(target.named_parameters())
    with torch.no_grad():
        for name, p in proj.named_parameters():
            if p.requires_grad:
                live[name].copy_(p)  # copy_ converts to the model's device and dtype
    target.eval()
    metrics["seconds"] = time.perf_counter() - t0
    return metrics
