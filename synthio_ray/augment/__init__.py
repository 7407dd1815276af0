"""Classic augmentation baselines (paper Table 1) and the retrieval baseline, one per file.

Every augmentation is a plain class with two hooks, both deterministic in ``seed`` and shape-preserving:
``wave(x, sample_rate, seed) -> x'`` on a mono float32 ``(frames,)`` waveform and ``features(f, seed) -> f'``
on AST input features ``(frames, mel)``; the one a method does not use is the identity.

| name | class | what it does |
|---|---|---|
| ``noise`` | :class:`~synthio_ray.augment.noise.AddNoise` | Gaussian or background noise (recordings, else coloured noise) at 10-30 dB SNR |
| ``pitch`` | :class:`~synthio_ray.augment.pitch.PitchTimeShift` | pitch shift by +-2 semitones and a circular time shift by up to +-20 % |
| ``specaugment`` | :class:`~synthio_ray.augment.specaugment.SpecAugment` | one frequency mask (<= 24 bins) and one time mask (<= 18.75 % of frames), AST's ESC-50 recipe |
| ``audiomentations`` | :class:`~synthio_ray.augment.audiomentations_chain.AudiomentationsChain` | a combination of AddGaussianSNR, TimeStretch, PitchShift, Shift (p 0.5 each) and SpecAugment masks (p 0.5) |

``noise`` and ``audiomentations`` are searched: ``make_candidates`` gives the objects a run trains (one per
noise kind, one per combination of ``SEARCH_SPACE``), and the run reports the best on validation.

Retrieval (``retrieval.py``) is not a per-clip transform: it adds the CLAP-nearest clips of an unlabelled
pool to each gold clip, labelled with the gold clip's labels.
"""
from __future__ import annotations

from typing import Any

__all__ = ["CLASSIC_METHODS", "make_augmentation", "make_candidates", "Augmentation"]

CLASSIC_METHODS = ("noise", "pitch", "specaugment", "audiomentations")


class Augmentation:
    """Identity hooks; subclasses override ``wave`` and/or ``features``. ``name`` and ``params`` (a dict)
    identify the augmentation (they key the feature cache)."""

    name = "identity"

    @property
    def params(self) -> dict:
        return {}

    @property
    def changes_wave(self) -> bool:
        """False when ``wave`` is the identity: the features of a draw then derive from the clip's plain
        features (no new front-end pass, no cache entry per draw)."""
        return type(self).wave is not Augmentation.wave

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


def make_candidates(name: str, noise_kinds: list[str] | tuple[str, ...] = ("gaussian", "background"),
                    combinations: list[str] | tuple[str, ...] | None = None,
                    backgrounds: list | None = None) -> list[tuple[str, Augmentation]]:
    """The (candidate name, augmentation) pairs a classic method trains, in order (ties go to the first):
    ``noise`` one per kind of ``noise_kinds`` (``backgrounds``: the recordings of the ``background``
    kind; none: coloured noise), ``audiomentations`` one per combination of ``combinations`` (default
    ``SEARCH_SPACE``); ``pitch`` and ``specaugment`` one, named after the method."""
    if name == "noise":
        if not noise_kinds:
            raise ValueError("noise: give at least one noise kind")
        return [(k, make_augmentation("noise", kind=k, backgrounds=backgrounds if k == "background" else None))
                for k in dict.fromkeys(noise_kinds)]
    if name == "audiomentations":
        from synthio_ray.augment.audiomentations_chain import SEARCH_SPACE

        out: dict[str, Augmentation] = {}
        for c in combinations or SEARCH_SPACE:
            chain = make_augmentation("audiomentations", transforms=c)
            out.setdefault(chain.combination, chain)  # named canonically ("shift+snr" is "snr+shift"), once
        return list(out.items())
    return [(name, make_augmentation(name))]
