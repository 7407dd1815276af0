"""The audio classifier: Audio Spectrogram Transformer (``ASTForAudioClassification``).

``load_ast_classifier`` loads an AST checkpoint (``MIT/ast-finetuned-audioset-10-10-0.4593``, a local
folder, ``zoo:classifier``) with a fresh classification head for the task's labels: the AudioSet head is
dropped (``ignore_mismatched_sizes=True``) and the head's linear layer is re-initialised from ``seed``,
also when the label count happens to match the checkpoint's.

Features follow the authors' AST recipe, which is what ``ASTFeatureExtractor`` does with its defaults:
16 kHz mono, 128-bin Kaldi fbank (25 ms window, 10 ms shift), padded / cut to ``max_length`` frames
(1024 for the AudioSet checkpoint, 256 for the zoo model), normalised as (x - (-4.2677393)) /
(2 * 4.5689974). Without torchaudio, transformers computes the fbank with its numpy Kaldi port.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from synthio_ray.data.audio import resample
from synthio_ray.models.base import pick_device
from synthio_ray.models.clap_hf import as_mono
from synthio_ray.models.paths import quiet_hub_progress

__all__ = ["load_ast_classifier", "ASTFeatures", "predict"]


def load_ast_classifier(path: str, labels: Sequence[str], multilabel: bool = False, device: str = "auto",
                        seed: int = 0):
    """-> ``(model, feature_extractor)``: an ``ASTForAudioClassification`` on ``device`` with a new
    ``len(labels)``-way head (``id2label`` / ``label2id`` from ``labels``, ``problem_type``
    ``multi_label_classification`` or ``single_label_classification``) and its ``ASTFeatureExtractor``.
    The model is returned in eval mode; call ``.train()`` to fine-tune."""
    from transformers import ASTFeatureExtractor, ASTForAudioClassification

    quiet_hub_progress()
    labels = [str(x) for x in labels]
    if not labels:
        raise ValueError("the classifier needs at least one label")
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate labels: {labels}")
    fe = ASTFeatureExtractor.from_pretrained(path)
    model = ASTForAudioClassification.from_pretrained(
        path,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type="multi_label_classification" if multilabel else "single_label_classification",
        ignore_mismatched_sizes=True,
    )
    dense = model.classifier.dense
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        torch.nn.init.trunc_normal_(dense.weight, std=model.config.initializer_range, generator=gen)
        torch.nn.init.zeros_(dense.bias)
    return model.to(pick_device(device)).eval(), fe


class ASTFeatures:
    """Waves -> AST input: ``__call__(waves, sample_rate)`` returns float32 ``(B, frames, mel)``
    (``frames`` = the extractor's ``max_length``) on ``device`` (default CPU). Waves may be
    ``(frames,)`` or 2-D with a channel axis, at any rate."""

    def __init__(self, feature_extractor, device: str | torch.device | None = None):
        self.fe = feature_extractor
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.frames = int(feature_extractor.max_length)
        self.mel_bins = int(feature_extractor.num_mel_bins)
        self.device = device

    def __call__(self, waves: list[np.ndarray], sample_rate: int) -> torch.Tensor:
        clips = [resample(np.nan_to_num(as_mono(w)), int(sample_rate), self.sample_rate) for w in waves]
        if not clips:
            return torch.zeros((0, self.frames, self.mel_bins))
        x = self.fe(clips, sampling_rate=self.sample_rate, return_tensors="pt")["input_values"]
        return x if self.device is None else x.to(self.device)


@torch.no_grad()
def predict(model, fe, waves: list[np.ndarray], sample_rate: int, batch_size: int = 16) -> np.ndarray:
    """Class probabilities, float32 ``(B, num_labels)``: sigmoid for a multi-label model
    (``problem_type == "multi_label_classification"``), softmax otherwise. ``fe`` is an
    ``ASTFeatureExtractor`` or an :class:`ASTFeatures`."""
    feats = fe if isinstance(fe, ASTFeatures) else ASTFeatures(fe)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    multilabel = model.config.problem_type == "multi_label_classification"
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(waves), max(1, int(batch_size))):
            x = feats(waves[i:i + batch_size], sample_rate).to(device, dtype)
            logits = model(input_values=x).logits.float()
            out.append((torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=-1)).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels), np.float32)
