"""Text-to-audio backends on the tiny zoo checkpoints, loaded through the real diffusers loaders."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from synthio_ray.config import T2AConfig
from synthio_ray.models.t2a import load_t2a

CAPS = ["a dog barks twice", "rain on a tin roof", "a siren passes by"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run fastest single-threaded


@pytest.fixture(scope="module")
def sao(zoo):
    zoo("t2a")
    return load_t2a(T2AConfig(path="zoo:t2a", steps=6))


@pytest.fixture(scope="module")
def sa3(zoo):
    zoo("t2a3")
    return load_t2a(T2AConfig(backend="stable_audio3", path="zoo:t2a3", steps=4, cfg_scale=1.0))


def test_sao_shapes_durations_and_seeds(sao):
    assert (sao.sample_rate, sao.channels) == (16000, 2) and abs(sao.max_seconds - 4.096) < 1e-9
    out = sao.generate(CAPS, [1.0, 2.0, 1.5], [1, 2, 3])
    assert [x.shape for x in out] == [(2, 16000), (2, 32000), (2, 24000)]
    assert all(np.isfinite(x).all() and np.abs(x).max() > 1e-3 for x in out)
    alone = sao.generate([CAPS[1]], [2.0], [2])[0]
    assert np.allclose(alone, out[1], atol=1e-5)          # a row does not depend on its batch mates
    again = sao.generate(CAPS, [1.0, 2.0, 1.5], [1, 2, 3])
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(out, again))
    other = sao.generate([CAPS[1]], [2.0], [99])[0]
    assert np.abs(other - out[1]).max() > 1e-3             # the seed matters
    caption = sao.generate(["thunder in the distance"], [2.0], [2])[0]
    assert np.abs(caption - out[1]).max() > 1e-4           # the caption matters


def test_sao_conditioning_matches_pipeline_layout(sao):
    enc, glob = sao.conditioning(CAPS, [1.0, 2.0, 3.0], cfg_scale=7.0)
    tokens = sao.pipe.tokenizer.model_max_length
    assert enc.shape[0] == 6 and enc.shape[1] == tokens + 2 and glob.shape[:2] == (6, 1)
    assert torch.count_nonzero(enc[:3]) == 0                # unconditional half is all zeros
    enc1, _ = sao.conditioning(CAPS, [1.0, 2.0, 3.0], cfg_scale=1.0)
    assert torch.allclose(enc1, enc[3:])
    _, g2 = sao.conditioning(CAPS[:1] * 2, [1.0, 3.0], cfg_scale=1.0)
    assert not torch.allclose(g2[0], g2[1])                 # per-row duration conditioning


def test_sao_cropped_latents_and_limits(sao):
    sao.crop_latents = True
    try:
        out = sao.generate(CAPS, [1.0, 2.0, 1.0], [1, 2, 3])
        assert [x.shape[1] for x in out] == [16000, 32000, 16000]
        assert np.allclose(sao.generate([CAPS[2]], [1.0], [3])[0], out[2], atol=1e-5)
    finally:
        sao.crop_latents = False
    with pytest.raises(ValueError, match="durations must be in"):
        sao.generate(["x"], [5.0], [0])
    with pytest.raises(ValueError, match="same length"):
        sao.generate(["x", "y"], [1.0], [0])


def test_sa3_batched_per_row_seeds(sa3):
    out = sa3.generate(CAPS, [1.0, 1.0, 0.5], [1, 2, 3])
    assert [x.shape for x in out] == [(2, 16000), (2, 16000), (2, 8000)]
    assert all(np.isfinite(x).all() and np.abs(x).max() > 1e-3 for x in out)
    alone = sa3.generate([CAPS[1]], [1.0], [2])[0]
    assert np.allclose(alone, out[1], atol=1e-5)
    assert np.abs(sa3.generate([CAPS[1]], [1.0], [7])[0] - out[1]).max() > 1e-3


def test_stable_audio_tools_backend_needs_its_package(tmp_path):
    try:
        import stable_audio_tools  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="synthio-ray\\[stable-audio-tools\\]"):
            load_t2a(T2AConfig(backend="stable_audio_tools", path=str(tmp_path)))
        return
    with pytest.raises(FileNotFoundError, match="model_config.json"):
        load_t2a(T2AConfig(backend="stable_audio_tools", path=str(tmp_path)))
