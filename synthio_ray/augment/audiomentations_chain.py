"""The "Audiomentations" baseline: a combination of the transforms the paper lists, each applied with
probability ``p`` (0.5): ``snr`` AddGaussianSNR (10-30 dB), ``stretch`` TimeStretch (0.8-1.25, length
kept), ``pitch`` PitchShift (+-2 semitones), ``shift`` Shift (+-20 %, rolled over) on the wave, in that
order; ``masks`` SpecAugment frequency/time masks on the features (p each).

The paper grid-searched the combination; so does the ``audiomentations`` method, over ``SEARCH_SPACE``
(``train_classifier.audiomentations_search``): it trains each candidate and reports the one with the
best validation score. A combination is written as transform names joined by ``+``
(``"snr+stretch+pitch+shift+masks"``, the default object: all five).

audiomentations draws from Python's ``random`` and numpy's global RNG: ``wave`` seeds both for the call
and restores their states afterwards (under a lock), so results depend on ``seed`` only."""
from __future__ import annotations

import random
import threading

import numpy as np

from synthio_ray.augment import Augmentation
from synthio_ray.augment.specaugment import SpecAugment
from synthio_ray.data.audio import fit_length

__all__ = ["AudiomentationsChain", "TRANSFORMS", "SEARCH_SPACE", "parse_combination"]

_LOCK = threading.Lock()
TRANSFORMS = ("snr", "stretch", "pitch", "shift", "masks")
# The searched combinations: the wave transforms by family (noise + position, time + pitch), all four,
# and all four with the feature masks (the chain this baseline used before the search).
SEARCH_SPACE = ("snr+shift", "stretch+pitch", "snr+stretch+pitch+shift", "snr+stretch+pitch+shift+masks")
_SPECS = {"snr": "snr10-30", "stretch": "stretch0.8-1.25", "pitch": "pitch2", "shift": "shift0.2"}


def parse_combination(combination: str) -> tuple[str, ...]:
    """``"snr+shift"`` -> ``("snr", "shift")`` in the chain's order; ValueError naming the valid transforms."""
    names = [s.strip() for s in str(combination).split("+") if s.strip()]
    bad = [s for s in names if s not in TRANSFORMS]
    if not names or bad or len(set(names)) != len(names):
        raise ValueError(f"audiomentations combination {combination!r}: distinct transforms joined by '+', "
                         f"each one of {', '.join(TRANSFORMS)}")
    return tuple(t for t in TRANSFORMS if t in names)


class AudiomentationsChain(Augmentation):
    name = "audiomentations"

    def __init__(self, transforms: str = "snr+stretch+pitch+shift+masks", p: float = 0.5):
        from audiomentations import AddGaussianSNR, Compose, PitchShift, Shift, TimeStretch

        self.transforms = parse_combination(transforms)
        self.p = float(p)
        make = {
            "snr": lambda: AddGaussianSNR(min_snr_db=10.0, max_snr_db=30.0, p=p),
            "stretch": lambda: TimeStretch(min_rate=0.8, max_rate=1.25, leave_length_unchanged=True, p=p),
            "pitch": lambda: PitchShift(min_semitones=-2.0, max_semitones=2.0, p=p),
            "shift": lambda: Shift(min_shift=-0.2, max_shift=0.2, shift_unit="fraction", rollover=True, p=p),
        }
        wave = [t for t in self.transforms if t in make]
        self.chain = Compose([make[t]() for t in wave]) if wave else None
        self.masks = SpecAugment(p=p) if "masks" in self.transforms else None

    @property
    def combination(self) -> str:
        return "+".join(self.transforms)

    @property
    def changes_wave(self) -> bool:
        return self.chain is not None

    @property
    def params(self) -> dict:
        out = {"p": self.p, "chain": ",".join(_SPECS[t] for t in self.transforms if t in _SPECS)}
        if self.masks is not None:
            out["masks"] = self.masks.params
        return out

    def wave(self, x: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
        if self.chain is None:
            return x
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
        return f if self.masks is None else self.masks.features(f, seed)
