"""The tiny language models: a Qwen2 chat LM (``llm``) and a Qwen2-Audio captioner (``captioner``)."""
from __future__ import annotations

from pathlib import Path

from synthio_ray.zoo.common import _seed
from synthio_ray.zoo.vocab import make_qwen2_tokenizer


def _tiny_qwen2(vocab_size: int, tokenizer) -> dict:
    return dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )


def build_llm(out: str | Path) -> Path:
    """Write a tiny ``Qwen2ForCausalLM`` + ``Qwen2Tokenizer`` with a ChatML chat template to ``out``."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = Path(out)
    tokenizer = make_qwen2_tokenizer(audio_tokens=False, eos_token="<|im_end|>", model_max_length=1024)
    _seed(31)
    model = Qwen2ForCausalLM(Qwen2Config(**_tiny_qwen2(len(tokenizer), tokenizer))).eval()
    im_end, eot = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model.generation_config = GenerationConfig(
        eos_token_id=[im_end, eot], pad_token_id=tokenizer.pad_token_id, do_sample=True, temperature=0.7, top_p=0.8
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_captioner(out: str | Path) -> Path:
    """Write a tiny ``Qwen2AudioForConditionalGeneration`` + ``Qwen2AudioProcessor`` (10 s windows) to ``out``."""
    from transformers import (
        GenerationConfig,
        Qwen2AudioConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )

    out = Path(out)
    chunk_s = 10
    tokenizer = make_qwen2_tokenizer(audio_tokens=True, model_max_length=1024)
    feature_extractor = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=chunk_s, n_fft=400
    )
    frames = chunk_s * 16000 // 160  # mel frames per window; the encoder halves them once by stride-2 conv
    config = Qwen2AudioConfig(
        audio_config=dict(
            num_mel_bins=128,
            encoder_layers=2,
            encoder_attention_heads=2,
            encoder_ffn_dim=128,
            d_model=64,
            max_source_positions=frames // 2,
        ),
        text_config=_tiny_qwen2(len(tokenizer), tokenizer),
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    _seed(51)
    model = Qwen2AudioForConditionalGeneration(config).eval()
    im_end, eot = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model.generation_config = GenerationConfig(
        eos_token_id=[im_end, eot], pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    model.save_pretrained(out)
    processor = Qwen2AudioProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    processor.save_pretrained(out)
    return out
