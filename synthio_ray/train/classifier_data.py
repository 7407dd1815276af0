"""Training sets for the classifier: which clips go in (per method) and their AST input features.

Methods (the paper's Table 1 baselines; ``+`` joins two sets):

| method | training clips |
|---|---|
| ``gold`` | D_small |
| ``noise``, ``pitch``, ``specaugment``, ``audiomentations`` | D_small + ``copies`` augmented copies of each gold clip (``synthio_ray.augment``), drawn afresh every epoch |
| ``retrieval`` | D_small + the ``retrieval_n`` CLAP-nearest clips of an unlabelled pool per gold clip, with its labels |
| ``synthetic`` | D_small + the selected synthetic clips of each ``--synthetic`` output (``select_synthetic``) |
| ``synthetic+<classic or retrieval>`` | the union of both sets (paper A.4.6) |
| ``synthetic_only`` | the synthetic clips alone (paper Table 3); validation and test stay real |

Features: mono audio at the extractor's rate -> optional ``Augmentation.wave`` -> ``ASTFeatureExtractor``
-> optional ``Augmentation.features``; ``(frames, mel)`` float32. :class:`FeatureCache` keeps each one on
disk (float16) under a key of (extractor settings, file path, size, mtime, augmentation, seed), so sweeps
and grids featurise every clip once however many trials use it; an augmentation that leaves the wave as
it is (SpecAugment) is applied to the cached plain features instead (float16 too), with no entry of its own.

A classic method's training set changes every epoch: :class:`TrainingSet` holds the fixed rows (gold,
retrieval, synthetic) and the :class:`AugmentedCopies`, whose draw for epoch ``e`` is featurised (through
the cache) when the epoch asks for it; ``TrainingSet.epoch(e)`` and ``FeatureSet.epoch(e)`` (the same set
every epoch) both give the epoch's :class:`FeatureSet`, which is what the fit loop trains on.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
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
           "featurize_split", "AugmentedCopies", "TrainingSet"]

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
    synthetic, retrieval, or the augmentation name), ``ids`` per row. ``info``: what an epoch's set
    reports into the training curve (the augmentation draw and its digest; empty for a fixed set)."""

    x: torch.Tensor
    y: torch.Tensor
    kind: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def epoch(self, epoch: int) -> "FeatureSet":
        """The set epoch ``epoch`` trains on: this one, every epoch."""
        return self

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
        if aug is not None and not aug.changes_wave:  # features-only (SpecAugment): from the plain features
            return aug.features(self.get(path), seed).astype(np.float16).astype(np.float32)
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


def augmented_digest(x: torch.Tensor) -> str:
    """12 hex of the SHA-1 of features as float16 (what the cache holds): which draw an epoch trained on."""
    return hashlib.sha1(x.half().numpy().tobytes()).hexdigest()[:12]


@dataclass
class AugmentedCopies:
    """``copies`` augmented copies of each gold clip (``clips``: ``(path, labels, id)``), drawn afresh
    for every epoch.

    Epoch ``e`` (1-based) uses draw ``d = e - 1``, or ``(e - 1) % draws`` when ``draws`` bounds the
    distinct draws (cycled over the epochs). Copy ``c`` of clip ``id`` in draw ``d`` is seeded
    ``stable_int(name, seed, id, c)`` for ``d = 0`` (so draw 0 is the copies as drawn once before) and
    ``stable_int(name, seed, id, c, d)`` after: the same seed repeats every draw exactly. Picklable: Ray
    Train workers featurise with their own cache."""

    name: str
    aug: Augmentation
    clips: list[tuple[str, list[str], str]]
    labels: list[str]
    seed: int
    copies: int
    draws: int | None = None

    def __len__(self) -> int:
        return len(self.clips) * int(self.copies)

    def draw(self, epoch: int) -> int:
        return (epoch - 1) % self.draws if self.draws else epoch - 1

    def seed_of(self, clip_id: str, copy: int, draw: int) -> int:
        if draw == 0:
            return stable_int(self.name, self.seed, clip_id, copy)
        return stable_int(self.name, self.seed, clip_id, copy, draw)

    def items(self, epoch: int) -> list[tuple[str, int]]:
        """Epoch ``epoch``'s ``(path, seed)`` per row, clip by clip, copy by copy."""
        d = self.draw(epoch)
        return [(path, self.seed_of(i, c, d)) for path, _, i in self.clips for c in range(int(self.copies))]

    def rows(self) -> tuple[list[list[str]], list[str]]:
        """Labels and ids per row (the same every epoch)."""
        labels = [list(lab) for _, lab, _ in self.clips for _ in range(int(self.copies))]
        ids = [f"{i}#{self.name}{c}" for _, _, i in self.clips for c in range(int(self.copies))]
        return labels, ids

    def features(self, epoch: int, cache: FeatureCache, rank: int = 0, world: int = 1) -> torch.Tensor:
        """Epoch ``epoch``'s augmented features ``(rows, frames, mel)``. With ``world > 1`` (Ray Train)
        every rank first computes its share of the cache misses, then all read every row."""
        items = self.items(epoch)
        if world > 1:
            import torch.distributed as dist

            for path, s in items[rank::world]:
                cache.get(path, self.aug, s)
            dist.barrier()
        return _stack([cache.get(path, self.aug, s) for path, s in items], cache)


