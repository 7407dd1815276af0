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


# -- VAE decode: cropped, micro-batched, and its failures never re-run the denoising ----------------------------

class _DiTCalls:
    """Counts forward calls of the DiT (one per denoising step and batch: the cost a decode failure must not repeat)."""

    def __init__(self, t2a):
        self.n = 0
        self.handle = t2a.pipe.transformer.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.n += 1

    def close(self):
        self.handle.remove()


class _VAEBudget:
    """The GPU memory limit, which cannot happen on CPU: the real VAE decode, but ``torch.OutOfMemoryError`` for a
    call over ``max_clips`` clips or ``max_frames`` latent frames (batch x frames, as real memory grows)."""

    def __init__(self, vae, max_clips=99, max_frames=10**9):
        self.vae, self.max_clips, self.max_frames, self.calls = vae, max_clips, max_frames, []
        self.real = vae.decode

    def __call__(self, z, *a, **kw):
        self.calls.append(tuple(z.shape))
        if z.shape[0] > self.max_clips or z.shape[0] * z.shape[2] > self.max_frames:
            raise torch.OutOfMemoryError(f"CUDA out of memory (simulated budget, {tuple(z.shape)})")
        return self.real(z, *a, **kw)

    def __enter__(self):
        self.vae.decode = self
        return self

    def __exit__(self, *exc):
        del self.vae.decode     # back to the class method


