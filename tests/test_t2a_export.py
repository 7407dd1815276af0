"""Aligned exports: LoRA adapters (peft format + the base they go on) against the merged pipeline, on the tiny
zoo model, through the same loaders jobs/augment.py and the grid use (``load_t2a``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from synthio_ray.config import T2AConfig, load_config

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "configs" / "tiny.yaml"
CAPS, SECS, SEEDS = ["Sound of a bell", "a dog barks twice"], [1.0, 0.6], [3, 11]

pytestmark = pytest.mark.usefixtures("one_thread")


def _trained_state(cfg, t2a_path=None, seed=0) -> dict:
    """A stand-in for a finished training: the adapters' A and B matrices set to seeded random values (B
    starts at zero, so the untrained adapters would be a no-op and every comparison vacuous)."""
    from synthio_ray.train.t2a_model import load_alignable

    model = load_alignable(cfg, "cpu", t2a_path)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    return {"trainable": model.trainable_state()}


def _generate(path: str) -> list[np.ndarray]:
    from synthio_ray.models.t2a import load_t2a

    return load_t2a(T2AConfig(path=path, steps=3, cfg_scale=3.0)).generate(CAPS, SECS, SEEDS)


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


@pytest.fixture(scope="module")
def exports(zoo, tmp_path_factory):
    from synthio_ray.train.align import export_checkpoint, export_mode

    zoo("t2a")
    cfg = load_config(DEFAULT, ["align.lora_rank=4", "align.lora_alpha=8"])
    assert export_mode(cfg) == "adapter"            # the default under LoRA
    state = _trained_state(cfg)
    root = tmp_path_factory.mktemp("exports")
    info = {"objective": "dpo", "epochs": 12}
    adapter = export_checkpoint(cfg, state, root / "adapter", info=info)
    merged = export_checkpoint(cfg, state, root / "merged", info=info, export="merged")
    return {"cfg": cfg, "state": state, "adapter": adapter, "merged": merged, "root": root}


def test_adapter_export_is_peft_adapters_plus_the_base_and_provenance(exports, zoo):
    from peft import PeftConfig

    from synthio_ray.models.t2a_adapter import ADAPTER_FORMAT

    adapter, merged = exports["adapter"], exports["merged"]
    assert sorted(p.name for p in adapter.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                         "alignment.json"]
    info = json.loads((adapter / "alignment.json").read_text())
    assert info["format"] == ADAPTER_FORMAT and info["export"] == "adapter"
    assert info["base_model"] == "zoo:t2a" and info["objective"] == "dpo" and info["epochs"] == 12
    assert info["base_transformer"]["num_layers"] == 2
    peft_cfg = PeftConfig.from_pretrained(str(adapter))
    assert peft_cfg.base_model_name_or_path == "zoo:t2a" and peft_cfg.r == 4
    assert set(peft_cfg.target_modules) == {"to_q", "to_k", "to_v", "to_out.0"}
    assert json.loads((merged / "alignment.json").read_text())["export"] == "merged"
    assert (merged / "model_index.json").is_file()
    # the point of the adapter export: a small fraction of the full pipeline (~1 % for Stable Audio Open)
    print(f"adapter {_size(adapter)} B, merged {_size(merged)} B")
    assert _size(adapter) < 0.5 * _size(merged)


def test_adapters_load_back_to_the_merged_models_audio(exports, zoo):
    from diffusers import StableAudioPipeline

    from synthio_ray.models.t2a import load_t2a

    adapter, merged = str(exports["adapter"]), str(exports["merged"])
    a_dit = load_t2a(T2AConfig(path=adapter, steps=3)).pipe.transformer.state_dict()
    m_dit = StableAudioPipeline.from_pretrained(merged).transformer.state_dict()
    assert set(a_dit) == set(m_dit) and all(torch.equal(a_dit[k], m_dit[k]) for k in m_dit)
    # on a GPU the pipeline loads in bf16: merged in fp32 first, then cast, as the merged export loads
    a16 = load_t2a(T2AConfig(path=adapter, dtype="bfloat16")).pipe.transformer.state_dict()
    m16 = StableAudioPipeline.from_pretrained(merged, dtype=torch.bfloat16).transformer.state_dict()
    assert all(a16[k].dtype == torch.bfloat16 and torch.equal(a16[k], m16[k]) for k in m16)
    via_adapter, via_merged, base = _generate(adapter), _generate(merged), _generate("zoo:t2a")
    for a, m, b, s in zip(via_adapter, via_merged, base, SECS):
        assert a.shape == m.shape == (2, int(s * 16000))
        np.testing.assert_allclose(a, m, rtol=0, atol=1e-6)
        assert np.abs(a - b).max() > 1e-3            # not vacuous: the adapters change the audio


def test_an_aligned_model_aligned_again_chains_its_adapters(exports, tmp_path):
    """--t2a <adapter folder> as the starting model of another alignment: the new adapters name the first
    folder as their base, and load to what merging both gives."""
    from synthio_ray.models.t2a_adapter import adapter_chain
    from synthio_ray.train.align import export_checkpoint
    from synthio_ray.train.preferences import model_audio_format

    cfg, first = exports["cfg"], str(exports["adapter"])
    assert model_audio_format(cfg, first) == model_audio_format(cfg, "zoo:t2a")   # read from the base's configs
    state = _trained_state(cfg, first, seed=1)
    second = export_checkpoint(cfg, state, tmp_path / "second", first)
    merged = export_checkpoint(cfg, state, tmp_path / "second-merged", first, export="merged")
    assert json.loads((second / "alignment.json").read_text())["base_model"] == first
    base, chain = adapter_chain(second)
    assert chain == [Path(first), second] and Path(base, "model_index.json").is_file()
    for a, m in zip(_generate(str(second)), _generate(str(merged))):
        np.testing.assert_allclose(a, m, rtol=0, atol=1e-6)


def test_bad_adapter_folders_and_settings_say_what_is_wrong(exports, tmp_path):
    import shutil

    from synthio_ray.config import ConfigError
    from synthio_ray.models.t2a import load_t2a
    from synthio_ray.models.t2a_adapter import AdapterError

    wrong = tmp_path / "wrong-base"
    shutil.copytree(exports["adapter"], wrong)
    info = json.loads((wrong / "alignment.json").read_text())
    info["base_transformer"]["num_layers"] = 24
    (wrong / "alignment.json").write_text(json.dumps(info))
    with pytest.raises(AdapterError, match=r"another config.*'num_layers': \(24, 2\)"):
        load_t2a(T2AConfig(path=str(wrong)))
    info["base_model"] = str(tmp_path / "gone")
    (wrong / "alignment.json").write_text(json.dumps(info))
    with pytest.raises(AdapterError, match="base model of adapter folder .* is not found"):
        load_t2a(T2AConfig(path=str(wrong)))
    with pytest.raises(ValueError, match="models.t2a.backend=stable_audio, not 'stable_audio3'"):
        load_t2a(T2AConfig(backend="stable_audio3", path=str(exports["adapter"])))
    with pytest.raises(ConfigError, match=r"align\.export: adapter needs LoRA"):
        load_config(DEFAULT, ["align.export=adapter", "align.full_finetune=true"])
