"""A zoo of tiny, randomly initialised models saved in their real upstream on-disk formats.

The loading code users run on real checkpoints (``StableAudioPipeline.from_pretrained``,
``ClapModel.from_pretrained``, ``AutoTokenizer.from_pretrained`` ...) can then be exercised offline, on CPU, in
seconds. Weights are random, so outputs are noise: only shapes, formats and plumbing mean anything.

Entries (sub-folders of the zoo root):

- ``t2a``: diffusers ``StableAudioPipeline`` (Stable Audio Open layout): ``StableAudioDiTModel`` +
  ``AutoencoderOobleck`` (stereo, 16 kHz, hop 256) + ``T5EncoderModel`` + ``T5Tokenizer`` (Unigram, 64 tokens) +
  ``StableAudioProjectionModel`` (0..512 s) + ``CosineDPMSolverMultistepScheduler`` (Stable Audio Open's settings).
  DiT ``sample_size`` is 256 latent frames, so the longest clip is 256 * 256 / 16000 = 4.096 s.
- ``t2a3``: diffusers ``StableAudio3Pipeline``: ``StableAudio3DiTModel`` + ``AutoencoderSAME`` (stereo, 16 kHz,
  hop 256) + ``T5GemmaEncoderModel`` + ``GemmaTokenizer`` (byte-fallback BPE) + ``StableAudio3DurationEmbedder`` +
  ``FlowMatchEulerDiscreteScheduler(stochastic_sampling=True, num_train_timesteps=1)``. The real SA3 scheduler
  config cannot be read offline; ``num_train_timesteps=1`` because the DiT expects timesteps in [0, 1] and the
  pipeline passes ``sigma * num_train_timesteps``. Length is free (``duration``), not capped by a sample size.
- ``clap``: transformers ``ClapModel`` (HTSAT + RoBERTa, projection dim 32) + ``ClapProcessor``
  (``ClapFeatureExtractor`` at 48 kHz, 64 mel bins, 10 s, ``rand_trunc`` like ``laion/clap-htsat-unfused``;
  byte-level BPE ``RobertaTokenizer``).
- ``llm``: transformers ``Qwen2ForCausalLM`` + ``Qwen2Tokenizer`` (byte-level BPE) with a ChatML chat template,
  eos ``<|im_end|>`` (Qwen2.5-Instruct style).
- ``classifier``: transformers ``ASTForAudioClassification`` + ``ASTFeatureExtractor`` (16 kHz, 128 mel bins,
  256 frames), placeholder labels ``label_0``/``label_1``.
- ``captioner``: transformers ``Qwen2AudioForConditionalGeneration`` + ``Qwen2AudioProcessor`` (Whisper feature
  extractor at 16 kHz, 128 mel bins, 10 s windows instead of 30 s: 25 audio tokens per second, 250 at most).

Tokenizers are trained offline on a built-in corpus of sound descriptions (``CORPUS``) with the ``tokenizers``
library, through each transformers class's own normalizer and pre-tokenizer, so that the saved ``tokenizer.json``
rebuilds identically in ``from_pretrained`` (transformers 5 rebuilds the backend from vocab/merges by class).

Builds are seeded: the same ZOO_VERSION and library versions give byte-identical files. Each entry is written to a
temporary folder, marked with ``.zoo-complete`` (holding ZOO_VERSION) and renamed into place, so an interrupted
build is never taken as done.

CLI: ``python -m synthio_ray.zoo [DIR] [--only t2a clap ...] [--force]``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

__all__ = [
    "ZOO_VERSION",
    "MARKER",
    "ENTRIES",
    "CORPUS",
    "CHATML_TEMPLATE",
    "build_zoo",
    "default_zoo_dir",
    "is_complete",
    "build_t2a",
    "build_t2a3",
    "build_clap",
    "build_llm",
    "build_classifier",
    "build_captioner",
]

ZOO_VERSION = "zoo-v1"
MARKER = ".zoo-complete"
SEED = 1234

# Audio constants of the tiny models (read them from the saved configs in real code).
T2A_SAMPLE_RATE = 16000
T2A_HOP = 256  # prod(downsampling_ratios)
T2A_LATENT_FRAMES = 256  # DiT sample_size -> max clip 4.096 s
CLASSIFIER_LABELS = ("label_0", "label_1")

CORPUS = (
    "a dog barks twice in a quiet room",
    "rain falls steadily on a tin roof",
    "thunder rolls in the distance while rain pours down",
    "a car engine starts and idles for a few seconds",
    "birds chirp and sing in a forest at dawn",
    "a baby cries loudly and then calms down",
    "footsteps echo on a wooden floor in a hallway",
    "a door creaks open slowly and slams shut",
    "water drips from a leaking faucet into a sink",
    "a cat meows softly near the window",
    "people talk and laugh in a busy restaurant",
    "a siren wails as an ambulance passes by",
    "wind howls through the trees on a stormy night",
    "a train horn blows as the train rushes past",
    "glass shatters on a hard tile floor",
    "a phone rings three times in an empty office",
    "children play and shout in a school playground",
    "a clock ticks steadily on the wall",
    "waves crash against rocks on the shore",
    "a helicopter flies overhead with loud rotor noise",
    "someone types quickly on a mechanical keyboard",
    "a crowd cheers and applauds in a stadium",
    "a rooster crows early in the morning on a farm",
    "a man coughs twice and clears his throat",
    "a woman speaks calmly on the radio",
    "an airplane takes off with a roaring jet engine",
    "a vacuum cleaner hums in a living room",
    "church bells ring out over a small town",
    "frogs croak near a pond at night",
    "a hammer strikes a nail into wood",
    "a chainsaw cuts through a thick log",
    "a fire crackles and pops in a fireplace",
    "a motorcycle accelerates down a busy street",
    "cows moo in a field on a sunny afternoon",
    "a guitar is strummed gently with soft chords",
    "a piano plays a slow and quiet melody",
    "a drum beats a steady rhythm in the background",
    "a keyboard chime sounds as a message arrives",
    "an old fan rattles and whirs in the corner",
    "a bus stops with a hiss of air brakes",
    "insects buzz loudly on a hot summer day",
    "a toilet flushes and water refills the tank",
    "a sheep bleats on a windy hillside",
    "a horse gallops across a dirt road",
    "dishes clatter in a kitchen sink",
    "a kettle whistles as the water boils",
    "an owl hoots in a dark and silent forest",
    "a river flows gently over smooth stones",
    "a baby laughs while a dog pants nearby",
    "a dog growls and then barks at a stranger",
    "the sound of a small bell ringing twice",
    "a man whistles a cheerful tune while walking",
    "heavy rain and wind beat against a window",
    "a loud explosion is followed by falling debris",
    "write a short caption describing this sound",
    "describe the audio in one sentence",
    "you are a helpful assistant that writes audio captions",
    "A Dog Barks; The Quick Brown Fox Jumps Over The Lazy Dog!",
    "JACKDAWS LOVE MY BIG SPHINX OF QUARTZ? (Yes: 0123456789 times.)",
    "Sound #42 @ 3.5 s, 16 kHz & 48 kHz - \"loud\" / 'soft' [50%] {ok} <tag> ~ * + = _ |",
)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def default_zoo_dir() -> Path:
    """Zoo root: ``$SYNTHIO_ZOO`` if set, else ``~/.cache/synthio_ray/zoo/<ZOO_VERSION>``."""
    env = os.environ.get("SYNTHIO_ZOO")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "synthio_ray" / "zoo" / ZOO_VERSION


def is_complete(path: str | Path) -> bool:
    """True if ``path`` holds a finished entry of this ZOO_VERSION (marker present and matching)."""
    marker = Path(path) / MARKER
    try:
        return marker.read_text().strip() == ZOO_VERSION
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------------------
# Helpers and tokenizers


def _seed(offset: int = 0) -> None:
    import torch

    torch.manual_seed(SEED + offset)


def _unzero(model, std: float = 0.02) -> None:
    """Give zero-initialised weight matrices (residual out-projections, gates) small random values, in place.

    Trained checkpoints never hold exact zeros there; with them a random model outputs silence or ignores its input.
    """
    import torch

    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2 and not p.any():
                p.normal_(0.0, std)


def _train_bpe(tok_cls, special_tokens: list[str], vocab_size: int, byte_level: bool, corpus=CORPUS, **kwargs):
    """Train BPE on ``corpus`` through ``tok_cls``'s own normalizer/pre-tokenizer; returns a new ``tok_cls``.

    ``special_tokens`` get ids 0..n-1 in order; ``kwargs`` go to ``tok_cls`` (special-token names, etc.).
    """
    from tokenizers import pre_tokenizers, trainers

    backend = tok_cls(**kwargs).backend_tokenizer
    alphabet = pre_tokenizers.ByteLevel.alphabet() if byte_level else []
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=special_tokens,
        initial_alphabet=alphabet,
        show_progress=False,
    )
    backend.train_from_iterator(list(corpus), trainer)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return tok_cls(vocab=model["vocab"], merges=merges, **kwargs)


def make_t5_tokenizer(model_max_length: int = 64, corpus=CORPUS, vocab_size: int = 600):
    """T5 tokenizer (Unigram + Metaspace, ``<pad>``=0, ``</s>``=1, ``<unk>``=2, no sentinel ids).

    The ``tokenizers`` Unigram trainer orders tied pieces by hash and so is not reproducible; instead the pieces
    come from a (deterministic) BPE run over T5's pre-tokenizer, scored with their log frequency on CORPUS.
    """
    import math

    from tokenizers import Tokenizer, models, trainers
    from transformers import T5Tokenizer

    specials = ["<pad>", "</s>", "<unk>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = T5Tokenizer(extra_ids=0).backend_tokenizer.pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, special_tokens=specials,
                                  show_progress=False)
    bpe.train_from_iterator(list(corpus), trainer)
    pieces = [p for p, _ in sorted(bpe.get_vocab().items(), key=lambda kv: kv[1]) if p not in specials]
    counts = dict.fromkeys(pieces, 0)
    for line in corpus:
        for piece in bpe.encode(line).tokens:
            counts[piece] = counts.get(piece, 0) + 1
    total = sum(counts.values()) + len(pieces)
    vocab = [(p, 0.0) for p in specials] + [(p, round(math.log((counts[p] + 1) / total), 6)) for p in pieces]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=model_max_length)


def make_gemma_tokenizer(model_max_length: int = 256):
    """Gemma tokenizer (BPE with byte fallback: ``<pad>``=0, ``<eos>``=1, ``<bos>``=2, ``<unk>``=3, ``<mask>``=4)."""
    from transformers import GemmaTokenizer

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"] + [f"<0x{i:02X}>" for i in range(256)]
    return _train_bpe(GemmaTokenizer, specials, 700, byte_level=False, model_max_length=model_max_length)


def make_roberta_tokenizer(model_max_length: int = 128, corpus=CORPUS, vocab_size: int = 700):
    """RoBERTa tokenizer (byte-level BPE: ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, ``<mask>``=4)."""
    from transformers import RobertaTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    return _train_bpe(RobertaTokenizer, specials, vocab_size, byte_level=True, corpus=corpus,
                      model_max_length=model_max_length)


def make_qwen2_tokenizer(audio_tokens: bool = False, eos_token: str = "<|endoftext|>", model_max_length: int = 2048,
                         corpus=CORPUS, vocab_size: int = 700):
    """Qwen2 tokenizer (byte-level BPE, ``<|endoftext|>``=0) with ChatML specials and chat template.

    ``audio_tokens`` adds the Qwen2-Audio specials; ``eos_token`` is ``<|im_end|>`` for instruct-style LMs.
    """
    from transformers import Qwen2Tokenizer

    extra = ["<|im_start|>", "<|im_end|>"]
    if audio_tokens:
        extra += ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
    tok = _train_bpe(
        Qwen2Tokenizer,
        ["<|endoftext|>"],
        vocab_size,
        byte_level=True,
        corpus=corpus,
        extra_special_tokens=extra,
        eos_token=eos_token,
        model_max_length=model_max_length,
        errors="replace",
    )
    tok.chat_template = CHATML_TEMPLATE
    return tok


# --------------------------------------------------------------------------------------------------------------
# Builders: each takes an empty/nonexistent folder and writes one model there.


def build_t2a(out: str | Path) -> Path:
    """Write a tiny Stable Audio Open ``StableAudioPipeline`` (stereo, 16 kHz, max 4.096 s) to ``out``."""
    from diffusers import (
        AutoencoderOobleck,
        CosineDPMSolverMultistepScheduler,
        StableAudioDiTModel,
        StableAudioPipeline,
        StableAudioProjectionModel,
    )
    from transformers import T5Config, T5EncoderModel

    out = Path(out)
    tokenizer = make_t5_tokenizer(model_max_length=64)
    text_dim, cond_dim, latent_ch = 32, 64, 8

    _seed(1)
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=text_dim,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=32,
            feed_forward_proj="relu",
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
        )
    ).eval()
    _seed(2)
    projection_model = StableAudioProjectionModel(
        text_encoder_dim=text_dim, conditioning_dim=cond_dim, min_value=0, max_value=512
    )
    _seed(3)
    vae = AutoencoderOobleck(
        encoder_hidden_size=2 * latent_ch,  # mean and scale
        downsampling_ratios=[2, 4, 4, 8],  # hop 256
        channel_multiples=[1, 2, 4, 8],
        decoder_channels=8,
        decoder_input_channels=latent_ch,
        audio_channels=2,
        sampling_rate=T2A_SAMPLE_RATE,
    )
    _seed(4)
    transformer = StableAudioDiTModel(
        sample_size=T2A_LATENT_FRAMES,
        in_channels=latent_ch,
        num_layers=2,
        attention_head_dim=32,
        num_attention_heads=2,
        num_key_value_attention_heads=1,
        out_channels=latent_ch,
        cross_attention_dim=64,
        time_proj_dim=32,
        global_states_input_dim=2 * cond_dim,
        cross_attention_input_dim=cond_dim,
    )
    _unzero(transformer)
    scheduler = CosineDPMSolverMultistepScheduler(
        sigma_min=0.3,
        sigma_max=500,
        sigma_data=1.0,
        sigma_schedule="exponential",
        num_train_timesteps=1000,
        solver_order=2,
        prediction_type="v_prediction",
        rho=7.0,
        solver_type="midpoint",
        lower_order_final=True,
        euler_at_final=False,
        final_sigmas_type="zero",
    )
    pipe = StableAudioPipeline(
        vae=vae,
        text_encoder=text_encoder,
        projection_model=projection_model,
        tokenizer=tokenizer,
        transformer=transformer,
        scheduler=scheduler,
    )
    pipe.save_pretrained(out)
    return out


def build_t2a3(out: str | Path) -> Path:
    """Write a tiny ``StableAudio3Pipeline`` (stereo, 16 kHz, hop 256, T5Gemma text encoder) to ``out``."""
    from diffusers import (
        AutoencoderSAME,
        FlowMatchEulerDiscreteScheduler,
        StableAudio3DiTModel,
        StableAudio3DurationEmbedder,
        StableAudio3Pipeline,
    )
    import torch
    from transformers import T5GemmaConfig, T5GemmaEncoderModel

    out = Path(out)
    tokenizer = make_gemma_tokenizer(model_max_length=256)
    text_dim, latent_dim = 64, 16

    module = dict(
        vocab_size=len(tokenizer),
        hidden_size=text_dim,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        query_pre_attn_scalar=32,
        max_position_embeddings=512,
        sliding_window=64,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    _seed(11)
    text_encoder = T5GemmaEncoderModel(
        T5GemmaConfig(encoder=module, decoder=dict(module), is_encoder_decoder=False, vocab_size=len(tokenizer))
    ).eval()
    _seed(12)
    duration_embedder = StableAudio3DurationEmbedder(output_dim=text_dim, fourier_dim=64, min_val=0.0, max_val=384.0)
    _seed(13)
    vae = AutoencoderSAME(
        audio_channels=2,
        patch_size=16,
        encoder_channels=16,
        encoder_c_mults=[2],
        encoder_strides=[16],  # hop 16 * 16 = 256
        encoder_transformer_depths=[1],
        latent_dim=latent_dim,
        dim_heads=16,
        ff_mult=2,
        sampling_rate=T2A_SAMPLE_RATE,
    )
    _unzero(vae)
    with torch.no_grad():  # decoder output tokens start at 1e-5: near-silent audio; ~0.1 rms with this
        for block in vae.decoder.modules():
            if hasattr(block, "new_tokens"):
                block.new_tokens.normal_(0.0, 0.15)
    _seed(14)
    transformer = StableAudio3DiTModel(
        io_channels=latent_dim,
        patch_size=1,
        embed_dim=64,
        depth=2,
        num_heads=2,
        cond_token_dim=text_dim,
        global_cond_dim=text_dim,
        local_add_cond_dim=latent_dim + 1,  # inpaint: [mask, masked latent]
        timestep_features_dim=32,
        ff_mult=2.0,
        num_memory_tokens=4,
    )
    _unzero(transformer)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0, stochastic_sampling=True)
    pipe = StableAudio3Pipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        duration_embedder=duration_embedder,
        transformer=transformer,
        scheduler=scheduler,
    )
    pipe.save_pretrained(out)
    return out


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


ENTRIES: dict[str, Callable[[str | Path], Path]] = {
    "t2a": build_t2a,
    "t2a3": build_t2a3,
    "clap": build_clap,
    "llm": build_llm,
    "classifier": build_classifier,
    "captioner": build_captioner,
}


# --------------------------------------------------------------------------------------------------------------
# Zoo


def _build_one(name: str, final: Path) -> None:
    """Build entry ``name`` into a temp folder beside ``final``, mark it complete, then swap it into place."""
    from synthio_ray.models.paths import quiet_hub_progress

    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=final.parent))
    try:
        quiet_hub_progress()   # no "Writing model shards" bar per save of the build
        with warnings.catch_warnings():   # diffusers' Oobleck VAE still builds with torch's old weight_norm
            warnings.filterwarnings("ignore", message=".*weight_norm.*is deprecated", category=FutureWarning)
            ENTRIES[name](tmp)
        (tmp / MARKER).write_text(ZOO_VERSION + "\n")
        if final.exists():  # stale, incomplete or forced: move aside first (a folder cannot be replaced)
            trash = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=final.parent))
            try:
                os.replace(final, trash / name)
            except FileNotFoundError:
                pass
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:
            if not is_complete(final):  # a concurrent builder may have finished the same entry first: keep it
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def build_zoo(root: str | Path | None = None, only: list[str] | None = None, force: bool = False) -> dict[str, Path]:
    """Build the zoo under ``root`` (default: :func:`default_zoo_dir`); returns ``{entry name: folder}``.

    ``only`` restricts to some entries (default: all of ``ENTRIES``). Entries already complete for this
    ZOO_VERSION are left untouched unless ``force``; incomplete or stale ones are rebuilt from scratch.
    """
    root = Path(root) if root is not None else default_zoo_dir()
    names = list(ENTRIES) if only is None else list(dict.fromkeys(only))
    unknown = [n for n in names if n not in ENTRIES]
    if unknown:
        raise ValueError(f"unknown zoo entries {unknown}; choose from {sorted(ENTRIES)}")
    root.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in names:
        final = root / name
        if force or not is_complete(final):
            _build_one(name, final)
        paths[name] = final
    return paths


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _param_count(path: Path) -> int:
    """Parameters in all ``*.safetensors`` files under ``path`` (read from headers, no tensors loaded)."""
    from safetensors import safe_open

    total = 0
    for f in path.rglob("*.safetensors"):
        with safe_open(str(f), framework="np") as st:
            for key in st.keys():
                n = 1
                for d in st.get_slice(key).get_shape():
                    n *= d
                total += n
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synthio_ray.zoo", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default=None, help="zoo folder (default: $SYNTHIO_ZOO or the cache)")
    parser.add_argument("--only", nargs="+", choices=sorted(ENTRIES), help="entries to build (default: all)")
    parser.add_argument("--force", action="store_true", help="rebuild entries that are already complete")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    paths = build_zoo(args.root, only=args.only, force=args.force)
    for name, path in paths.items():
        print(f"{name:<11} {path}  {_dir_size(path) / 1e6:6.2f} MB  {_param_count(path) / 1e6:6.3f} M params")
    print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
