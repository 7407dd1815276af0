"""Shared test setup: offline hub, small audio fixtures, no network."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from synthio_ray.data.audio import write_audio  # noqa: E402


def tone(seconds: float = 0.5, sr: int = 16000, freq: float = 440.0, channels: int = 1,
         seed: int = 0) -> np.ndarray:
    """A short test signal: a sine plus a little seeded noise (distinct bytes per seed)."""
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    x = x.astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.fixture
def make_wav():
    """make_wav(path, seed=0, **tone_kwargs) writes a valid WAV and returns its path."""
    def _make(path: Path, seed: int = 0, sr: int = 16000, **kw) -> Path:
        return write_audio(path, tone(sr=sr, seed=seed, **kw), sr)
    return _make


@pytest.fixture(scope="session")
def zoo():
    """zoo(name) -> folder of a tiny zoo model, built once into the shared cache ($SYNTHIO_ZOO or
    ~/.cache/synthio_ray/zoo/<version>) and reused across test runs."""
    from synthio_ray.zoo import build_zoo

    def _get(name: str) -> Path:
        return build_zoo(only=[name])[name]
    return _get
