"""Training sets for the classifier: which clips go in (per method) and their AST input features.

Methods (the paper's Table 1 baselines; ``+`` joins two sets):

| method | training clips |
|---|---|
| ``gold`` | D_small |
| ``noise``, ``pitch``, ``specaugment``, ``audiomentations`` | D_small + ``copies`` augmented copies of each gold clip (``synthio_ray.augment``) |
| ``retrieval`` | D_small + the ``retrieval_n`` CLAP-nearest clips of an unlabelled pool per gold clip, with its labels |
| ``synthetic`` | D_small + the selected synthetic clips of each ``--synthetic`` output (``select_synthetic``) |
| ``synthetic+<classic or retrieval>`` | the union of both sets (paper A.4.6) |
| ``synthetic_only`` | the synthetic clips alone (paper Table 3); validation and test stay real |

Features: mono audio at the extractor's rate -> optional ``Augmentation.wave`` -> ``ASTFeatureExtractor``
-> optional ``Augmentation.features``; ``(frames, mel)`` float32. :class:`FeatureCache` keeps each one on
disk (float16) under a key of (extractor settings, file path, size, mtime, augmentation, seed), so sweeps
and grids featurise every clip once however many trials use it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from synthio_ray.augment import CLASSIC_METHODS, Augmentation, make_augmentation
from synthio_ray.data.audio import load_audio
from synthio_ray.data.labels import multi_hot
from synthio_ray.ids import stable_int

__all__ = ["METHODS", "parse_method", "FeatureSet", "FeatureCache", "targets", "build_training_set",
           "featurize_split"]

RETRIEVAL_METHODS = ("retrieval", "retrieval_in_domain")
METHODS = (("gold", *RETRIEVAL_METHODS, "synthetic", "synthetic_only") + CLASSIC_METHODS
           + tuple(f"synthetic+{m}" for m in CLASSIC_METHODS + RETRIEVAL_METHODS))


@dataclass(frozen=True)
class MethodParts:
    gold: bool
    synthetic: bool
    classic: str | None
    retrieval: bool
    in_domain: bool = False   # retrieval from the dataset's own undrawn clips, not an outside pool


def parse_method(name: str) -> MethodParts:
    """``"synthetic+noise"`` -> its parts; ValueError listing the valid names."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; one of {', '.join(METHODS)}")
    parts = set(name.split("+"))
    classic = next((p for p in parts if p in CLASSIC_METHODS), None)
    return MethodParts(gold=name != "synthetic_only", synthetic=bool(parts & {"synthetic", "synthetic_only"}),
                       classic=classic, retrieval=bool(parts & set(RETRIEVAL_METHODS)),
                       in_domain="retrieval_in_domain" in parts)


def needs_synthetic(name: str) -> bool:
    return parse_method(name).synthetic


@dataclass
class FeatureSet:
    """``x`` float32 ``(N, frames, mel)``, ``y`` float32 ``(N, C)`` multi-hot, ``kind`` per row (gold,
    synthetic, retrieval, or the augmentation name), ``ids`` per row."""

    x: torch.Tensor
    y: torch.Tensor
    kind: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in pd.Series(self.kind, dtype=object).value_counts().sort_index().items()}

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        torch.save({"x": self.x.half(), "y": self.y, "kind": self.kind, "ids": self.ids}, tmp)
        os.replace(tmp, p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> "FeatureSet":
        d = torch.load(path, map_location="cpu", weights_only=False)
        return cls(x=d["x"].float(), y=d["y"].float(), kind=list(d["kind"]), ids=list(d["ids"]))


def targets(labels_per_row: Sequence[Sequence[str]], labels: Sequence[str]) -> torch.Tensor:
    """Label lists -> float32 multi-hot ``(N, C)``; ValueError for a label outside ``labels``."""
    return torch.from_numpy(multi_hot(labels_per_row, labels, "label {label!r} is not one of the dataset's labels "
                                                              "{labels}"))


class FeatureCache:
    """AST features of files (optionally augmented), computed once and kept under ``folder``.

    ``fe``: an ``ASTFeatureExtractor``. ``get(path, aug, seed)`` -> float32 ``(frames, mel)``."""

    def __init__(self, folder: str | Path, fe: Any):
        from synthio_ray.models.classifier_ast import ASTFeatures

        self.folder = Path(folder)
        self.feats = ASTFeatures(fe)
        self.fe_key = json.dumps({k: fe.to_dict().get(k) for k in ("sampling_rate", "num_mel_bins", "max_length",
                                                                   "mean", "std", "do_normalize")}, sort_keys=True)
        self.hits = self.misses = 0

    def _key(self, path: str, aug: Augmentation | None, seed: int | None) -> str:
        st = os.stat(path)
        parts = [self.fe_key, os.path.abspath(path), st.st_size, st.st_mtime_ns,
                 None if aug is None else (aug.name, json.dumps(aug.params, sort_keys=True)), seed]
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]

    def get(self, path: str, aug: Augmentation | None = None, seed: int | None = None) -> np.ndarray:
        key = self._key(path, aug, seed)
        f = self.folder / key[:2] / f"{key}.npy"
        if f.is_file():
            try:
                self.hits += 1
                return np.load(f).astype(np.float32)
            except (OSError, ValueError):
                pass  # a damaged entry is recomputed
        self.misses += 1
        wave, sr = load_audio(path, self.feats.sample_rate, mono=True)
        if aug is not None:
            wave = aug.wave(wave, sr, seed)
        x = self.feats([wave], sr)[0].numpy()
        if aug is not None:
            x = aug.features(x, seed)
        x = x.astype(np.float16)  # what the cache holds: a miss returns exactly what a later hit will
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f".{f.name}.{os.getpid()}.tmp.npy")
        np.save(tmp, x)
        os.replace(tmp, f)
        return x.astype(np.float32)


