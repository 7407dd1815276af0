"""Random-noise baseline: add noise at a signal-to-noise ratio drawn uniformly in ``[min_snr_db, max_snr_db]``.

Two variants (``kind``), both trained by the ``noise`` method, which reports the better one on validation
(``classifier_run.py``):

- ``gaussian``: white Gaussian noise;
- ``background``: a random crop of a random recording of ``backgrounds`` (looped when shorter), the
  recordings of ``train_classifier.background_noise``. Without recordings (no noise corpus ships with
  the project and none can be downloaded offline) the background is coloured noise: power falling as
  ``1/f**b`` with ``b`` drawn uniformly in ``[1, 2]`` per draw (pink to brown), the shape of most ambient
  background (wind, traffic, rooms). It is label-free; the other gold clips are not (mixing them in would
  add another class's event to a clip that keeps its own label).
"""
from __future__ import annotations

import hashlib

import numpy as np

from synthio_ray.augment import Augmentation
from synthio_ray.data.audio import fit_length

__all__ = ["AddNoise", "coloured_noise", "NOISE_KINDS"]

NOISE_KINDS = ("gaussian", "background")


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def coloured_noise(frames: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """``frames`` samples of noise whose power spectrum falls as ``1/f**exponent`` (0 white, 1 pink,
    2 brown), zero mean; float64."""
    spec = np.fft.rfft(rng.standard_normal(frames))
    f = np.fft.rfftfreq(frames)
    f[0] = np.inf  # no DC
    spec *= f ** (-exponent / 2)
    y = np.fft.irfft(spec, frames)
    return y - y.mean()


class AddNoise(Augmentation):
    """``kind``: ``gaussian`` or ``background`` (default: ``background`` when ``backgrounds`` is given, else
    ``gaussian``). ``backgrounds``: mono float32 waves at the clips' sample rate (``background`` only)."""

    name = "noise"

    def __init__(self, min_snr_db: float = 10.0, max_snr_db: float = 30.0, backgrounds: list | None = None,
                 kind: str | None = None, colour_exponent: tuple[float, float] = (1.0, 2.0)):
        if min_snr_db > max_snr_db:
            raise ValueError(f"min_snr_db {min_snr_db} > max_snr_db {max_snr_db}")
        kind = kind or ("background" if backgrounds else "gaussian")
        if kind not in NOISE_KINDS:
            raise ValueError(f"noise kind {kind!r}: one of {', '.join(NOISE_KINDS)}")
        if kind == "gaussian" and backgrounds:
            raise ValueError("gaussian noise takes no background recordings")
        self.kind = kind
        self.min_snr_db, self.max_snr_db = float(min_snr_db), float(max_snr_db)
        self.backgrounds = [np.asarray(b, np.float32) for b in (backgrounds or []) if len(b)]
        self.colour_exponent = (float(colour_exponent[0]), float(colour_exponent[1]))

    @property
    def source(self) -> str:
        """What the noise is, in words (the run's provenance)."""
        if self.kind == "gaussian":
            return "white Gaussian noise"
        if self.backgrounds:
            return f"{len(self.backgrounds)} background recordings"
        lo, hi = self.colour_exponent
        return f"coloured noise 1/f^b, b uniform in [{lo:g}, {hi:g}] (no background recordings given)"

    @property
    def params(self) -> dict:
        if self.kind == "gaussian":
            return {"snr_db": [self.min_snr_db, self.max_snr_db], "backgrounds": 0}
        digest = hashlib.sha1()
        for b in self.backgrounds:
            digest.update(b.tobytes())
        return {"snr_db": [self.min_snr_db, self.max_snr_db], "kind": "background",
                "backgrounds": len(self.backgrounds), "backgrounds_sha1": digest.hexdigest()[:16],
                "colour_exponent": list(self.colour_exponent) if not self.backgrounds else None}

    def _noise(self, frames: int, rng: np.random.Generator) -> np.ndarray:
        if self.kind == "gaussian":
            return rng.standard_normal(frames)
        if not self.backgrounds:
            return coloured_noise(frames, rng.uniform(*self.colour_exponent), rng)
        bg = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        if len(bg) < frames:
            bg = np.tile(bg, int(np.ceil(frames / len(bg))))
        start = int(rng.integers(0, len(bg) - frames + 1))
        return fit_length(bg[start:], frames)

    def wave(self, x: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        snr = rng.uniform(self.min_snr_db, self.max_snr_db)
        noise = self._noise(len(x), rng)
        scale = _rms(x) / (10 ** (snr / 20)) / _rms(noise)
        return (x + scale * noise).astype(np.float32)
