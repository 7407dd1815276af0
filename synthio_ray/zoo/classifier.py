"""The tiny classifier: transformers ``ASTForAudioClassification`` and its feature extractor."""
from __future__ import annotations

from pathlib import Path

from synthio_ray.zoo.common import CLASSIFIER_LABELS, _seed


def build_classifier(out: str | Path) -> Path:
    """Write a tiny ``ASTForAudioClassification`` + ``ASTFeatureExtractor`` (16 kHz, 128 mels, 256 frames)."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    out = Path(out)
    max_length = 256
    feature_extractor = ASTFeatureExtractor(
        feature_size=1, sampling_rate=16000, num_mel_bins=128, max_length=max_length, do_normalize=True
    )
    config = ASTConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        patch_size=16,
        frequency_stride=10,
        time_stride=10,
        max_length=max_length,
        num_mel_bins=128,
        id2label=dict(enumerate(CLASSIFIER_LABELS)),
        label2id={label: i for i, label in enumerate(CLASSIFIER_LABELS)},
    )
    _seed(41)
    model = ASTForAudioClassification(config).eval()
    model.save_pretrained(out)
    feature_extractor.save_pretrained(out)
    return out