class TrainingSet:
    """A method's training set: ``fixed`` rows (the same every epoch; the first ``at`` are the gold clips)
    and, for a classic method, ``augmented`` copies inserted after the gold rows, new every epoch.
    ``epoch(e)`` -> the epoch's :class:`FeatureSet` (its ``info``: the draw and its digest)."""

    def __init__(self, fixed: FeatureSet, at: int, augmented: AugmentedCopies | None = None,
                 cache: FeatureCache | None = None, rank: int = 0, world: int = 1):
        if augmented is not None and cache is None:
            raise ValueError("augmented copies need a feature cache")
        self.fixed, self.at, self.augmented, self.cache = fixed, int(at), augmented, cache
        self.rank, self.world = int(rank), int(world)
        self._labels: tuple | None = None

    def __len__(self) -> int:
        return len(self.fixed) + (len(self.augmented) if self.augmented is not None else 0)

    @property
    def kind(self) -> list[str]:
        extra = [self.augmented.name] * len(self.augmented) if self.augmented is not None else []
        return self.fixed.kind[:self.at] + extra + self.fixed.kind[self.at:]

    def counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in pd.Series(self.kind, dtype=object).value_counts().sort_index().items()}

    def with_augmentation(self, aug: Augmentation) -> "TrainingSet":
        """The same set with another augmentation object for its copies (a searched candidate)."""
        if self.augmented is None:
            raise ValueError("this training set has no augmented copies")
        return TrainingSet(self.fixed, self.at, replace(self.augmented, aug=aug), self.cache, self.rank, self.world)

    def epoch(self, epoch: int) -> FeatureSet:
        if self.augmented is None:
            return self.fixed
        a, f = self.augmented, self.fixed
        if self._labels is None:
            labels, ids = a.rows()
            self._labels = (targets(labels, a.labels), ids)
        y, ids = self._labels
        x = a.features(epoch, self.cache, self.rank, self.world)
        return FeatureSet(torch.cat([f.x[:self.at], x, f.x[self.at:]]), torch.cat([f.y[:self.at], y, f.y[self.at:]]),
                          self.kind, f.ids[:self.at] + ids + f.ids[self.at:],
                          {"aug_draw": a.draw(epoch), "aug_digest": augmented_digest(x)})


def build_training_set(method: str, gold: pd.DataFrame, labels: Sequence[str], cache: FeatureCache, seed: int,
                       copies: int = 2, synthetic: pd.DataFrame | None = None,
                       retrieval: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
                       augmentation: Augmentation | None = None, draws: int | None = None) -> TrainingSet:
    """The training set of ``method`` (see the module table).

    ``gold``: D_small (``id, path, labels``). ``synthetic``: selected synthetic rows (``id, path, labels``),
    needed by synthetic methods. ``retrieval``: gold frame -> rows to add (``path, labels, source_id``),
    needed by retrieval methods. ``augmentation``: overrides the classic method's default object;
    ``draws``: distinct augmentation draws cycled over the epochs (None: a fresh draw every epoch; see
    :class:`AugmentedCopies` for the seeds). The fixed rows are featurised here, the copies per epoch."""
    parts = parse_method(method)
    rows: list[tuple[np.ndarray, list[str], str, str]] = []
    if parts.gold:
        for r in gold.itertuples():
            rows.append((cache.get(r.path), list(r.labels), "gold", str(r.id)))
    at = len(rows)
    augmented = None
    if parts.classic:
        augmented = AugmentedCopies(parts.classic, augmentation or make_augmentation(parts.classic),
                                    [(r.path, list(r.labels), str(r.id)) for r in gold.itertuples()],
                                    list(labels), int(seed), int(copies), draws)
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
    if not rows and not (augmented is not None and len(augmented)):
        raise ValueError(f"method {method!r}: the training set is empty (no gold and no selected synthetic clips)")
    fixed = FeatureSet(_stack([r[0] for r in rows], cache), targets([r[1] for r in rows], labels),
                       [r[2] for r in rows], [r[3] for r in rows])
    return TrainingSet(fixed, at, augmented, cache)
