"""The world's sound classes: each a seeded recipe with attributes that change the audio and the words.

A class is a :class:`SoundClass`: its label, a caption phrase that names the label's words, and
``make(rng, n, sr, a) -> (n,) float`` drawing one instance from attributes ``a``
(:class:`Attributes`: pitch, rate and count). Recipes are built from a few primitives (harmonic
tones with a pitch contour and formants, noise bands, impulses, plucked strings), so classes share
building blocks and differ by structure, the way real sound categories do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

__all__ = ["Attributes", "SoundClass", "SOUND_CLASSES", "TIMES"]

TIMES = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times"}


@dataclass(frozen=True)
class Attributes:
    """Where an instance sits in its class: ``pitch`` and ``rate`` in [0, 1] (low..high, slow..fast),
    ``count`` the number of repetitions (for counted classes)."""

    pitch: float
    rate: float
    count: int


@dataclass(frozen=True)
class SoundClass:
    """``phrase`` has slots ``{adj}`` (attribute adjectives, may be empty), ``{times}`` and ``{tempo}``;
    ``tempo`` the (slow, middle, fast) words; ``counted`` says whether ``count`` is heard."""

    label: str
    phrase: str
    make: Callable[[np.random.Generator, int, int, Attributes], np.ndarray]
    tempo: tuple[str, str, str] = ("slowly", "steadily", "quickly")
    counted: bool = False
    pitched: bool = True


# -- primitives ------------------------------------------------------------------------------------------------

def _env(n: int, attack: float, decay: float, sr: int) -> np.ndarray:
    """Attack (linear, s) then exponential decay (time constant, s)."""
    t = np.arange(n) / sr
    a = max(attack, 1e-4)
    return np.minimum(t / a, 1.0) * np.exp(-np.maximum(t - a, 0) / max(decay, 1e-4))


def _hann_env(n: int) -> np.ndarray:
    return np.hanning(n) if n > 2 else np.ones(n)


def _tone(f: np.ndarray, sr: int, harmonics: int = 6, tilt: float = 1.0, rng=None) -> np.ndarray:
    """Harmonic tone following the frequency contour ``f`` (Hz per sample); partials above Nyquist dropped."""
    phase = 2 * np.pi * np.cumsum(f) / sr
    out = np.zeros_like(f)
    for h in range(1, harmonics + 1):
        mask = (f * h) < sr / 2 * 0.95
        out += mask * np.sin(h * phase + (rng.uniform(0, 6.28) if rng is not None else 0)) / h ** tilt
    return out


def _band(x: np.ndarray, lo: float, hi: float, sr: int, order: int = 2) -> np.ndarray:
    nyq = sr / 2
    lo, hi = max(lo, 20.0) / nyq, min(hi, nyq * 0.95) / nyq
    if lo >= hi:
        return x * 0
    return sosfilt(butter(order, [lo, hi], btype="band", output="sos"), x)


def _lowpass(x: np.ndarray, fc: float, sr: int, order: int = 2) -> np.ndarray:
    return sosfilt(butter(order, min(fc, sr / 2 * 0.95) / (sr / 2), output="sos"), x)


def _formant(x: np.ndarray, centre: float, sr: int, q: float = 4.0) -> np.ndarray:
    return x * 0.3 + _band(x, centre / (1 + 1 / q), centre * (1 + 1 / q), sr)


def _place(out: np.ndarray, seg: np.ndarray, start: int) -> None:
    if start < 0:
        seg, start = seg[-start:], 0
    if start >= len(out):
        return
    m = min(len(seg), len(out) - start)
    out[start:start + m] += seg[:m]


def _onsets(rng, n: int, sr: int, count: int, seg: float) -> list[int]:
    """``count`` onsets spread over the clip with jitter, leaving room for a segment of ``seg`` s."""
    span = max(n - int(seg * sr), 1)
    base = (np.arange(count) + 0.5) / count * span
    jitter = rng.uniform(-0.3, 0.3, count) * span / max(count, 1)
    return sorted(int(np.clip(b + j, 0, span - 1)) for b, j in zip(base, jitter))


def _pluck(f0: float, n: int, sr: int, rng, decay: float = 0.996) -> np.ndarray:
    """Karplus-Strong string: a noise burst through a damped comb filter."""
    period = max(int(sr / f0), 2)
    x = np.zeros(n)
    x[:period] = rng.uniform(-1, 1, period)
    a = np.zeros(period + 2)
    a[0], a[period], a[period + 1] = 1.0, -decay / 2, -decay / 2
    return lfilter([1.0], a, x)


def _lin(a: float, lo: float, hi: float) -> float:
    return lo + (hi - lo) * a


# -- classes ---------------------------------------------------------------------------------------------------

def _dog(rng, n, sr, a):
    out = np.zeros(n)
    f0 = _lin(a.pitch, 220, 650)
    for s in _onsets(rng, n, sr, a.count, 0.25):
        m = int(sr * rng.uniform(0.12, 0.2))
        t = np.linspace(0, 1, m)
        f = f0 * (1 + 0.35 * np.sin(np.pi * t)) * rng.uniform(0.9, 1.1)
        x = _tone(f, sr, 10, 0.7, rng) + 0.3 * rng.standard_normal(m)
        x = _formant(x, _lin(a.pitch, 900, 1800), sr, 2.0)
        _place(out, x * _env(m, 0.01, 0.07, sr), s)
    return out


def _cat(rng, n, sr, a):
    out = np.zeros(n)
    f0 = _lin(a.pitch, 380, 900)
    for s in _onsets(rng, n, sr, a.count, 0.7):
        m = int(sr * rng.uniform(0.45, 0.65))
        t = np.linspace(0, 1, m)
        f = f0 * (0.8 + 0.45 * np.sin(np.pi * t ** 0.7))
        x = _tone(f, sr, 8, 1.0, rng)
        x = _formant(x, _lin(a.pitch, 900, 2000), sr, 3.0)
        _place(out, x * _hann_env(m), s)
    return out


def _bird(rng, n, sr, a):
    out = np.zeros(n)
    k = int(round(_lin(a.rate, 3, 10)))
    lo = _lin(a.pitch, 1400, 2600)
    for s in _onsets(rng, n, sr, k, 0.12):
        m = int(sr * rng.uniform(0.04, 0.1))
        f = np.linspace(lo, lo * rng.uniform(1.2, 1.5), m)
        _place(out, np.sin(2 * np.pi * np.cumsum(f) / sr) * _hann_env(m), s)
    return out


def _siren(rng, n, sr, a):
    t = np.arange(n) / sr
    lo = _lin(a.pitch, 450, 900)
    rate = _lin(a.rate, 0.4, 3.0)
    f = lo * (1 + 0.7 * 0.5 * (1 + np.sin(2 * np.pi * rate * t + rng.uniform(0, 6.28))))
    return _tone(f, sr, 4, 1.2, rng)


def _car_horn(rng, n, sr, a):
    out = np.zeros(n)
    f0 = _lin(a.pitch, 280, 520)
    for s in _onsets(rng, n, sr, a.count, 0.45):
        m = int(sr * rng.uniform(0.25, 0.4))
        f = np.full(m, f0)
        x = _tone(f, sr, 12, 0.5, rng) + _tone(f * 1.26, sr, 12, 0.5, rng)
        _place(out, x * _env(m, 0.01, 1.0, sr) * _hann_env(m) ** 0.1, s)
    return out


def _engine(rng, n, sr, a):
    t = np.arange(n) / sr
    f0 = _lin(a.pitch, 30, 90)
    x = _tone(np.full(n, f0), sr, 14, 0.8, rng)
    x *= 1 + 0.4 * np.sin(2 * np.pi * _lin(a.rate, 2, 9) * t)
    return x + 0.1 * _lowpass(rng.standard_normal(n), 600, sr)


def _rain(rng, n, sr, a):
    x = _band(rng.standard_normal(n), 400, _lin(a.pitch, 1500, 3800), sr) * 0.6
    drops = (rng.random(n) < _lin(a.rate, 0.002, 0.012)) * rng.uniform(0.3, 1.0, n)
    kernel = np.sin(2 * np.pi * 2500 * np.arange(80) / sr) * np.exp(-np.arange(80) / 12)
    return x + np.convolve(drops, kernel, mode="same")


def _wind(rng, n, sr, a):
    t = np.arange(n) / sr
    x = _lowpass(rng.standard_normal(n), _lin(a.pitch, 250, 900), sr, 2)
    gust = _lin(a.rate, 0.15, 0.9)
    return x * (0.5 + 0.5 * np.sin(2 * np.pi * gust * t + rng.uniform(0, 6.28)) ** 2)


def _door_knock(rng, n, sr, a):
    out = np.zeros(n)
    f = _lin(a.pitch, 120, 320)
    gap = int(sr * _lin(a.rate, 0.35, 0.12))
    start = int(rng.uniform(0.05, 0.3) * sr)
    m = int(0.12 * sr)
    for i in range(a.count):
        tt = np.arange(m) / sr
        hit = np.sin(2 * np.pi * f * tt) * np.exp(-tt * 35) + 0.4 * rng.standard_normal(m) * np.exp(-tt * 250)
        _place(out, hit, start + i * gap + int(rng.uniform(-0.02, 0.02) * sr))
    return out


def _bell(rng, n, sr, a):
    out = np.zeros(n)
    f = _lin(a.pitch, 300, 1100)
    for s in _onsets(rng, n, sr, a.count, 0.6):
        m = n - s
        t = np.arange(m) / sr
        x = sum(np.sin(2 * np.pi * f * r * t) * np.exp(-t * 2.5 * (1 + i)) / (1 + i)
                for i, r in enumerate((1.0, 2.76, 5.4)) if f * r < sr / 2 * 0.95)
        _place(out, x, s)
    return out


def _clock(rng, n, sr, a):
    out = np.zeros(n)
    period = int(sr * _lin(a.rate, 0.5, 0.18))
    m = int(0.01 * sr)
    click = _band(rng.standard_normal(m), _lin(a.pitch, 1500, 3000), 3900, sr) * _env(m, 0.0005, 0.002, sr)
    for i, s in enumerate(range(int(rng.uniform(0, period)), n, period)):
        _place(out, click * (1.0 if i % 2 else 0.7), s)
    return out


def _phone(rng, n, sr, a):
    out = np.zeros(n)
    f = _lin(a.pitch, 400, 900)
    for s in _onsets(rng, n, sr, a.count, 0.5):
        m = int(0.4 * sr)
        t = np.arange(m) / sr
        x = (np.sin(2 * np.pi * f * t) + np.sin(2 * np.pi * f * 1.1 * t)) * (np.sin(2 * np.pi * 20 * t) > 0)
        _place(out, x * _hann_env(m) ** 0.2, s)
    return out


def _footsteps(rng, n, sr, a):
    out = np.zeros(n)
    period = int(sr * _lin(a.rate, 0.6, 0.28))
    m = int(0.08 * sr)
    for s in range(int(rng.uniform(0, period)), n, period):
        tt = np.arange(m) / sr
        step = _lowpass(rng.standard_normal(m), _lin(a.pitch, 300, 1200), sr) * np.exp(-tt * 45)
        _place(out, step * rng.uniform(0.7, 1.0), s + int(rng.uniform(-0.03, 0.03) * sr))
    return out


def _hammer(rng, n, sr, a):
    out = np.zeros(n)
    f = _lin(a.pitch, 800, 2200)
    for s in _onsets(rng, n, sr, a.count, 0.3):
        m = int(0.25 * sr)
        tt = np.arange(m) / sr
        x = (np.sin(2 * np.pi * f * tt) + 0.6 * np.sin(2 * np.pi * f * 1.48 * tt)) * np.exp(-tt * 18)
        x += rng.standard_normal(m) * np.exp(-tt * 300)
        _place(out, x, s)
    return out


def _drip(rng, n, sr, a):
    out = np.zeros(n)
    k = int(round(_lin(a.rate, 2, 8)))
    for s in _onsets(rng, n, sr, k, 0.1):
        m = int(0.06 * sr)
        f = np.linspace(_lin(a.pitch, 700, 1500), _lin(a.pitch, 1400, 3000), m)
        _place(out, np.sin(2 * np.pi * np.cumsum(f) / sr) * _env(m, 0.001, 0.015, sr), s)
    return out


def _fire(rng, n, sr, a):
    x = 0.25 * _lowpass(rng.standard_normal(n), 300, sr)
    pops = (rng.random(n) < _lin(a.rate, 0.0015, 0.008)) * rng.uniform(0.2, 1.0, n) * rng.choice([-1, 1], n)
    kernel = _band(rng.standard_normal(60), _lin(a.pitch, 600, 1500), 3900, sr) * np.exp(-np.arange(60) / 8)
    return x + np.convolve(pops, kernel, mode="same") * 3


def _frog(rng, n, sr, a):
    out = np.zeros(n)
    for s in _onsets(rng, n, sr, a.count, 0.4):
        m = int(sr * rng.uniform(0.2, 0.35))
        tt = np.arange(m) / sr
        pulses = (np.sin(2 * np.pi * _lin(a.rate, 15, 40) * tt) > 0.3).astype(float)
        x = _tone(np.full(m, _lin(a.pitch, 150, 400)), sr, 10, 0.6, rng) * pulses
        _place(out, _formant(x, 1000, sr, 2.0) * _hann_env(m), s)
    return out


def _whistle(rng, n, sr, a):
    t = np.arange(n) / sr
    f = _lin(a.pitch, 900, 2600) * (1 + 0.02 * np.sin(2 * np.pi * 5.5 * t))
    gate = np.clip(np.sin(2 * np.pi * _lin(a.rate, 0.4, 2.0) * t + rng.uniform(0, 6.28)) * 3 + 1, 0, 1)
    return np.sin(2 * np.pi * np.cumsum(f) / sr) * _lowpass(gate, 30, sr) + 0.02 * rng.standard_normal(n)


def _drum(rng, n, sr, a):
    out = np.zeros(n)
    period = int(sr * _lin(a.rate, 0.5, 0.2))
    m = int(0.2 * sr)
    tt = np.arange(m) / sr
    f = _lin(a.pitch, 50, 130) * (1 + 2 * np.exp(-tt * 40))
    kick = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-tt * 15)
    for i, s in enumerate(range(int(rng.uniform(0, period / 2)), n, period)):
        hit = kick if i % 2 == 0 else rng.standard_normal(m) * np.exp(-tt * 30) * 0.6 + kick * 0.3
        _place(out, hit, s)
    return out


def _guitar(rng, n, sr, a):
    out = np.zeros(n)
    root = _lin(a.pitch, 82, 220)
    for s in _onsets(rng, n, sr, a.count, 0.3):
        for j, ratio in enumerate((1.0, 1.5, 2.0, 2.52)):
            _place(out, _pluck(root * ratio, n - s, sr, rng) * 0.5, s + j * int(0.012 * sr))
    return out


def _vacuum(rng, n, sr, a):
    t = np.arange(n) / sr
    whine = np.sin(2 * np.pi * _lin(a.pitch, 600, 1800) * t) * 0.3
    return _band(rng.standard_normal(n), 200, 2500, sr) + whine


def _helicopter(rng, n, sr, a):
    t = np.arange(n) / sr
    blades = np.abs(np.sin(np.pi * _lin(a.rate, 8, 22) * t)) ** 4
    return _lowpass(rng.standard_normal(n), _lin(a.pitch, 300, 800), sr) * (0.3 + blades)


def _typing(rng, n, sr, a):
    out = np.zeros(n)
    k = int(round(_lin(a.rate, 5, 18)))
    m = int(0.015 * sr)
    for s in np.sort(rng.integers(0, n - m, k)):
        click = _band(rng.standard_normal(m), _lin(a.pitch, 1000, 2500), 3900, sr) * _env(m, 0.0005, 0.003, sr)
        _place(out, click * rng.uniform(0.5, 1.0), int(s))
    return out


def _applause(rng, n, sr, a):
    out = np.zeros(n)
    k = int(_lin(a.rate, 25, 90) * n / sr)
    m = int(0.02 * sr)
    for s in rng.integers(0, n - m, k):
        clap = _band(rng.standard_normal(m), _lin(a.pitch, 600, 1400), 3800, sr) * _env(m, 0.001, 0.004, sr)
        _place(out, clap * rng.uniform(0.3, 1.0), int(s))
    return out


def _cls(label, phrase, make, tempo=("slowly", "steadily", "quickly"), counted=False, pitched=True) -> SoundClass:
    return SoundClass(label, phrase, make, tempo, counted, pitched)


SOUND_CLASSES: dict[str, SoundClass] = {c.label: c for c in (
    _cls("dog bark", "a {adj}dog barks {times}", _dog, counted=True),
    _cls("cat meow", "a {adj}cat meows {times}", _cat, counted=True),
    _cls("bird chirp", "a {adj}bird chirps {tempo}", _bird, ("sparsely", "steadily", "rapidly")),
    _cls("siren", "a {adj}siren wailing {tempo}", _siren),
    _cls("car horn", "a {adj}car horn honks {times}", _car_horn, counted=True),
    _cls("engine idling", "an {adj}engine idling with a {tempo} throb", _engine, ("slow", "steady", "fast")),
    _cls("rain", "{adj}rain falling {tempo}", _rain, ("lightly", "steadily", "heavily"), pitched=False),
    _cls("wind", "{adj}wind blowing {tempo}", _wind, ("steadily", "in waves", "in gusts"), pitched=False),
    _cls("door knock", "{adj}door knocks, {times}, {tempo}", _door_knock, ("slowly", "evenly", "quickly"), counted=True),
    _cls("bell", "a {adj}bell struck {times}", _bell, counted=True),
    _cls("clock tick", "the {adj}ticks of a clock, {tempo}", _clock, ("slow", "steady", "fast"), pitched=False),
    _cls("phone ring", "a {adj}phone rings {times}", _phone, counted=True),
    _cls("footsteps", "{adj}footsteps walking {tempo}", _footsteps, ("slowly", "steadily", "briskly"), pitched=False),
    _cls("hammer", "a {adj}hammer hits metal {times}", _hammer, counted=True),
    _cls("water drip", "{adj}water drips falling {tempo}", _drip, ("slowly", "steadily", "quickly")),
    _cls("fire crackle", "a {adj}fire crackles {tempo}", _fire, ("softly", "steadily", "fiercely"), pitched=False),
    _cls("frog croak", "a {adj}frog croaks {times}", _frog, counted=True),
    _cls("whistle", "a {adj}whistle blowing {tempo}", _whistle),
    _cls("drum", "a {adj}drum beating {tempo}", _drum, ("slowly", "steadily", "fast")),
    _cls("guitar", "a {adj}guitar strummed {times}", _guitar, counted=True),
    _cls("vacuum cleaner", "a {adj}vacuum cleaner running", _vacuum),
    _cls("helicopter", "a {adj}helicopter hovering with {tempo} blades", _helicopter, ("slow", "beating", "fast"), pitched=False),
    _cls("keyboard typing", "{adj}keyboard typing, {tempo}", _typing, ("slowly", "steadily", "rapidly"), pitched=False),
    _cls("applause", "{adj}applause, {tempo}", _applause, ("sparse", "steady", "thunderous"), pitched=False),
)}
