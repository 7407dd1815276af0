"""Pitch-shifting baseline (with a time shift, as the paper's "Pitch Shifting" row): shift the pitch by a
uniform draw in ``[-semitones, semitones]`` (librosa's phase vocoder + resampling, length kept), then
roll the clip circularly by up to ``shift_fraction`` of its length either way."""
from __future__ import annotations

import numpy as np

from synthio_ray.augment import Augmentation
from synthio_ray.data.audio import fit_length

__all__ = ["PitchTimeShift"]


class PitchTimeShift(Augmentation):
    name = "pitch"

    def __init__(self, semitones: float = 2.0, shift_fraction: float = 0.2):
        self.semitones, self.shift_fraction = float(semitones), float(shift_fraction)

    @property
    def params(self) -> dict:
        return {"semitones": self.semitones, "shift_fraction": self.shift_fraction}

    def wave(self, x: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
        import librosa

        rng = np.random.default_rng(seed)
        steps = rng.uniform(-self.semitones, self.semitones)
        shift = int(rng.uniform(-self.shift_fraction, self.shift_fraction) * len(x))
        y = x
        if len(x) >= 2048 and abs(steps) > 1e-3:
            y = librosa.effects.pitch_shift(x.astype(np.float32), sr=int(sample_rate), n_steps=float(steps))
        return np.roll(fit_length(np.asarray(y, np.float32), len(x)), shift)
