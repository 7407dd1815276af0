"""The section-6 analysis measures on inputs whose answer is known: Frechet distance (FAD) and the
spectral features (flatness, pitch salience)."""
from __future__ import annotations

import numpy as np
import pytest

from synthio_ray.evaluate.fad import frechet_distance
from synthio_ray.evaluate.features import spectral_features


def test_frechet_distance_known_values():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((500, 4)) @ rng.standard_normal((4, 4))
    z -= z.mean(0)
    shift = np.array([1.0, -2.0, 0.5, 3.0])
    # identical sets: 0
    assert frechet_distance(z, z) == pytest.approx(0.0, abs=1e-4)
    # the same covariance (exactly: a shifted copy), means differ by shift: |shift|^2
    assert frechet_distance(z, z + shift) == pytest.approx(float(shift @ shift), abs=1e-4)
    # same mean, covariance C vs 4C: tr(C) + tr(4C) - 2 tr(sqrt(4 C^2)) = tr(C)
    assert frechet_distance(z, 2 * z) == pytest.approx(float(np.trace(np.cov(z, rowvar=False))), abs=1e-4)
    # two samples of N(0, I) and N(shift, I): close to |shift|^2 = 14.25
    a, b = rng.standard_normal((20000, 4)), rng.standard_normal((20000, 4)) + shift
    assert frechet_distance(a, b) == pytest.approx(float(shift @ shift), abs=0.15)


def test_spectral_features_tone_vs_white_noise():
    sr = 16000
    t = np.arange(sr) / sr
    tone = (0.5 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)
    noise = (0.3 * np.random.default_rng(0).standard_normal(sr)).astype(np.float32)
    ft, fn = spectral_features(tone, sr), spectral_features(noise, sr)
    assert fn["flatness"] > 0.3 and ft["flatness"] < 1e-3      # white noise is flat, a tone is one peak
    assert ft["pitch_salience"] > 0.95 and fn["pitch_salience"] < 0.3
    assert ft["complexity"] == pytest.approx(1.0) and fn["complexity"] > 50
