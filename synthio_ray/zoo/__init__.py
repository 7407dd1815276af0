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

from synthio_ray.zoo.build import ENTRIES, build_zoo, main
from synthio_ray.zoo.clap import build_clap
from synthio_ray.zoo.classifier import build_classifier
from synthio_ray.zoo.common import (CLASSIFIER_LABELS, MARKER, SEED, T2A_HOP, T2A_LATENT_FRAMES, T2A_SAMPLE_RATE,
                                    ZOO_VERSION, default_zoo_dir, is_complete)
from synthio_ray.zoo.language import build_captioner, build_llm
from synthio_ray.zoo.t2a import build_t2a, build_t2a3
from synthio_ray.zoo.vocab import (CHATML_TEMPLATE, CORPUS, make_gemma_tokenizer, make_qwen2_tokenizer,
                                   make_roberta_tokenizer, make_t5_tokenizer)


__all__ = [
    "ZOO_VERSION", "MARKER", "SEED", "ENTRIES", "CORPUS", "CHATML_TEMPLATE", "CLASSIFIER_LABELS", "T2A_SAMPLE_RATE",
    "T2A_HOP", "T2A_LATENT_FRAMES", "build_zoo", "default_zoo_dir", "is_complete", "main", "build_t2a", "build_t2a3",
    "build_clap", "build_llm", "build_classifier", "build_captioner", "make_t5_tokenizer", "make_gemma_tokenizer",
    "make_roberta_tokenizer", "make_qwen2_tokenizer",
]
