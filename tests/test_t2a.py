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


# ------------------------------------------------------------------- per-backend sampling defaults

def test_null_steps_and_cfg_are_each_backends_own_defaults(zoo, sa3):
    """Switching only the backend must not carry Stable Audio Open's 100 steps and CFG 7 over to Stable
    Audio 3: null means the backend's own, resolved and the same from the config files alone."""
    from synthio_ray.models.t2a import t2a_settings

    sao_cfg, sa3_cfg = T2AConfig(path="zoo:t2a"), T2AConfig(backend="stable_audio3", path="zoo:t2a3")
    assert (sao_cfg.steps, sao_cfg.cfg_scale) == (None, None)
    sao_model = load_t2a(sao_cfg)
    assert (sao_model.steps, sao_model.cfg_scale) == (100, 7.0)                     # the paper's
    sa3_model = load_t2a(sa3_cfg)
    assert sa3_model.pipe.scheduler.config.stochastic_sampling                     # the distilled sampler
    assert (sa3_model.steps, sa3_model.cfg_scale) == (8, 1.0)                       # its pipeline's, CFG off
    assert t2a_settings(sao_cfg) == {"steps": 100, "cfg_scale": 7.0}
    assert t2a_settings(sa3_cfg) == {"steps": 8, "cfg_scale": 1.0}
    explicit = T2AConfig(backend="stable_audio3", path="zoo:t2a3", steps=4, cfg_scale=1.0)
    assert (sa3.steps, sa3.cfg_scale) == (4, 1.0) and t2a_settings(explicit) == {"steps": 4, "cfg_scale": 1.0}
    assert t2a_settings(T2AConfig(path="zoo:t2a", steps=6, cfg_scale=3.0)) == {"steps": 6, "cfg_scale": 3.0}

    # what the installed diffusers pipeline does when given neither: the same audio, the same step count
    ours = sa3_model.generate([CAPS[0]], [1.0], [5])[0]
    steps_ours = sa3_model.pipe.num_timesteps
    with torch.no_grad():
        theirs = sa3_model.pipe([CAPS[0]], duration=1.0, generator=[torch.Generator("cpu").manual_seed(5)],
                                output_type="pt").audios[0].float().numpy()
    assert steps_ours == sa3_model.pipe.num_timesteps == 8
    np.testing.assert_allclose(ours, theirs[:, :ours.shape[1]], atol=1e-5)


def test_synthesizer_records_the_sampling_settings_used(sa3, tmp_path):
    import pandas as pd

    from synthio_ray.config import load_config
    from synthio_ray.pipeline.stages import Synthesizer

    cfg = load_config(None, ["models.t2a.backend=stable_audio3", "models.t2a.path=zoo:t2a3"])
    rows = pd.DataFrame({"id": ["lab-x1"], "caption": [CAPS[1]], "seconds": [0.5], "seed": [3]})
    out = Synthesizer(cfg, tmp_path, model=sa3)(rows)
    assert out["status"][0] == "generated"
    assert (out["t2a_steps"][0], out["t2a_cfg_scale"][0]) == (4, 1.0)
