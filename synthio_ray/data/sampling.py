"""Splits and stratified downsampling, as the paper draws its small sets.

Splits (``assign_splits``), in order of preference:
1. folds: ``fold in test_folds`` -> test, ``fold in val_folds`` -> val, else train (ESC-50 defaults:
   val 4, test 5; UrbanSound8K: val 9, test 10);
2. the source's own split column / folder / regex group;
3. otherwise a deterministic split per label: the label's rows ordered by ``sha256(id)``; the first
   ``round(c * test_fraction)`` go to test, the next ``round(c * val_fraction)`` to val, the rest to
   train (at least one stays in train). It depends on the ids only, never on the seed, so the test
   split is the same for every seed and every n. A source with a train split but no val (or no
   test) split gets one carved from its train rows the same way.

Stratified draw (``stratified_sample``): n rows, per label ``max(1, floor(n * c_l / N))`` then
largest remainders until the total is n (never more than a label has); rows within a label are
drawn with an RNG seeded by ``(seed, label)``. Multi-label: labels rarest first, one row for each
label not yet covered, then rows until each label reaches its expected count ``n * c_l / N``, then
random rows up to n. When n rows cannot cover every label (FSD50K's 200 labels at n = 50 or 100), the
rarest are covered first and the rest have no training clip (``prepare`` reports which).
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np

from synthio_ray.ids import stable_hash, stable_int

__all__ = ["SamplingError", "assign_splits", "stratified_sample", "label_quotas"]


class SamplingError(ValueError):
    """The requested draw cannot satisfy the rules (e.g. n smaller than the number of labels)."""


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def _strat_key(row: dict, freq: Counter) -> str:
    """Label a row is stratified by: its only label, or its rarest one (multi-label)."""
    return min(row["labels"], key=lambda lab: (freq[lab], lab))


def _hash_split(rows: list[dict], fractions: dict[str, float], freq: Counter) -> None:
    """Assign row['split'] in place: per label, ordered by hash(id), fractions taken in dict order."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[_strat_key(r, freq)].append(r)
    for members in groups.values():
        members.sort(key=lambda r: stable_hash("split", r["id"]))
        c = len(members)
        takes = {name: _round(c * frac) for name, frac in fractions.items()}
        while sum(takes.values()) >= c and any(takes.values()):  # keep >= 1 row for train
            name = max(takes, key=lambda k: (takes[k], k))
            takes[name] -= 1
        pos = 0
        for name, k in takes.items():
            for r in members[pos:pos + k]:
                r["split"] = name
            pos += k
        for r in members[pos:]:
            r["split"] = "train"


def assign_splits(rows: list[dict], val_fraction: float, test_fraction: float,
                  val_folds: list[int] | None = None, test_folds: list[int] | None = None) -> list[str]:
    """Set ``row['split']`` on every row (in place) by the rules above; return notes saying which rule."""
    notes = []
    freq = Counter(lab for r in rows for lab in r["labels"])
    if rows and (val_folds or test_folds) and all(r.get("fold") is not None for r in rows):
        vf, tf = set(val_folds or []), set(test_folds or [])
        for r in rows:
            r["split"] = "test" if r["fold"] in tf else "val" if r["fold"] in vf else "train"
        notes.append(f"splits from folds: val {sorted(vf)}, test {sorted(tf)}, the rest train")
        return notes
    given = [r for r in rows if r.get("split")]
    if not given:
        _hash_split(rows, {"test": test_fraction, "val": val_fraction}, freq)
        notes.append(f"no split in the source: per-label hash split, test {test_fraction:g}, "
                     f"val {val_fraction:g}, rest train")
        return notes
    missing = [r for r in rows if not r.get("split")]
    if missing:
        _hash_split(missing, {"test": test_fraction, "val": val_fraction}, freq)
        notes.append(f"{len(missing)} row(s) without a split got the per-label hash split")
    have = {r["split"] for r in rows}
    for name, frac in (("val", val_fraction), ("test", test_fraction)):
        if name not in have and frac > 0:
            train = [r for r in rows if r["split"] == "train"]
            _hash_split(train, {name: frac}, freq)
            notes.append(f"the source has no {name} split: carved {frac:g} of each label's train rows")
    return notes


def label_quotas(counts: dict[str, int], n: int) -> dict[str, int]:
    """How many rows to draw per label: proportional, >= 1 each, summing to exactly n (or all rows).

    Raises SamplingError when n is smaller than the number of labels.
    """
    total = sum(counts.values())
    if n >= total:
        return dict(counts)
    if n < len(counts):
        raise SamplingError(f"n={n} is smaller than the number of labels ({len(counts)}); the small set "
                            f"keeps at least one clip per label, so n must be >= {len(counts)}")
    ideal = {lab: n * c / total for lab, c in counts.items()}
    q = {lab: min(counts[lab], max(1, math.floor(ideal[lab]))) for lab in counts}
    while sum(q.values()) < n:
        lab = max((lab for lab in q if q[lab] < counts[lab]), key=lambda lab: (ideal[lab] - q[lab], lab))
        q[lab] += 1
    while sum(q.values()) > n:
        lab = min((lab for lab in q if q[lab] > 1), key=lambda lab: (ideal[lab] - q[lab], lab))
        q[lab] -= 1
    return q


def _rng(seed: int, *parts: object) -> np.random.Generator:
    return np.random.default_rng(stable_int("sample", seed, *parts))


def stratified_sample(rows: list[dict], n: int, seed: int, multilabel: bool = False
                      ) -> tuple[list[dict], list[dict]]:
    """Draw n rows stratified by label; return (drawn, rest), both in id order. Deterministic per seed."""
    rows = sorted(rows, key=lambda r: r["id"])
    if n >= len(rows):
        return rows, []
    if not multilabel:
        groups: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            groups[r["labels"][0]].append(r)
        quotas = label_quotas({lab: len(g) for lab, g in groups.items()}, n)
        picked_ids = set()
        for lab, members in groups.items():
            order = _rng(seed, lab).permutation(len(members))
            picked_ids.update(members[i]["id"] for i in order[:quotas[lab]])
    else:
        picked_ids = _multilabel_ids(rows, n, seed)
    drawn = [r for r in rows if r["id"] in picked_ids]
    rest = [r for r in rows if r["id"] not in picked_ids]
    return drawn, rest


def _multilabel_ids(rows: list[dict], n: int, seed: int) -> set[str]:
    freq = Counter(lab for r in rows for lab in r["labels"])
    order = sorted(freq, key=lambda lab: (freq[lab], lab))
    picked: set[str] = set()
    covered: Counter = Counter()

    def take(lab: str, want: int) -> None:
        pool = [r for r in rows if lab in r["labels"] and r["id"] not in picked]
        for i in _rng(seed, "ml", lab).permutation(len(pool))[:want]:
            if len(picked) >= n:
                return
            picked.add(pool[i]["id"])
            covered.update(pool[i]["labels"])

    for lab in order:                          # 1. at least one row per label
        if covered[lab] == 0 and len(picked) < n:
            take(lab, 1)
    for lab in order:                          # 2. expected occurrences per label
        target = math.floor(n * freq[lab] / len(rows))
        if covered[lab] < target and len(picked) < n:
            take(lab, target - covered[lab])
    if len(picked) < n:                        # 3. the rest at random
        pool = [r for r in rows if r["id"] not in picked]
        for i in _rng(seed, "ml-fill").permutation(len(pool))[:n - len(picked)]:
            picked.add(pool[i]["id"])
    return picked   # n below the number of labels: the rarest are covered first, the rest reported by prepare
