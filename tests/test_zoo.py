"""The model zoo: each entry loads with its upstream loader and runs; builds are deterministic and resumable."""
from __future__ import annotations

import hashlib
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from synthio_ray import zoo  # noqa: E402

pytestmark = [  # known upstream noise from random tiny models
    pytest.mark.filterwarnings("ignore:Should have .* but got:UserWarning"),  # torchsde Brownian tree bounds
    pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*weight_norm.* is deprecated:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]

PROMPTS = ["a dog barks twice in a quiet room", "rain falls on a tin roof"]


@pytest.fixture(scope="session")
def zoo_paths(tmp_path_factory) -> dict[str, Path]:
    return zoo.build_zoo(tmp_path_factory.mktemp("zoo"))


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _noise(seconds: float, sr: int, seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


# ---------------------------------------------------------------------------------------------------- layout


def test_all_entries_built_and_small(zoo_paths):
    assert set(zoo_paths) == set(zoo.ENTRIES)
    total = 0
    for name, path in zoo_paths.items():
        assert path.name == name and zoo.is_complete(path)
        assert (path / zoo.MARKER).read_text().strip() == zoo.ZOO_VERSION
        total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    assert total < 30e6
    root = next(iter(zoo_paths.values())).parent
    assert not [p.name for p in root.iterdir() if p.name.startswith(".")], "temp folders left behind"


# ---------------------------------------------------------------------------------------------------- models


def _t2a(pipe, seed: int, **kw):
    return pipe(PROMPTS, num_inference_steps=4, generator=torch.Generator().manual_seed(seed), **kw).audios


def test_t2a_stable_audio_pipeline(zoo_paths):
    from diffusers import StableAudioPipeline

    pipe = StableAudioPipeline.from_pretrained(zoo_paths["t2a"])
    pipe.set_progress_bar_config(disable=True)
    sr = pipe.vae.config.sampling_rate
    assert sr == zoo.T2A_SAMPLE_RATE and pipe.vae.hop_length == zoo.T2A_HOP
    max_s = pipe.transformer.config.sample_size * pipe.vae.hop_length / sr
    assert 4.0 <= max_s < 4.2

    audio = _t2a(pipe, 0, audio_end_in_s=1.0)
    assert audio.shape == (2, 2, sr)  # (prompts, stereo, samples)
    assert torch.isfinite(audio).all() and audio.abs().max() > 1e-3
    assert torch.equal(audio, _t2a(pipe, 0, audio_end_in_s=1.0))
    assert not torch.equal(audio, _t2a(pipe, 1, audio_end_in_s=1.0))
    with pytest.raises(ValueError, match="longer than the model maximum"):
        _t2a(pipe, 0, audio_end_in_s=max_s + 0.5)


def test_t2a3_stable_audio3_pipeline(zoo_paths):
    from diffusers import StableAudio3Pipeline

    pipe = StableAudio3Pipeline.from_pretrained(zoo_paths["t2a3"])
    pipe.set_progress_bar_config(disable=True)
    sr = pipe.vae.config.sampling_rate
    assert sr == zoo.T2A_SAMPLE_RATE and pipe.vae.downsampling_ratio == zoo.T2A_HOP

    audio = _t2a(pipe, 0, duration=1.0)
    assert audio.shape == (2, 2, sr)
    assert torch.isfinite(audio).all() and 1e-3 < audio.abs().max() <= 1.0
    assert torch.equal(audio, _t2a(pipe, 0, duration=1.0))
    # classifier-free guidance path (base checkpoint style) and a non-integer length
    guided = pipe(PROMPTS[0], duration=0.5, num_inference_steps=2, guidance_scale=3.0).audios
    assert guided.shape == (1, 2, sr // 2) and torch.isfinite(guided).all()


def test_clap(zoo_paths):
    from transformers import ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    model = ClapModel.from_pretrained(zoo_paths["clap"]).eval()
    processor = ClapProcessor.from_pretrained(zoo_paths["clap"])
    assert isinstance(processor.tokenizer, RobertaTokenizer)
    fe = processor.feature_extractor
    assert fe.sampling_rate == 48000 and ClapFeatureExtractor.from_pretrained(zoo_paths["clap"]).sampling_rate == 48000

    text = processor(text=PROMPTS, return_tensors="pt", padding=True)
    audio = processor(audio=[_noise(1.0, 48000, 0), _noise(2.5, 48000, 1)], sampling_rate=48000, return_tensors="pt")
    assert audio["input_features"].shape == (2, 1, 1001, 64)
    with torch.no_grad():
        t = model.get_text_features(**text).pooler_output
        a = model.get_audio_features(**audio).pooler_output
        out = model(**text, input_features=audio["input_features"])
    dim = model.config.projection_dim
    assert t.shape == (2, dim) and a.shape == (2, dim)
    assert torch.isfinite(t).all() and torch.isfinite(a).all()
    assert out.logits_per_audio.shape == (2, 2)


def test_llm_chat_and_generate(zoo_paths):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(zoo_paths["llm"])
    model = AutoModelForCausalLM.from_pretrained(zoo_paths["llm"]).eval()
    messages = [
        {"role": "system", "content": "You write audio captions."},
        {"role": "user", "content": "Describe a dog barking."},
    ]
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou write audio captions.<|im_end|>\n<|im_start|>user\n")
    assert text.endswith("<|im_start|>assistant\n")
    no_system = tok.apply_chat_template(messages[1:], tokenize=False)
    assert no_system.startswith("<|im_start|>system\n") and not no_system.endswith("assistant\n")
    assert tok.eos_token == "<|im_end|>" and 500 <= len(tok) <= 1000

    tok.padding_side = "left"
    batch = tok.apply_chat_template(
        [messages, messages[1:]], add_generation_prompt=True, return_tensors="pt", return_dict=True, padding=True
    )
    out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    new = out[:, batch["input_ids"].shape[1] :]
    assert 1 <= new.shape[1] <= 8 and new.max() < model.config.vocab_size
    assert all(isinstance(s, str) for s in tok.batch_decode(new, skip_special_tokens=True))
    assert torch.equal(out, model.generate(**batch, max_new_tokens=8, do_sample=False))


def test_classifier(zoo_paths):
    from transformers import ASTFeatureExtractor, ASTForAudioClassification, AutoFeatureExtractor

    fe = AutoFeatureExtractor.from_pretrained(zoo_paths["classifier"])
    model = ASTForAudioClassification.from_pretrained(zoo_paths["classifier"]).eval()
    assert isinstance(fe, ASTFeatureExtractor) and fe.sampling_rate == 16000 and fe.num_mel_bins == 128
    inputs = fe([_noise(1.0, 16000, 0), _noise(3.0, 16000, 1)], sampling_rate=16000, return_tensors="pt")
    assert inputs["input_values"].shape == (2, fe.max_length, 128)
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (2, len(zoo.CLASSIFIER_LABELS)) and torch.isfinite(logits).all()
    assert list(model.config.id2label.values()) == list(zoo.CLASSIFIER_LABELS)


def test_captioner(zoo_paths):
    from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

    processor = AutoProcessor.from_pretrained(zoo_paths["captioner"])
    model = Qwen2AudioForConditionalGeneration.from_pretrained(zoo_paths["captioner"]).eval()
    assert processor.feature_extractor.sampling_rate == 16000
    conversation = [
        {"role": "user", "content": [{"type": "audio", "audio_url": "clip.wav"}, {"type": "text", "text": "Caption?"}]}
    ]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert "<|audio_bos|><|AUDIO|><|audio_eos|>" in text and text.endswith("<|im_start|>assistant\n")
    processor.tokenizer.padding_side = "left"
    inputs = processor(
        text=[text, text], audio=[_noise(1.0, 16000, 0), _noise(3.0, 16000, 1)], return_tensors="pt", padding=True
    )
    n_audio = (inputs["input_ids"] == model.config.audio_token_id).sum(-1)
    assert n_audio.tolist() == [25, 75]  # 100 mel frames per second -> conv stride 2 -> avg-pool 2
    out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    captions = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)


# ---------------------------------------------------------------------------------------------------- building


def test_builds_are_deterministic(zoo_paths, tmp_path):
    first = next(iter(zoo_paths.values())).parent
    second = zoo.build_zoo(tmp_path / "again")
    assert _digests(first) == _digests(second["t2a"].parent)


def test_second_build_is_a_noop(zoo_paths):
    root = next(iter(zoo_paths.values())).parent
    before = {name: (p / zoo.MARKER).stat().st_mtime_ns for name, p in zoo_paths.items()}
    again = zoo.build_zoo(root)
    assert again == zoo_paths
    assert {name: (p / zoo.MARKER).stat().st_mtime_ns for name, p in again.items()} == before


def test_incomplete_or_stale_entries_are_rebuilt(tmp_path):
    path = zoo.build_zoo(tmp_path, only=["classifier"])["classifier"]
    reference = _digests(path)

    (path / zoo.MARKER).unlink()  # e.g. an entry copied in by hand, or an older layout
    (path / "junk.bin").write_bytes(b"x")
    (path / "model.safetensors").write_bytes(b"truncated")
    assert not zoo.is_complete(path)
    zoo.build_zoo(tmp_path, only=["classifier"])
    assert zoo.is_complete(path) and _digests(path) == reference

    (path / zoo.MARKER).write_text("zoo-v0\n")  # another ZOO_VERSION
    zoo.build_zoo(tmp_path, only=["classifier"])
    assert _digests(path) == reference

    mtime = (path / zoo.MARKER).stat().st_mtime_ns
    zoo.build_zoo(tmp_path, only=["classifier"], force=True)
    assert (path / zoo.MARKER).stat().st_mtime_ns != mtime and _digests(path) == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classifier"]


def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
    def crash(out):
        (Path(out) / "config.json").write_text("{}")
        raise RuntimeError("killed mid-build")

    monkeypatch.setitem(zoo.ENTRIES, "classifier", crash)
    with pytest.raises(RuntimeError, match="killed"):
        zoo.build_zoo(tmp_path, only=["classifier"])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="unknown zoo entries"):
        zoo.build_zoo(tmp_path, only=["nope"])


def test_default_dir_and_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYNTHIO_ZOO", str(tmp_path / "env"))
    assert zoo.default_zoo_dir() == tmp_path / "env"
    monkeypatch.delenv("SYNTHIO_ZOO")
    assert zoo.default_zoo_dir() == Path.home() / ".cache" / "synthio_ray" / "zoo" / zoo.ZOO_VERSION

    assert zoo.main([str(tmp_path / "cli"), "--only", "classifier"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("classifier") and "MB" in line and "M params" in line
    assert zoo.is_complete(tmp_path / "cli" / "classifier")
