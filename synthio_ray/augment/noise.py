"""Random-noise baseline: add Gaussian noise, or a random clip from a set of background recordings, at
a signal-to-noise ratio drawn uniformly in ``[min_snr_db, max_snr_db]``."""
from __future__ import annotations

import numpy as np

from synthio_ray.augment import Augmentation
from synthio_ray.data.audio import fit_length

__all__ = ["AddNoise"]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


class AddNoise(Augmentation):
    """``backgrounds``: optional list of mono float32 waves at the clips' sample rate; when given, the
    noise is a random crop of a random background (looped when shorter), else white Gaussian noise."""

    name = "noise"

    def __init__(self, min_snr_db: float = 10.0, max_snr_db: float = 30.0, backgrounds: list | None = None):
        if min_snr_db > max_snr_db:
            raise ValueError(f"min_snr_db {min_snr_db} > max_snr_db {max_snr_db}")
        self.min_snr_db, self.max_snr_db = float(min_snr_db), float(max_snr_db)
        self.backgrounds = [np.asarray(b, np.float32) for b in (backgrounds or []) if len(b)]

    @property
    def params(self) -> dict:
        return {"snr_db": [self.min_snr_db, self.max_snr_db], "backgrounds": len(self.backgrounds)}

    def wave(self, x: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        snr = rng.uniform(self.min_snr_db, self.max_snr_db)
        if self.backgrounds:
            bg = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
            if len(bg) < len(x):
                bg = np.tile(bg, int(np.ceil(len(x) / len(bg))))
            start = int(rng.integers(0, len(bg) - len(x) + 1))
            noise = fit_length(bg[start:], len(x))
        else:
            noise = rng.standard_normal(len(x))
        scale = _rms(x) / (10 ** (snr / 20)) / _rms(noise)
        return (x + scale * noise).astype(np.float32)
