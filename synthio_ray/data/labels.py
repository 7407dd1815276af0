"""Label names as safe, collision-free file-name parts."""
from __future__ import annotations

import re
import unicodedata
from typing import Sequence

import numpy as np

from synthio_ray.ids import stable_hash

__all__ = ["slugify", "label_slugs", "multi_hot", "display_label", "display_labels"]

_MAX = 48


def slugify(text: str) -> str:
    """Lower-case ASCII letters, digits and '_' only; never empty, never '.' or '..'."""
    t = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii").lower()
    t = re.sub(r"[^a-z0-9]+", "_", t).strip("_")[:_MAX].strip("_")
    return t or "label"


def display_label(label: str) -> str:
    """A label as the models read it (prompts, captions, CLAP texts): underscores and runs of whitespace
    become one space, e.g. ``chirping_birds`` -> ``chirping birds``. Raw labels stay in ids, slugs and
    outputs."""
    return re.sub(r"[\s_]+", " ", str(label)).strip() or str(label)


def display_labels(labels: str | Sequence[str]) -> str:
    """One label, or several joined with " and " (multi-label), each in its display form."""
    labs = [labels] if isinstance(labels, str) else list(labels)
    return " and ".join(display_label(x) for x in labs)


def label_slugs(labels: list[str] | set[str]) -> dict[str, str]:
    """Map each label to a unique slug. Labels whose slugs collide (or were changed lossily into an
    empty slug) get a short hash of the original name appended, so the mapping does not depend on
    which other labels exist beyond the colliding ones."""
    labels = sorted(set(labels))
    base = {lab: slugify(lab) for lab in labels}
    counts: dict[str, int] = {}
    for s in base.values():
        counts[s] = counts.get(s, 0) + 1
    out = {}
    for lab, s in base.items():
        out[lab] = f"{s}_{stable_hash('label', lab, length=6)}" if counts[s] > 1 else s
    assert len(set(out.values())) == len(out), "label slug collision"
    return out


def multi_hot(label_lists: Sequence[Sequence[str]], labels: Sequence[str],
              unknown: str = "label {label!r} is not one of {labels}") -> np.ndarray:
    """Label lists -> float32 multi-hot ``(N, len(labels))``; ValueError (``unknown``, formatted with
    ``label`` and ``labels``) for a label outside ``labels``."""
    index = {lab: i for i, lab in enumerate(labels)}
    y = np.zeros((len(label_lists), len(labels)), np.float32)
    for r, labs in enumerate(label_lists):
        for lab in labs:
            if lab not in index:
                raise ValueError(unknown.format(label=lab, labels=list(labels)))
            y[r, index[lab]] = 1.0
    return y
