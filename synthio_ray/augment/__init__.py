"""Classic augmentation baselines (paper Table 1) and the retrieval baseline, one per file.

Every augmentation is a plain class with two hooks, both deterministic in ``seed`` and shape-preserving:
``wave(x, sample_rate, seed) -> x'`` on a mono float32 ``(frames,)`` waveform and ``features(f, seed) -> f'``
on AST input features ``(frames, mel)``; the one a method does not use is the identity.

| name | class | what it does |
|---|---|---|
| ``noise`` | :class:`~synthio_ray.augment.noise.AddNoise` | Gaussian noise (or a random background clip) at 10-30 dB SNR |
| ``pitch`` | :class:`~synthio_ray.augment.pitch.PitchTimeShift` | pitch shift by +-2 semitones and a circular time shift by up to +-20 % |
| ``specaugment`` | :class:`~synthio_ray.augment.specaugment.SpecAugment` | one frequency mask (<= 24 bins) and one time mask (<= 18.75 % of frames), AST's ESC-50 recipe |
| ``audiomentations`` | :class:`~synthio_ray.augment.audiomentations_chain.AudiomentationsChain` | AddGaussianSNR, TimeStretch, PitchShift, Shift (p 0.5 each) then SpecAugment masks (p 0.5) |

Retrieval (``retrieval.py``) is not a per-clip transform: it adds the CLAP-nearest clips of an unlabelled
pool to each gold clip, labelled with the gold clip's labels.
"""
from __future__ import annotations

from typing import Any

__all__ = ["CLASSIC_METHODS", "make_augmentation", "Augmentation"]

CLASSIC_METHODS = ("noise", "pitch", "specaugment", "audiomentations")


class Augmentation:
    """Identity hooks; subclasses override ``wave`` and/or ``features``. ``name`` and ``params`` (a dict)
    identify the augmentation (they key the feature cache)."""

    name = "identity"

    @property
    def params(self) -> dict:
        return {}

    def wave(self, x, sample_rate: int, seed: int):
        return x

    def features(self, f, seed: int):
        return f


def make_augmentation(name: str, **kwargs: Any) -> Augmentation:
    """``noise``, ``pitch``, ``specaugment`` or ``audiomentations`` -> its augmentation object."""
    if name == "noise":
        from synthio_ray.augment.noise import AddNoise
        return AddNoise(**kwargs)
    if name == "pitch":
        from synthio_ray.augment.pitch import PitchTimeShift
        return PitchTimeShift(**kwargs)
    if name == "specaugment":
        from synthio_ray.augment.specaugment import SpecAugment
        return SpecAugment(**kwargs)
    if name == "audiomentations":
        from synthio_ray.augment.audiomentations_chain import AudiomentationsChain
        return AudiomentationsChain(**kwargs)
    raise ValueError(f"unknown augmentation {name!r}: one of {', '.join(CLASSIC_METHODS)}")
