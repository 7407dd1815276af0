"""Audio that is no sound of the world (noise, silence, tones, clicks), with captions of its own.

A CLAP trained without it scores white noise as "rain"; with it the filter has something to reject.
``junk_clips(count, seed)`` -> ``[(wave, caption, kind)]`` at the world's rate and length.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt

from synthio_ray.world.corpus import WORLD_SAMPLE_RATE, WORLD_SECONDS

__all__ = ["JUNK_KINDS", "junk_clips"]

JUNK_KINDS = {
    "white noise": "a burst of plain white noise",
    "silence": "near silence with a faint hiss",
    "pure tone": "a steady pure sine tone",
    "static": "crackling radio static",
}


def _make(kind: str, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    if kind == "white noise":
        x = rng.standard_normal(n)
        if rng.random() < 0.5:
            lo, hi = sorted(rng.uniform(100, 3800, 2))
            x = sosfilt(butter(2, [lo / (sr / 2), max(hi, lo + 200) / (sr / 2) * 0.99], "band", output="sos"), x)
        return x
    if kind == "silence":
        return rng.standard_normal(n) * 1e-3
    if kind == "pure tone":
        return np.sin(2 * np.pi * rng.uniform(100, 3500) * np.arange(n) / sr)
    return rng.standard_normal(n) * (rng.random(n) < 0.02) + 0.1 * rng.standard_normal(n)


def junk_clips(count: int, seed: int = 0) -> list[tuple[np.ndarray, str, str]]:
    """``count`` junk clips cycling through :data:`JUNK_KINDS`."""
    sr, n = WORLD_SAMPLE_RATE, int(WORLD_SECONDS * WORLD_SAMPLE_RATE)
    kinds = list(JUNK_KINDS)
    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, 77, i])
        kind = kinds[i % len(kinds)]
        x = _make(kind, rng, n, sr)
        peak = np.abs(x).max() + 1e-12
        x = x / peak * (rng.uniform(0.3, 0.9) if kind != "silence" else 1e-3 / peak * 3)
        out.append((x.astype(np.float32), JUNK_KINDS[kind], kind))
    return out