def _stack(xs: list[np.ndarray], cache: FeatureCache) -> torch.Tensor:
    if not xs:
        return torch.zeros((0, cache.feats.frames, cache.feats.mel_bins))
    return torch.from_numpy(np.stack(xs))


def featurize_split(frame: pd.DataFrame, labels: Sequence[str], cache: FeatureCache, kind: str) -> FeatureSet:
    """A prepared split (``id, path, labels``) -> its features and targets (no augmentation)."""
    xs = [cache.get(p) for p in frame["path"]]
    return FeatureSet(_stack(xs, cache), targets([list(x) for x in frame["labels"]], labels),
                      [kind] * len(frame), [str(i) for i in frame["id"]])


def build_training_set(method: str, gold: pd.DataFrame, labels: Sequence[str], cache: FeatureCache, seed: int,
                       copies: int = 2, synthetic: pd.DataFrame | None = None,
                       retrieval: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
                       augmentation: Augmentation | None = None) -> FeatureSet:
    """The training set of ``method`` (see the module table).

    ``gold``: D_small (``id, path, labels``). ``synthetic``: selected synthetic rows (``id, path, labels``),
    needed by synthetic methods. ``retrieval``: gold frame -> rows to add (``path, labels, source_id``),
    needed by retrieval methods. ``augmentation``: overrides the classic method's default object.
    Augmented copy ``c`` of clip ``i`` uses seed ``stable_int(method, seed, id, c)``."""
    parts = parse_method(method)
    rows: list[tuple[np.ndarray, list[str], str, str]] = []
    if parts.gold:
        for r in gold.itertuples():
            rows.append((cache.get(r.path), list(r.labels), "gold", str(r.id)))
    if parts.classic:
        aug = augmentation or make_augmentation(parts.classic)
        for r in gold.itertuples():
            for c in range(int(copies)):
                s = stable_int(parts.classic, seed, r.id, c)
                rows.append((cache.get(r.path, aug, s), list(r.labels), parts.classic, f"{r.id}#{parts.classic}{c}"))
    if parts.retrieval:
        if retrieval is None:
            raise ValueError(f"method {method!r} needs a retrieval pool")
        for r in retrieval(gold).itertuples():
            rows.append((cache.get(r.path), list(r.labels), "retrieval", f"{r.source_id}#{Path(r.path).name}"))
    if parts.synthetic:
        if synthetic is None:
            raise ValueError(f"method {method!r} needs synthetic clips: pass --synthetic DIR")
        for r in synthetic.itertuples():
            rows.append((cache.get(r.path), list(r.labels), "synthetic", str(r.id)))
    if not rows:
        raise ValueError(f"method {method!r}: the training set is empty (no gold and no selected synthetic clips)")
    return FeatureSet(_stack([r[0] for r in rows], cache), targets([r[1] for r in rows], labels),
                      [r[2] for r in rows], [r[3] for r in rows])
