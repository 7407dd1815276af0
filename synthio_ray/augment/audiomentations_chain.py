"""The "Audiomentations" baseline: a fixed combination of the transforms the paper lists, each applied
with probability 0.5: ``AddGaussianSNR`` (10-30 dB), ``TimeStretch`` (0.8-1.25, length kept),
``PitchShift`` (+-2 semitones), ``Shift`` (+-20 %, rolled over); then SpecAugment frequency/time masks on
the features (p 0.5 each). The paper grid-searched its combination; this one is fixed and documented.

audiomentations draws from Python's ``random`` and numpy's global RNG: ``wave`` seeds both for the call
and restores their states afterwards (under a lock), so results depend on ``seed`` only."""
from __future__ import annotations

import random
import threading

import numpy as np

from synthio_ray.augment import Augmentation
from synthio_ray.augment.specaugment import SpecAugment
from synthio_ray.data.audio import fit_length

__all__ = ["AudiomentationsChain"]

_LOCK = threading.Lock()


class AudiomentationsChain(Augmentation):
    name = "audiomentations"

    def __init__(self, p: float = 0.5):
        from audiomentations import AddGaussianSNR, Compose, PitchShift, Shift, TimeStretch

        self.p = float(p)
        self.chain = Compose([
            AddGaussianSNR(min_snr_db=10.0, max_snr_db=30.0, p=p),
            TimeStretch(min_rate=0.8, max_rate=1.25, leave_length_unchanged=True, p=p),
            PitchShift(min_semitones=-2.0, max_semitones=2.0, p=p),
            Shift(min_shift=-0.2, max_shift=0.2, shift_unit="fraction", rollover=True, p=p),
        ])
        self.masks = SpecAugment(p=p)

    @property
    def params(self) -> dict:
        return {"p": self.p, "chain": "snr10-30,stretch0.8-1.25,pitch2,shift0.2", "masks": self.masks.params}

    def wave(self, x: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
        with _LOCK:
            py_state, np_state = random.getstate(), np.random.get_state()
            try:
                random.seed(int(seed))
                np.random.seed(int(seed) % (2 ** 32))
                y = self.chain(samples=np.asarray(x, np.float32), sample_rate=int(sample_rate))
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)
        return fit_length(np.asarray(y, np.float32), len(x))

    def features(self, f: np.ndarray, seed: int) -> np.ndarray:
        return self.masks.features(f, seed)
