"""Retrieval baseline: for each gold clip, the ``n`` clips of an unlabelled pool whose CLAP audio
embeddings are nearest (cosine), labelled with the gold clip's labels.

``nearest(gold_emb, pool_emb, n)`` is the plain top-n (L2-normalised ``(G, D)`` and ``(P, D)`` in,
``(G, n)`` pool indices out, most similar first, ties broken by pool order). ``assign(gold_emb, pool_emb,
n)`` is what retrieval uses: the same top-n, except that a pool clip is given to one gold clip only (the
most similar one), and a gold clip that lost a contested clip takes its next nearest free one. Without
that, a clip near several gold clips of different labels would enter training once per label, and the
labels would contradict each other. ``retrieve(clap, gold, pool, n)`` embeds the files of two frames
(``path`` column; ``gold`` also ``labels``) and returns the rows to add: ``path, labels, source_id,
similarity``. Files reach CLAP whole, through the filter's own path (``synthio_ray.models.clap.embed_files``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


__all__ = ["nearest", "assign", "retrieve", "pool_frame"]


def nearest(gold_emb: np.ndarray, pool_emb: np.ndarray, n: int) -> np.ndarray:
    if len(pool_emb) == 0:
        return np.zeros((len(gold_emb), 0), dtype=np.int64)
    sims = np.asarray(gold_emb, np.float64) @ np.asarray(pool_emb, np.float64).T
    order = np.argsort(-sims, axis=1, kind="stable")
    return order[:, :min(int(n), pool_emb.shape[0])]


def assign(gold_emb: np.ndarray, pool_emb: np.ndarray, n: int) -> list[list[int]]:
    """Per gold clip, up to ``n`` pool indices (most similar first); no pool index is given twice.

    Greedy over all (gold, pool) pairs from the most similar down: a pair is taken while its gold clip has
    fewer than ``n`` and its pool clip is free. Every gold clip gets ``n`` when the pool has ``G * n``
    clips; ties go to the lower gold index, then the lower pool index.
    """
    out: list[list[int]] = [[] for _ in range(len(gold_emb))]
    if len(pool_emb) == 0 or n < 1:
        return out
    sims = np.asarray(gold_emb, np.float64) @ np.asarray(pool_emb, np.float64).T
    order = np.argsort(-sims, axis=None, kind="stable")  # flat (gold, pool) pairs, row-major on ties
    taken = np.zeros(sims.shape[1], dtype=bool)
    left = len(gold_emb) * int(n)
    for flat in order:
        g, p = divmod(int(flat), sims.shape[1])
        if taken[p] or len(out[g]) >= n:
            continue
        out[g].append(p)
        taken[p] = True
        left -= 1
        if left == 0 or taken.all():
            break
    return out


def pool_frame(source: str | Path | None, prepared_root: Path | None = None) -> pd.DataFrame:
    """The unlabelled pool as a frame with a ``path`` column: a folder of audio files (recursive), a
    prepared dataset folder (its ``pool.parquet``), or, with ``source`` None, the pool split of
    ``prepared_root``. A prepared pool keeps its ``labels`` column, never used for retrieval, only to
    report how often the retrieved clip's true label agrees with the gold clip's."""
    from synthio_ray.data.sources import _walk  # the dataset reader's own walk (hidden files skipped)

    root = Path(source) if source is not None else prepared_root
    if root is None:
        raise ValueError("no retrieval pool: give a folder of audio files or a prepared dataset")
    if (root / "pool.parquet").is_file():
        return pd.read_parquet(root / "pool.parquet")[["id", "path", "labels"]]  # labels: diagnostics only
    if not root.is_dir():
        raise FileNotFoundError(f"retrieval pool not found: {root}")
    exts = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}
    files, _ = _walk(root)
    files = sorted(str(root / f) for f in files if Path(f).suffix.lower() in exts)
    return pd.DataFrame({"id": [Path(f).stem for f in files], "path": files})


def retrieve(clap, gold: pd.DataFrame, pool: pd.DataFrame, n: int) -> pd.DataFrame:
    from synthio_ray.models.clap import embed_files

    cols = ["path", "labels", "source_id", "similarity"]
    if n < 1 or len(pool) == 0 or len(gold) == 0:
        return pd.DataFrame(columns=cols)
    g = embed_files(clap, list(gold["path"]))
    p = embed_files(clap, list(pool["path"]))
    idx = assign(g, p, n)
    sims = g @ p.T
    rows = []
    for i, (_, row) in enumerate(gold.reset_index(drop=True).iterrows()):
        for j in idx[i]:
            rows.append({"path": pool["path"].iloc[j], "labels": list(row["labels"]),
                         "source_id": row["id"], "similarity": float(sims[i, j])})
    return pd.DataFrame(rows, columns=cols)
