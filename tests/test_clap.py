"""CLAP backends on the tiny zoo model: embeddings, scores, and audio-projection fine-tuning."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch

from synthio_ray.config import ClapConfig
from synthio_ray.models.clap import load_clap
from synthio_ray.models.clap_finetune import finetune_clap_projection
from synthio_ray.models.base import AudioTextModel
from synthio_ray.models.clap_hf import HFClap

from conftest import tone

torch.set_num_threads(1)  # tiny models: thread start-up costs more than it saves on 2 busy cores


@pytest.fixture(scope="module")
def clap():
    model = load_clap(ClapConfig(path="zoo:clap", device="cpu", batch_size=4))
    assert isinstance(model, HFClap)
    return model


def noise(seconds: float = 1.0, sr: int = 16000, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


@pytest.fixture(scope="module")
def two_classes():
    """10 low hums and 10 noise bursts at 16 kHz, labelled."""
    sr = 16000
    waves = [tone(1.0, sr, 120 + 15 * i, seed=i) for i in range(10)] + [noise(1.0, sr, seed=100 + i) for i in range(10)]
    return waves, sr, ["hum"] * 10 + ["static"] * 10


def test_embeddings_shape_norm_and_reproducible(clap):
    waves = [tone(0.5, 16000), tone(2.0, 48000, 300, seed=1), tone(12.0, 22050, 500, seed=2)]  # last > 10 s window
    a1 = clap.embed_audio(waves, 16000)
    a2 = clap.embed_audio(waves, 16000)
    assert a1.shape == (3, clap.embed_dim) and a1.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a1, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a1, a2)
    t = clap.embed_text(["Sound of a dog", "Sound of a car horn honking twice"])
    assert t.shape == (2, clap.embed_dim) and t.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(t, clap.embed_text(["Sound of a dog", "Sound of a car horn honking twice"]))


def test_long_clip_crop_is_deterministic_and_leaves_global_rng_alone(clap):
    long = tone(13.0, 48000, 250, seed=3)
    np.random.seed(123)
    first = clap.embed_audio([long], 48000)
    after = np.random.rand()
    np.random.seed(123)
    assert np.random.rand() == after  # the crop did not draw from numpy's global RNG
    np.testing.assert_array_equal(first, clap.embed_audio([long], 48000))


def test_matches_transformers_get_audio_features(clap):
    wave = tone(1.0, clap.sample_rate, 440)
    inputs = clap.feature_extractor([wave], sampling_rate=clap.sample_rate, truncation="rand_trunc",
                                    return_tensors="pt")
    with torch.no_grad():
        ref = clap.model.get_audio_features(**inputs).pooler_output.numpy()
    np.testing.assert_allclose(clap.embed_audio([wave], clap.sample_rate), ref, atol=1e-5)
    tok = clap.tokenizer(["Sound of a bell"], return_tensors="pt")
    with torch.no_grad():
        ref_t = clap.model.get_text_features(**tok).pooler_output.numpy()
    np.testing.assert_allclose(clap.embed_text(["Sound of a bell"]), ref_t, atol=1e-5)


def test_resampling_same_sound_at_two_rates(clap):
    e16 = clap.embed_audio([tone(1.0, 16000, 330)], 16000)[0]
    e48 = clap.embed_audio([tone(1.0, 48000, 330)], 48000)[0]
    other = clap.embed_audio([noise(1.0, 48000)], 48000)[0]
    same = float(e16 @ e48)
    assert same > 0.999
    assert same > float(e48 @ other)  # closer to itself at another rate than to a different sound


def test_stereo_is_downmixed(clap):
    mono = tone(1.0, 48000, 220)
    channels_first = np.stack([mono, mono])  # (channels, frames), as models produce
    frames_first = tone(1.0, 48000, 220, channels=2)  # (frames, channels), as files decode
    e = clap.embed_audio([mono, channels_first, frames_first], 48000)
    np.testing.assert_allclose(e[1], e[0], atol=1e-5)
    np.testing.assert_allclose(e[2], e[0], atol=1e-5)


def test_score_forms(clap):
    waves = [tone(1.0, 16000, 200), noise(1.0, 16000)]
    texts = ["Sound of a hum", "Sound of a static"]
    a, t = clap.embed_audio(waves, 16000), clap.embed_text(texts)
    cos = (a * t).sum(axis=1)
    scale = float(torch.exp(clap.model.logit_scale_a.detach()))
    assert clap.logit_scale == pytest.approx(scale)
    assert clap.logit_scale == pytest.approx(1 / 0.07, rel=1e-5)  # ClapConfig's logit_scale_init_value
    np.testing.assert_allclose(clap.score(waves, 16000, texts, form="cosine"), cos, atol=1e-6)
    sig = clap.score(waves, 16000, texts, form="sigmoid")
    assert np.all((sig > 0) & (sig < 1))
    np.testing.assert_allclose(sig, 1 / (1 + np.exp(-scale * cos)), atol=1e-6)
    with pytest.raises(ValueError):
        clap.score(waves, 16000, texts, form="softmax")


def test_batch_size_does_not_change_results(clap):
    waves = [tone(0.3 + 0.4 * i, 16000, 150 * (i + 1), seed=i) for i in range(5)]
    texts = [f"Sound of a thing number {i}" + " really" * i for i in range(5)]  # different lengths -> padding
    old = clap.batch_size
    try:
        clap.batch_size = 1
        a1, t1 = clap.embed_audio(waves, 16000), clap.embed_text(texts)
        clap.batch_size = 5
        a5, t5 = clap.embed_audio(waves, 16000), clap.embed_text(texts)
    finally:
        clap.batch_size = old
    np.testing.assert_allclose(a1, a5, atol=1e-5)
    np.testing.assert_allclose(t1, t5, atol=1e-5)


def test_fused_checkpoint_is_reproducible_and_batch_independent(zoo, tmp_path):
    """A fused model (4-channel fusion input, random chunks) still gives one embedding per wave."""
    from transformers import ClapConfig as HFClapConfig, ClapModel, ClapProcessor

    cfg = HFClapConfig.from_pretrained(zoo("clap"))
    cfg.audio_config.enable_fusion = True
    torch.manual_seed(0)
    ClapModel(cfg).save_pretrained(tmp_path)
    ClapProcessor.from_pretrained(zoo("clap")).save_pretrained(tmp_path)
    fused = HFClap(str(tmp_path), device="cpu", batch_size=2)
    assert fused.fused and fused.truncation == "fusion"
    waves = [tone(1.0, 48000), tone(12.0, 48000, 300, seed=1), tone(15.0, 48000, 200, seed=2)]
    a = fused.embed_audio(waves, 48000)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, fused.embed_audio(waves, 48000))
    np.testing.assert_allclose(fused.embed_audio(waves[::-1], 48000)[::-1], a, atol=1e-5)


def _state(model: HFClap) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.model.state_dict().items()}


def test_finetune_projection_learns_two_classes(zoo, two_classes, tmp_path):
    model = HFClap(str(zoo("clap")), device="cpu")
    waves, sr, labels = two_classes
    before = _state(model)
    metrics = finetune_clap_projection(model, waves, sr, labels, epochs=100, lr=1e-3, seed=0)
    after = _state(model)

    assert metrics["classes"] == ["hum", "static"] and not metrics["multilabel"]
    assert metrics["accuracy_after"] >= metrics["accuracy_before"]
    assert metrics["accuracy_after"] == 1.0
    assert len(metrics["loss"]) == 100 and metrics["loss"][-1] < metrics["loss"][0]
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("audio_projection.") for k in changed)
    assert set(metrics["trained_parameters"]) == {k for k in before if k.startswith("audio_projection.")}

    # The live model now classifies the clips the way the metrics say.
    text = model.embed_text(["Sound of a hum", "Sound of a static"])
    pred = (model.embed_audio(waves, sr) @ text.T).argmax(axis=1)
    assert [["hum", "static"][i] for i in pred] == labels

    # Saved with save_pretrained, it loads back through HFClap with the same embeddings.
    folder = model.save(tmp_path / "clap-ft")
    again = HFClap(str(folder), device="cpu")
    np.testing.assert_allclose(again.embed_audio(waves[:3], sr), model.embed_audio(waves[:3], sr), atol=1e-6)
    np.testing.assert_allclose(again.embed_text(["Sound of a hum"]), text[:1], atol=1e-6)


def test_finetune_last_layer_only_and_reproducible(zoo, two_classes):
    waves, sr, labels = two_classes
    runs = []
    for _ in range(2):
        model = HFClap(str(zoo("clap")), device="cpu")
        before = _state(model)
        m = finetune_clap_projection(model, waves[::2], sr, labels[::2], epochs=20, layers="last", seed=1)
        after = _state(model)
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        assert changed == {"audio_projection.linear2.weight", "audio_projection.linear2.bias"}
        runs.append((m["loss"], after["audio_projection.linear2.weight"]))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])


def test_finetune_multilabel_and_validation(zoo, two_classes):
    model = HFClap(str(zoo("clap")), device="cpu")
    waves, sr, labels = two_classes
    mixes = [0.5 * (waves[i] + waves[10 + i]) for i in range(4)]
    ml_waves = waves[:6] + waves[10:16] + mixes
    ml_labels = [["hum"]] * 6 + [["static"]] * 6 + [["hum", "static"]] * 4
    val_waves, val_labels = waves[6:10] + waves[16:], labels[6:10] + labels[16:]

    def val_top1():  # zero-shot top-1 on the validation clips through the model's public embeddings
        text = model.embed_text(["Sound of a hum", "Sound of a static"])
        best = (model.embed_audio(val_waves, sr) @ text.T).argmax(1)
        return float(np.mean(np.array(["hum", "static"])[best] == np.array(val_labels)))

    before = val_top1()
    m = finetune_clap_projection(model, ml_waves, sr, ml_labels, epochs=60, lr=1e-3,
                                 val_waves=val_waves, val_labels=val_labels)
    assert m["multilabel"] and m["n"] == 16
    assert m["loss"][-1] < m["loss"][0]
    assert m["val_accuracy_before"] == pytest.approx(before) and m["val_accuracy_after"] == pytest.approx(val_top1())
    assert m["accuracy_after"] >= m["accuracy_before"]


def test_finetune_rejects_bad_input(clap):
    with pytest.raises(ValueError, match="waves but"):
        finetune_clap_projection(clap, [tone()], 16000, ["a", "b"])
    with pytest.raises(ValueError, match="no text"):
        finetune_clap_projection(clap, [tone()], 16000, ["a"], label_texts={"b": "Sound of a b"})
    with pytest.raises(ValueError, match="layers"):
        finetune_clap_projection(clap, [tone()], 16000, ["a"], layers="all")


def test_laion_backend_architecture_guess():
    from synthio_ray.models.clap_laion import guess_architecture

    assert guess_architecture("/x/630k-audioset-best.pt") == ("HTSAT-tiny", False)
    assert guess_architecture("/x/630k-audioset-fusion-best.pt") == ("HTSAT-tiny", True)
    assert guess_architecture("music_audioset_epoch_15_esc_90.14.pt") == ("HTSAT-base", False)


@pytest.mark.skipif(importlib.util.find_spec("laion_clap") is not None, reason="laion_clap is installed")
def test_laion_backend_missing_package_says_how_to_install(tmp_path):
    ckpt = tmp_path / "630k-audioset-best.pt"
    ckpt.write_bytes(b"")
    with pytest.raises(ImportError, match=r"pip install synthio-ray\[laion-clap\]"):
        load_clap(ClapConfig(backend="laion_clap", path=str(ckpt), device="cpu"))


@pytest.mark.skipif(not os.environ.get("SYNTHIO_LAION_CLAP_CKPT"),
                    reason="set SYNTHIO_LAION_CLAP_CKPT to a laion_clap .pt checkpoint to run")
def test_laion_backend_with_a_real_checkpoint():
    pytest.importorskip("laion_clap", reason="optional extra synthio-ray[laion-clap] not installed")
    model = load_clap(ClapConfig(backend="laion_clap", path=os.environ["SYNTHIO_LAION_CLAP_CKPT"]))
    waves = [tone(1.0, 16000, 440), tone(12.0, 48000, 220, channels=2)]
    a = model.embed_audio(waves, 16000)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, model.embed_audio(waves, 16000))
    sig = model.score(waves, 16000, ["Sound of a beep", "Sound of a hum"], form="sigmoid")
    assert np.all((sig > 0) & (sig < 1)) and model.sample_rate == 48000


# ------------------------------------------------------------------------------- one CLAP input path

class RecordingClap(AudioTextModel):
    """The real zoo CLAP, keeping every batch of audio embeddings it returned (to compare callers)."""

    def __init__(self, clap: HFClap):
        self.clap, self.model_id, self.sample_rate, self.calls = clap, clap.model_id, clap.sample_rate, []

    def embed_audio(self, waves, sample_rate):
        self.calls.append(self.clap.embed_audio(waves, sample_rate))
        return self.calls[-1]

    def embed_text(self, texts):
        return self.clap.embed_text(texts)

    @property
    def logit_scale(self):
        return self.clap.logit_scale


def test_filter_zero_shot_and_retrieval_give_a_clip_the_same_embedding(clap, tmp_path):
    """A short stereo 44.1 kHz clip (as the T2A writes them) and a long mono one: the CLAP filter, the
    zero-shot row and retrieval each embed them through the one input path, so identically; and that is
    not what a clip zero-padded to 10 s gives."""
    import pandas as pd

    from synthio_ray.augment.retrieval import retrieve
    from synthio_ray.config import load_config
    from synthio_ray.data.audio import write_audio
    from synthio_ray.evaluate.zeroshot import zero_shot_clap
    from synthio_ray.pipeline.stages import Scorer

    short = write_audio(tmp_path / "short.flac", tone(3.0, 44100, 330, channels=2), 44100)
    long = write_audio(tmp_path / "long.wav", noise(12.0, 16000, seed=5), 16000)
    frame = pd.DataFrame({"id": ["s", "l"], "path": [str(short), str(long)], "labels": [["hum"], ["static"]]})
    rec = RecordingClap(clap)

    rows = pd.DataFrame({"path": ["short.flac", "long.wav"], "status": ["generated"] * 2, "error": [None] * 2,
                         "labels": [["hum"], ["static"]]})
    Scorer(load_config(None, ["augment.threshold=0.0"]), tmp_path, model=rec)(rows)
    filtered = rec.calls[-1]
    zero_shot_clap(rec, frame, ["hum", "static"], "Sound of a {label}")
    zero_shot = rec.calls[-1]
    retrieve(rec, frame, frame[["id", "path"]], n=1)
    gold, pool = rec.calls[-2:]
    assert filtered.shape == (2, clap.embed_dim)
    for other in (zero_shot, gold, pool):
        np.testing.assert_allclose(other, filtered, atol=1e-6)

    from synthio_ray.data.audio import fit_length, load_audio

    padded = fit_length(load_audio(short, clap.sample_rate)[0], 10 * clap.sample_rate)
    assert not np.allclose(clap.embed_audio([padded], clap.sample_rate)[0], filtered[0], atol=1e-3)


def test_short_clips_are_filled_as_the_checkpoint_processor_says(clap, zoo, tmp_path):
    """zoo:clap's processor says repeatpad (as LAION's): a 3 s clip is seen as 3 copies then zeros. A
    checkpoint whose processor says pad gets zeros: the setting is read from the checkpoint."""
    import shutil

    x = tone(3.0, 48000, 330)
    zeros = np.pad(x, (0, 10 * 48000 - len(x)))
    assert (clap.truncation, clap.padding) == ("rand_trunc", "repeatpad")
    e = clap.embed_audio([x], 48000)
    np.testing.assert_allclose(e, clap.embed_audio([np.tile(x, 3)], 48000), atol=1e-5)
    assert not np.allclose(e, clap.embed_audio([zeros], 48000), atol=1e-3)

    from transformers import ClapProcessor

    folder = shutil.copytree(zoo("clap"), tmp_path / "clap-pad")
    processor = ClapProcessor.from_pretrained(folder)
    processor.feature_extractor.padding = "pad"
    processor.save_pretrained(folder)
    padded = HFClap(str(folder), device="cpu")
    assert padded.padding == "pad"
    np.testing.assert_allclose(padded.embed_audio([x], 48000), padded.embed_audio([zeros], 48000), atol=1e-5)


def test_processor_truncation_is_fitted_to_the_model():
    from types import SimpleNamespace

    from synthio_ray.models.clap_hf import processor_windowing

    fe = SimpleNamespace(truncation="fusion", padding="repeatpad")   # the extractor's class defaults
    assert processor_windowing(fe, fused=False) == ("rand_trunc", "repeatpad")
    assert processor_windowing(fe, fused=True) == ("fusion", "repeatpad")
    assert processor_windowing(SimpleNamespace(truncation="rand_trunc", padding="repeat"), False) == \
        ("rand_trunc", "repeat")
