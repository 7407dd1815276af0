"""The embedded default dataset: procedurally generated, clearly different classes of sound.

``write_embedded_dataset(folder)`` writes ``folder/<class>/<id>.wav`` (16 kHz mono) and
``folder/manifest.csv`` (path, label, caption) from a fixed seed, so every machine makes the same
bytes and nothing is downloaded or committed. Each clip's caption describes how it was made
("three short 1200 Hz beeps"), standing in for an audio captioner's output.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np

from synthio_ray.data.audio import write_audio
from synthio_ray.data.labels import label_slugs

__all__ = ["EMBEDDED_CLASSES", "EMBEDDED_DOMAIN", "EMBEDDED_SAMPLE_RATE", "write_embedded_dataset"]

EMBEDDED_SAMPLE_RATE = 16000
EMBEDDED_DOMAIN = "synthetic everyday sounds"
_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}


def _env(n: int, attack: int, release: int) -> np.ndarray:
    e = np.ones(n, np.float32)
    a, r = min(attack, n // 2), min(release, n // 2)
    if a:
        e[:a] = np.linspace(0, 1, a)
    if r:
        e[-r:] = np.linspace(1, 0, r)
    return e


def _beeping(rng, t, sr):
    f = rng.uniform(700, 2000)
    k = int(rng.integers(2, 6))
    x = np.zeros_like(t)
    dur = int(sr * rng.uniform(0.08, 0.2))
    starts = np.linspace(0.1, t[-1] - 0.3, k)
    for s in starts:
        i = int(s * sr)
        seg = np.sin(2 * np.pi * f * t[:dur]) * _env(dur, 80, 200)
        x[i:i + dur] += seg[: len(x) - i]
    return x, f"{_WORDS[k]} short electronic beeps at about {int(f) // 10 * 10} hz"


def _siren(rng, t, sr):
    lo, hi = rng.uniform(400, 700), rng.uniform(900, 1600)
    rate = rng.uniform(0.5, 2.0)
    f = lo + (hi - lo) * 0.5 * (1 + np.sin(2 * np.pi * rate * t))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = np.sin(phase) + 0.3 * np.sin(2 * phase)
    speed = "slowly" if rate < 1.0 else "quickly"
    return x, f"a siren wailing {speed} between {int(lo)} and {int(hi)} hz"


def _rain(rng, t, sr):
    from scipy.signal import lfilter

    noise = rng.standard_normal(len(t))
    a = rng.uniform(0.6, 0.9)
    x = lfilter([1 - a], [1, -a], noise) * 3
    drops = rng.random(len(t)) < rng.uniform(0.0005, 0.003)
    x += np.convolve(drops.astype(float) * rng.uniform(0.3, 1.0, len(t)),
                     np.exp(-np.arange(200) / 20.0), mode="same")
    heavy = "heavy" if drops.mean() > 0.0015 else "light"
    return x, f"{heavy} rain with scattered droplets hitting a surface"


def _engine(rng, t, sr):
    f0 = rng.uniform(35, 110)
    x = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.28)) / h for h in range(1, 8))
    x *= 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(2, 8) * t)
    x += 0.05 * rng.standard_normal(len(t))
    return x, f"a low engine hum idling at about {int(f0)} hz with a steady rumble"


def _knocking(rng, t, sr):
    k = int(rng.integers(2, 6))
    f = rng.uniform(180, 420)
    x = np.zeros_like(t)
    n = int(0.15 * sr)
    tt = t[:n]
    hit = np.sin(2 * np.pi * f * tt) * np.exp(-tt * rng.uniform(25, 45)) + 0.2 * rng.standard_normal(n) * np.exp(-tt * 200)
    for s in np.sort(rng.uniform(0.05, t[-1] - 0.2, k)):
        i = int(s * sr)
        x[i:i + n] += hit[: len(x) - i]
    return x, f"{_WORDS[k]} knocks on a wooden door"


def _bird(rng, t, sr):
    k = int(rng.integers(3, 8))
    x = np.zeros_like(t)
    for s in np.sort(rng.uniform(0.05, t[-1] - 0.15, k)):
        n = int(sr * rng.uniform(0.04, 0.1))
        f = np.linspace(rng.uniform(2000, 3500), rng.uniform(4000, 6500), n)
        seg = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(n)
        i = int(s * sr)
        x[i:i + n] += seg[: len(x) - i]
    return x, f"a small bird chirping {_WORDS[k]} times with rising whistles"


def _wind(rng, t, sr):
    from scipy.signal import lfilter

    a = rng.uniform(0.97, 0.995)
    x = lfilter([1 - a], [1, -a], rng.standard_normal(len(t))) * 12
    gust = rng.uniform(0.15, 0.6)
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * gust * t + rng.uniform(0, 6.28))
    return x, f"{'gusty' if gust > 0.35 else 'steady'} wind blowing outdoors"


def _bell(rng, t, sr):
    f = rng.uniform(300, 900)
    ratios = (1.0, 2.76, 5.4, 8.93)
    decay = rng.uniform(1.5, 4.0)
    x = sum(np.sin(2 * np.pi * f * r * t) * np.exp(-t * decay * (1 + i)) / (1 + i)
            for i, r in enumerate(ratios))
    return x, f"a metal bell struck once at about {int(f)} hz, ringing out"


EMBEDDED_CLASSES: dict[str, Callable] = {
    "beeping": _beeping, "siren": _siren, "rain": _rain, "engine idling": _engine,
    "door knock": _knocking, "bird chirp": _bird, "wind": _wind, "bell": _bell,
}


def write_embedded_dataset(folder: str | Path, clips_per_class: int = 25, seconds: float = 2.0,
                           seed: int = 1234) -> Path:
    """Write the procedural dataset under ``folder``; return the manifest path. Idempotent."""
    folder = Path(folder)
    manifest = folder / "manifest.csv"
    slugs = label_slugs(list(EMBEDDED_CLASSES))
    sr = EMBEDDED_SAMPLE_RATE
    t = np.arange(int(seconds * sr)) / sr
    rows = []
    for ci, (label, make) in enumerate(EMBEDDED_CLASSES.items()):
        for j in range(clips_per_class):
            rng = np.random.default_rng([seed, ci, j])
            x, caption = make(rng, t, sr)
            x = np.asarray(x, np.float64)
            x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.3, 0.9)
            rel = f"{slugs[label]}/{slugs[label]}_{j:03d}.wav"
            write_audio(folder / rel, x.astype(np.float32), sr)
            rows.append({"path": rel, "label": label, "caption": caption})
    tmp = manifest.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "caption"])
        w.writeheader()
        w.writerows(rows)
    tmp.replace(manifest)
    return manifest
