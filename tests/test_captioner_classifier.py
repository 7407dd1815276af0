"""Qwen2-Audio captioner and AST classifier on the tiny zoo models, through the real loaders."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from synthio_ray.config import CaptionerConfig
from synthio_ray.models.captioner import load_captioner
from synthio_ray.models.captioner_qwen2audio import Qwen2AudioCaptioner
from synthio_ray.models.classifier_ast import ASTFeatures, load_ast_classifier, predict

from conftest import tone

torch.set_num_threads(1)

LABELS = ["dog", "rain", "siren", "engine", "birds"]


@pytest.fixture(scope="module")
def captioner():
    model = load_captioner(CaptionerConfig(backend="transformers", path="zoo:captioner", device="cpu",
                                           max_tokens=8))
    assert isinstance(model, Qwen2AudioCaptioner)
    return model


@pytest.mark.parametrize("backend", ["manifest", "none"])
def test_captioner_backends_without_a_model(backend):
    assert load_captioner(CaptionerConfig(backend=backend)) is None


def test_prompt_uses_the_chat_template_with_one_audio_placeholder(captioner):
    text = captioner.text
    assert text.count("<|audio_bos|><|AUDIO|><|audio_eos|>") == 1
    assert "Describe this sound recording in one sentence." in text
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")


def test_captioner_one_string_per_clip(captioner):
    waves = [tone(1.0, 16000, 440), np.stack([tone(2.0, 48000, 200)] * 2), np.zeros(0, np.float32),
             tone(0.2, 16000, 900, seed=3)]
    caps = captioner.caption(waves[:1], 16000) + captioner.caption(waves[1:2], 48000) + \
        captioner.caption(waves[2:], 16000)
    assert len(caps) == 4
    assert caps[2] is None  # empty clip
    for c in (caps[0], caps[1], caps[3]):
        assert c is None or (isinstance(c, str) and c == c.strip() and c)
    assert any(isinstance(c, str) for c in caps)
    # Greedy decoding: the same clips give the same captions, alone or batched.
    batched = captioner.caption([waves[0], waves[3]], 16000)
    assert batched == [caps[0], caps[3]]
    assert captioner.caption([waves[0]], 16000) == [caps[0]]


def test_ast_fresh_head_sized_to_labels(zoo):
    from transformers import ASTForAudioClassification

    path = str(zoo("classifier"))
    model, fe = load_ast_classifier(path, LABELS, device="cpu")
    assert model.classifier.dense.out_features == 5
    assert model.config.num_labels == 5
    assert model.config.id2label == dict(enumerate(LABELS))
    assert model.config.label2id == {label: i for i, label in enumerate(LABELS)}
    assert model.config.problem_type == "single_label_classification"
    # The encoder weights are the checkpoint's; only the head is new.
    original = ASTForAudioClassification.from_pretrained(path).state_dict()
    mine = model.state_dict()
    for key, value in original.items():
        if not key.startswith("classifier.dense"):
            assert torch.equal(mine[key], value), key
    # Fresh even when the label count matches the checkpoint's head (the zoo head has 2 labels).
    two, _ = load_ast_classifier(path, ["a", "b"], device="cpu")
    assert not torch.equal(two.classifier.dense.weight, original["classifier.dense.weight"])
    assert torch.count_nonzero(two.classifier.dense.bias) == 0
    # Same seed, same head.
    again, _ = load_ast_classifier(path, LABELS, device="cpu")
    assert torch.equal(again.classifier.dense.weight, model.classifier.dense.weight)


def test_ast_multilabel_problem_type(zoo):
    model, _ = load_ast_classifier(str(zoo("classifier")), LABELS, multilabel=True, device="cpu")
    assert model.config.problem_type == "multi_label_classification"


def test_ast_features_and_forward(zoo):
    model, fe = load_ast_classifier(str(zoo("classifier")), LABELS, device="cpu")
    assert fe.sampling_rate == 16000 and fe.num_mel_bins == 128
    assert fe.mean == pytest.approx(-4.2677393) and fe.std == pytest.approx(4.5689974) and fe.do_normalize
    feats = ASTFeatures(fe)
    waves = [tone(1.0, 16000, 440), tone(3.0, 44100, 300, channels=2), np.stack([tone(0.5, 16000)] * 2)]
    x = feats(waves[:1], 16000)
    assert x.shape == (1, fe.max_length, 128) and x.dtype == torch.float32
    both = torch.cat([feats(waves[:1], 16000), feats(waves[1:2], 44100), feats(waves[2:], 16000)])
    assert both.shape == (3, 256, 128) and torch.isfinite(both).all()
    # Resampled input matches the same sound generated at 16 kHz closely (bar the seeded noise floor).
    at16, at48 = feats([tone(1.0, 16000, 440)], 16000), feats([tone(1.0, 48000, 440)], 48000)
    assert torch.nn.functional.cosine_similarity(at16.flatten(), at48.flatten(), dim=0) > 0.95
    with torch.no_grad():
        logits = model(input_values=both).logits
    assert logits.shape == (3, 5)


def test_predict_probabilities(zoo):
    waves = [tone(1.0, 16000, 200 * (i + 1), seed=i) for i in range(3)]
    single, fe = load_ast_classifier(str(zoo("classifier")), LABELS, device="cpu")
    p = predict(single, fe, waves, 16000, batch_size=2)
    assert p.shape == (3, 5) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(predict(single, ASTFeatures(fe), waves, 16000, batch_size=3), p, atol=1e-5)
    multi, fe = load_ast_classifier(str(zoo("classifier")), LABELS, multilabel=True, device="cpu")
    q = predict(multi, fe, waves, 16000)
    assert q.shape == (3, 5) and np.all((q > 0) & (q < 1))
    multi.train()
    predict(multi, fe, waves[:1], 16000)
    assert multi.training  # predict restores the mode it found
