"""The tiny CLAP: transformers ``ClapModel`` (HTSAT + RoBERTa) and its ``ClapProcessor``."""
from __future__ import annotations

from pathlib import Path

from synthio_ray.zoo.common import _seed
from synthio_ray.zoo.vocab import make_roberta_tokenizer


def build_clap(out: str | Path) -> Path:
    """Write a tiny ``ClapModel`` + ``ClapProcessor`` (48 kHz, 64 mels, 10 s, projection dim 32) to ``out``."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    out = Path(out)
    tokenizer = make_roberta_tokenizer(model_max_length=128)
    feature_extractor = ClapFeatureExtractor(
        feature_size=64,
        sampling_rate=48000,
        hop_length=480,
        max_length_s=10,
        fft_window_size=1024,
        frequency_min=50,
        frequency_max=14000,
        truncation="rand_trunc",
        padding="repeatpad",
    )
    patch_hidden, depths = 16, [1, 1]
    config = ClapConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=tokenizer.model_max_length + 2,  # RoBERTa offsets positions by pad id + 1
            projection_dim=32,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        audio_config=dict(
            window_size=8,
            num_mel_bins=64,
            spec_size=256,
            patch_size=4,
            patch_stride=[4, 4],
            depths=depths,
            num_attention_heads=[1, 2],
            patch_embeds_hidden_size=patch_hidden,
            hidden_size=patch_hidden * 2 ** (len(depths) - 1),
            num_hidden_layers=len(depths),
            projection_dim=32,
            num_classes=527,
            enable_fusion=False,
        ),
        projection_dim=32,
    )
    _seed(21)
    model = ClapModel(config).eval()
    model.save_pretrained(out)
    ClapProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(out)
    return out