def test_cropped_decode_equals_the_full_windows_kept_samples(sao):
    lat = torch.randn(3, sao.pipe.transformer.config.in_channels, sao.window, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = sao.pipe.vae.decode(lat).sample.float().numpy()
    keep = [16000, 8000, 16000 + 77]                       # 1 s, 0.5 s, a length that ends mid-frame
    calls = []
    with _VAEBudget(sao.pipe.vae) as budget:
        got, errors = sao.decode(lat, keep)
        calls = budget.calls
    assert not errors and [g.shape for g in got] == [(2, n) for n in keep]
    # only the kept frames plus the margin were decoded, never the 256-frame window
    assert sorted(c[2] for c in calls) == sorted({-(-n // sao.hop) + sao.decode_margin for n in keep})
    scale = np.abs(full).max()
    for j, n in enumerate(keep):
        assert np.abs(got[j] - full[j, :, :n]).max() <= 1e-5 * scale
    # the margin is what makes it exact: without it the clip's last samples differ
    margin, sao.decode_margin = sao.decode_margin, 0
    try:
        bare, _ = sao.decode(lat, keep)
    finally:
        sao.decode_margin = margin
    assert max(np.abs(bare[j] - full[j, :, :n]).max() for j, n in enumerate(keep)) > 1e-3 * scale


def test_decode_out_of_memory_falls_back_to_smaller_calls_without_denoising_again(sao):
    caps, secs, seeds = CAPS + ["wind in trees"], [1.0, 1.0, 1.0, 1.0], [1, 2, 3, 4]
    want = sao.generate(caps, secs, seeds)
    sao.decode_batch = 4
    dit = _DiTCalls(sao)
    try:
        with _VAEBudget(sao.pipe.vae, max_clips=1) as budget:
            got = sao.generate(caps, secs, seeds)
    finally:
        dit.close()
        batch, sao.decode_batch = sao.decode_batch, 4
    assert dit.n == 6                                       # one denoising: 6 steps, CFG in the same call
    assert batch == 1 and [c[0] for c in budget.calls] == [4, 2, 1, 1, 1, 1]
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(got, want))


def test_a_clip_whose_decode_fails_alone_is_a_failed_row_and_the_denoising_is_not_rerun(sao, tmp_path):
    import pandas as pd

    from synthio_ray.config import load_config
    from synthio_ray.pipeline.stages import CLIP_COLUMNS, Synthesizer

    cfg = load_config(None, ["augment.retries=2", "models.t2a.batch_size=8"])
    secs = [0.5, 4.0, 0.5]                                   # the 4 s clip needs the whole 256-frame window
    rows = pd.DataFrame([{c: None for c in CLIP_COLUMNS} | {"id": f"lab-x{i}", "caption": c, "seed": i,
                          "seconds": s, "label_slug": "lab", "labels": ["lab"], "status": "planned"}
                         for i, (c, s) in enumerate(zip(CAPS, secs))])
    dit = _DiTCalls(sao)
    try:
        with _VAEBudget(sao.pipe.vae, max_frames=200):
            out = Synthesizer(cfg, tmp_path, model=sao)(rows)
    finally:
        dit.close()
        sao.decode_batch = 4
    assert list(out["status"]) == ["generated", "failed", "generated"]
    assert dit.n == 6                                        # denoised once, not 3 batch tries + 3 rows alone
    err = out["error"][1]
    assert "VAE decode of this clip alone (256 latent frames) ran out of memory" in err and "not retried" in err
    assert pd.isna(out["error"][0]) and (tmp_path / out["path"][0]).is_file()


# -- stable-audio-tools checkpoints: hub ids through the hub cache, and the dtype ---------------------------------

def _hub_cache(root, repo: str, files: dict[str, bytes]):
    """A huggingface_hub cache holding ``files`` for ``repo`` at ``main`` (the layout hf_hub_download reads)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    base = root / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    for name, data in files.items():
        (snap / name).write_bytes(data)
    return snap


def test_stable_audio_tools_checkpoint_from_a_hub_id_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from synthio_ray.models.t2a_stable_audio_tools import resolve_checkpoint

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert huggingface_hub.constants.HF_HUB_OFFLINE           # tests never reach the hub
    snap = _hub_cache(tmp_path, "someone/sao-tools", {"model_config.json": b"{}", "model.ckpt": b"x"})
    assert resolve_checkpoint("someone/sao-tools") == (snap / "model_config.json", snap / "model.ckpt")
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE=1 is set.*hf download someone/missing"):
        resolve_checkpoint("someone/missing")
    with pytest.raises(FileNotFoundError, match="neither a checkpoint folder nor a hub id"):
        resolve_checkpoint(str(tmp_path / "no" / "such" / "folder"))
    (tmp_path / "local").mkdir()
    with pytest.raises(FileNotFoundError, match="model_config.json not found"):
        resolve_checkpoint(str(tmp_path / "local"))


def test_stable_audio_tools_backend_takes_the_configured_dtype(tmp_path, monkeypatch):
    """The library itself is an optional extra (not installed here): a stand-in for its two loader functions,
    so what is checked is our backend: hub id resolved, weights loaded, model moved to the configured dtype."""
    import sys
    import types

    import huggingface_hub.constants
    from safetensors.torch import save

    if "stable_audio_tools" in sys.modules or __import__("importlib").util.find_spec("stable_audio_tools"):
        pytest.skip("the real stable-audio-tools is installed")
    lin = torch.nn.Linear(4, 4)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    _hub_cache(tmp_path, "someone/sao-tools", {
        "model_config.json": b'{"sample_rate": 44100, "sample_size": 2097152}',
        "model.safetensors": save({k: v.contiguous() for k, v in lin.state_dict().items()})})
    factory, utils = types.ModuleType("stable_audio_tools.models.factory"), types.ModuleType("stable_audio_tools.models.utils")
    factory.create_model_from_config = lambda cfg: torch.nn.Linear(4, 4)
    from safetensors.torch import load_file
    utils.load_ckpt_state_dict = load_file
    for name, mod in {"stable_audio_tools": types.ModuleType("stable_audio_tools"),
                      "stable_audio_tools.models": types.ModuleType("stable_audio_tools.models"),
                      "stable_audio_tools.models.factory": factory, "stable_audio_tools.models.utils": utils}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    t2a = load_t2a(T2AConfig(backend="stable_audio_tools", path="someone/sao-tools", dtype="bfloat16", device="cpu"))
    assert t2a.model.weight.dtype == torch.bfloat16 and t2a.model_id == "someone/sao-tools"
    assert torch.equal(t2a.model.weight.float(), lin.weight.detach().bfloat16().float())   # the hub weights
    assert (t2a.sample_rate, round(t2a.max_seconds, 2)) == (44100, 47.55)
    auto = load_t2a(T2AConfig(backend="stable_audio_tools", path="someone/sao-tools", device="cpu"))
    assert auto.model.weight.dtype == torch.float32                                    # auto on CPU: fp32
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
