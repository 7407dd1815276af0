"""Frechet distance between two sets of embeddings (FAD when the embeddings are audio embeddings; the
paper's Table 10 uses it between gold and generated sets). In: float ``(N, D)`` and ``(M, D)``; out: a
non-negative float (0 for identical distributions). With fewer rows than dimensions the covariances are
singular; a small ``eps`` on the diagonal keeps the matrix square root finite."""
from __future__ import annotations

import numpy as np

__all__ = ["frechet_distance"]


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    from scipy import linalg

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need (N, D) and (M, D) embeddings, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("need at least 2 embeddings per set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    off = np.eye(ca.shape[0]) * eps
    covmean = linalg.sqrtm((ca + off) @ (cb + off))
    covmean = (covmean[0] if isinstance(covmean, tuple) else covmean).real
    d = float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * np.trace(covmean))
    return max(d, 0.0)
