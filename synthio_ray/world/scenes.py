"""What surrounds a sound in the world: events mixed in, a background and a room, and the target microphone.

- **Events** (:data:`EVENTS`): short sounds that are not classes of the world (a click, a thud, a
  whoosh ...), each ``(phrase, make)``; a clip carries zero to two of them.
- **Backgrounds** (:data:`BACKGROUNDS`): a steady bed under the sound (hiss, hum, distant traffic,
  murmur), or none; **rooms** (:data:`ROOMS`): a synthetic impulse response (outdoors: dry).
- **The target microphone** (:func:`target_microphone`): the domain shift of the small dataset: a
  band-limited, resonant, slightly clipping recorder with its own noise floor, which the general
  corpus never shows.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

__all__ = ["EVENTS", "BACKGROUNDS", "ROOMS", "apply_room", "target_microphone", "TARGET_MIC"]

TARGET_MIC = "a cheap handheld recorder (300-3000 Hz band, a 1.2 kHz resonance, soft clipping, a hissing floor)"


def _decay_burst(rng, sr, dur, lo, hi, tau):
    m = int(dur * sr)
    t = np.arange(m) / sr
    sos = butter(2, [lo / (sr / 2), min(hi, sr / 2 * 0.95) / (sr / 2)], btype="band", output="sos")
    return sosfilt(sos, rng.standard_normal(m)) * np.exp(-t / tau)


def _click(rng, sr):
    return _decay_burst(rng, sr, 0.02, 2000, 3900, 0.002) * 2


def _thud(rng, sr):
    m = int(0.15 * sr)
    t = np.arange(m) / sr
    return np.sin(2 * np.pi * 70 * t * (1 + np.exp(-t * 30))) * np.exp(-t * 25)


def _clang(rng, sr):
    m = int(0.5 * sr)
    t = np.arange(m) / sr
    f = rng.uniform(1300, 1900)
    return sum(np.sin(2 * np.pi * f * r * t) for r in (1.0, 1.37, 1.83) if f * r < sr * 0.47) * np.exp(-t * 8) / 2


def _whoosh(rng, sr):
    m = int(0.4 * sr)
    return _decay_burst(rng, sr, 0.4, 300, 1500, 1.0) * np.hanning(m) * 1.5


def _beep(rng, sr):
    m = int(0.12 * sr)
    return np.sin(2 * np.pi * rng.uniform(1800, 2400) * np.arange(m) / sr) * np.hanning(m) ** 0.3 * 0.6


def _rattle(rng, sr):
    m = int(0.3 * sr)
    t = np.arange(m) / sr
    return _decay_burst(rng, sr, 0.3, 800, 3000, 1.0) * (np.sin(2 * np.pi * 28 * t) > 0.5) * np.hanning(m)


def _pop(rng, sr):
    return _decay_burst(rng, sr, 0.03, 200, 1200, 0.006) * 3


EVENTS: dict[str, Callable] = {
    "a sharp click": _click, "a dull thud": _thud, "a metallic clang": _clang, "a brief whoosh": _whoosh,
    "a short beep": _beep, "a rattle": _rattle, "a soft pop": _pop,
}


def _hiss(rng, n, sr):
    return rng.standard_normal(n) * 0.5


def _hum(rng, n, sr):
    t = np.arange(n) / sr
    f = rng.choice([50.0, 60.0])
    return sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3, 5))


def _traffic(rng, n, sr):
    brown = np.cumsum(rng.standard_normal(n))
    brown = sosfilt(butter(1, 40 / (sr / 2), btype="high", output="sos"), brown)
    return brown / (np.std(brown) + 1e-9)


def _murmur(rng, n, sr):
    t = np.arange(n) / sr
    sos = butter(2, [300 / (sr / 2), 1200 / (sr / 2)], btype="band", output="sos")
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 3.1 * t + rng.uniform(0, 6)) * np.sin(2 * np.pi * 1.7 * t)
    return sosfilt(sos, rng.standard_normal(n)) * env * 2


BACKGROUNDS: dict[str | None, Callable | None] = {
    None: None, "over a steady hiss": _hiss, "over an electrical hum": _hum,
    "with distant traffic": _traffic, "with people murmuring": _murmur,
}

# room phrase -> (reverb time in s, wet level); None is outdoors, dry
ROOMS: dict[str | None, tuple[float, float] | None] = {
    None: None, "outdoors": None, "in a small room": (0.25, 0.35), "in a large hall": (0.9, 0.6),
}


def apply_room(x: np.ndarray, rng, sr: int, rt: float, wet: float) -> np.ndarray:
    """Convolve with an exponentially decaying noise impulse response (reverb time ``rt`` s)."""
    m = int(rt * sr)
    t = np.arange(m) / sr
    ir = rng.standard_normal(m) * np.exp(-6.9 * t / rt)
    ir = sosfilt(butter(1, 2500 / (sr / 2), output="sos"), ir)
    ir /= np.sqrt(np.sum(ir ** 2)) + 1e-9
    y = fftconvolve(x, ir)[: len(x)]
    return (1 - wet) * x + wet * y


def target_microphone(x: np.ndarray, rng, sr: int) -> np.ndarray:
    """The target domain's recorder applied to a clean clip (peak about 1 in, about 0.8 out)."""
    sos = butter(2, [300 / (sr / 2), 3000 / (sr / 2)], btype="band", output="sos")
    y = sosfilt(sos, x)
    peak = butter(2, [1000 / (sr / 2), 1450 / (sr / 2)], btype="band", output="sos")
    y = y + 1.2 * sosfilt(peak, y)
    y = np.tanh(2.5 * y / (np.abs(y).max() + 1e-9)) / np.tanh(2.5)
    floor = sosfilt(butter(1, 1800 / (sr / 2), btype="high", output="sos"), rng.standard_normal(len(y)))
    return 0.8 * y + floor * 10 ** (-32 / 20)
