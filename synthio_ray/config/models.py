"""The ``models`` section: which checkpoint each backend loads and how it runs it."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from synthio_ray.config.loader import opt

__all__ = ["ModelsConfig", "T2AConfig", "ClapConfig", "LLMConfig", "CaptionerConfig", "ClassifierConfig", "ZOO_NAMES"]

ZOO_NAMES = ("t2a", "t2a3", "clap", "llm", "classifier", "captioner")


def _model_path_problems(key: str, path: str | None) -> list[str]:
    """A model path is ``zoo:<name>``, ``world:<name>``, a local folder/file, or a hub id (``org/name``)."""
    if path is None:
        return []
    if path.startswith("zoo:"):
        return [] if path[4:] in ZOO_NAMES else [f"{key}: unknown zoo model {path!r}; one of "
                                                  f"{', '.join('zoo:' + n for n in ZOO_NAMES)}"]
    if path.startswith("world:"):
        from synthio_ray.trained_zoo.export import WEIGHTS, WORLD_NAMES

        if path[6:] not in WORLD_NAMES:
            return [f"{key}: unknown trained world model {path!r}; one of "
                    f"{', '.join('world:' + n for n in WORLD_NAMES)}"]
        if not (WEIGHTS / path[6:]).is_dir():
            return [f"{key}: {path}: the trained world weights are not in this checkout ({WEIGHTS}); "
                    f"use zoo:{path[6:]} (random weights) or train and export them "
                    f"(python -m synthio_ray.trained_zoo --help)"]
        return []
    local = path.startswith(("/", ".", "~")) or os.sep in path.strip("/").split("/", 1)[-1]
    if local and not Path(os.path.expanduser(path)).exists():
        return [f"{key}: model path not found: {path} (a local folder, a hub id like org/name, "
                f"or zoo:<name>)"]
    return []


@dataclass
class T2AConfig:
    """Text-to-audio model (synthesis stage)."""

    backend: str = opt("stable_audio", "stable_audio (diffusers StableAudioPipeline, Stable Audio Open "
                       "format), stable_audio3 (StableAudio3Pipeline), stable_audio_tools (the authors' "
                       "format, optional extra)", choices=("stable_audio", "stable_audio3", "stable_audio_tools"))
    path: str = opt("zoo:t2a", "checkpoint folder, hub id, or zoo:<name> for the tiny offline model")
    device: str = opt("auto", "auto, cpu, cuda, cuda:N or mps")
    dtype: str = opt("auto", "auto (bf16/fp16 on GPU, fp32 on CPU), float32, bfloat16, float16",
                     choices=("auto", "float32", "bfloat16", "float16"))
    steps: Optional[int] = opt(None, "denoising steps; null = the backend's own default: stable_audio and "
                               "stable_audio_tools 100 (the paper's), stable_audio3 its pipeline's (8 for the "
                               "distilled sampler); the values used are in each clip's t2a_steps", ge=1)
    cfg_scale: Optional[float] = opt(None, "classifier-free guidance scale (1.0 turns CFG off); null = the "
                                     "backend's own default: stable_audio and stable_audio_tools 7.0 (the paper's), "
                                     "stable_audio3 its pipeline's (1.0, off: the distilled model has CFG built in)",
                                     ge=0.0)
    negative_prompt: Optional[str] = opt(None, "negative prompt for CFG")
    batch_size: int = opt(8, "captions per generation call", ge=1)
    crop_latents: bool = opt(False, "stable_audio: denoise only the latent frames a clip needs instead of "
                             "the model's full window (much faster for short clips; the released model "
                             "was trained on full windows)")
    decode_batch: int = opt(4, "stable_audio: clips per VAE decode call (halved for the rest of the run when "
                            "a decode runs out of memory; a clip that fails alone is a failed row, its "
                            "denoising is never re-run)", ge=1)
    decode_margin: int = opt(16, "stable_audio: latent frames decoded past a clip's end (the VAE decodes "
                             "only the frames a clip keeps plus this margin, not the whole window)", ge=0)

    def check(self, key: str) -> list[str]:
        return _model_path_problems(f"{key}.path", self.path)


@dataclass
class ClapConfig:
    """CLAP model used to filter generated clips (and for retrieval / analyses)."""

    backend: str = opt("transformers", "transformers (ClapModel: laion/clap-htsat-unfused, "
                       "laion/larger_clap_general) or laion_clap (.pt checkpoints, optional extra)",
                       choices=("transformers", "laion_clap"))
    path: str = opt("zoo:clap", "checkpoint folder / .pt file, hub id, or zoo:clap")
    device: str = opt("auto", "auto, cpu, cuda, cuda:N or mps")
    dtype: str = opt("auto", "model dtype", choices=("auto", "float32", "bfloat16", "float16"))
    score: str = opt("cosine", "cosine, or sigmoid = sigmoid(logit_scale * cosine) as the authors scored",
                     choices=("cosine", "sigmoid"))
    text_template: str = opt("Sound of a {label}", "text each clip is scored against")
    batch_size: int = opt(16, "clips per scoring call", ge=1)
    finetune: str = opt("last", "last (before filtering, train the last layer of CLAP's audio projection on "
                        "D_small's gold clips against their label texts, once per augmentation job, saved in "
                        "OUT/clap_finetuned: the paper's section 4.2.2) or none (score with CLAP as it is). "
                        "The threshold p applies to the scores of the CLAP used", choices=("none", "last"))
    finetune_epochs: int = opt(100, "epochs of the CLAP fine-tuning", ge=1)
    finetune_lr: float = opt(1e-3, "learning rate of the CLAP fine-tuning", gt=0.0)

    def check(self, key: str) -> list[str]:
        problems = _model_path_problems(f"{key}.path", self.path)
        if "{label}" not in self.text_template:
            problems.append(f"{key}.text_template: must contain {{label}}, got {self.text_template!r}")
        return problems


@dataclass
class LLMConfig:
    """LLM for component extraction, MixCap captions and self-reflection."""

    backend: str = opt("transformers", "transformers (local causal LM), http (OpenAI-compatible "
                       "endpoint) or vllm (ray.data.llm vLLM engine, GPU only)",
                       choices=("transformers", "http", "vllm"))
    path: str = opt("zoo:llm", "model folder, hub id, or zoo:llm (transformers, vllm); for http the "
                    "model name sent to the server")
    url: Optional[str] = opt(None, "http backend: base URL of the server, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str = opt("OPENAI_API_KEY", "http backend: environment variable holding the API key")
    device: str = opt("auto", "transformers backend device")
    dtype: str = opt("auto", "model dtype", choices=("auto", "float32", "bfloat16", "float16"))
    max_tokens: int = opt(256, "tokens per answer", ge=1)
    temperature: float = opt(0.7, "sampling temperature (paper: 0.7)", ge=0.0)
    top_p: float = opt(0.5, "nucleus sampling (paper: 0.5)", gt=0.0, le=1.0)
    retries: int = opt(2, "re-asks for an answer that does not parse, then the row falls back", ge=0)
    batch_size: int = opt(8, "conversations per call (transformers / http backends and the LLM stages' Ray Data "
                          "batches)", ge=1)
    engine_batch_size: int = opt(64, "vllm: rows per batch of the vLLM engine stage (the engine schedules every "
                                 "request of its batches at once; more in flight = higher throughput)", ge=1)
    accelerator_type: Optional[str] = opt(None, "vllm: GPU type the engine must run on (Ray's accelerator_type "
                                          "resource, e.g. L40S or A10G; cluster.yaml installs vLLM only on its L40S "
                                          "node type); null = any GPU node")
    timeout_s: float = opt(120.0, "http backend: seconds per request", gt=0)
    tensor_parallel_size: int = opt(1, "vllm: GPUs per engine", ge=1)
    gpu_memory_utilization: float = opt(0.85, "vllm: share of GPU memory for the engine", gt=0, le=1)
    max_model_len: int = opt(4096, "vllm: context length", ge=256)
    concurrency: int = opt(1, "vllm / http: engine replicas or parallel clients", ge=1)
    http_processor: bool = opt(False, "http backend: send requests through ray.data.llm's HTTP processor "
                               "(qps limits) instead of our client in an actor pool (per-row errors, re-asks)")

    def check(self, key: str) -> list[str]:
        problems = [] if self.backend == "http" else _model_path_problems(f"{key}.path", self.path)
        if self.backend == "http" and not self.url:
            problems.append(f"{key}.url: the http backend needs the server's base URL, e.g. "
                            f"http://127.0.0.1:8000/v1")
        if self.backend == "http" and self.path.startswith(("zoo:", "world:")):
            problems.append(f"{key}.path: for the http backend give the model name the server serves")
        if self.accelerator_type is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.accelerator_type):
            problems.append(f"{key}.accelerator_type: a Ray accelerator type such as L40S or A10G (letters, digits, "
                            f"'-', '_', '.'), got {self.accelerator_type!r}")
        return problems


@dataclass
class CaptionerConfig:
    """How gold clips get captions before component extraction."""

    backend: str = opt("manifest", "manifest (the dataset's caption column, label-only where missing), "
                       "none (label only) or transformers (an audio-language model such as Qwen2-Audio)",
                       choices=("manifest", "none", "transformers"))
    path: Optional[str] = opt(None, "transformers backend: model folder, hub id or zoo:captioner")
    device: str = opt("auto", "device for the transformers backend")
    dtype: str = opt("auto", "model dtype", choices=("auto", "float32", "bfloat16", "float16"))
    prompt: str = opt("Describe this sound recording in one sentence.", "instruction given with the audio")
    max_tokens: int = opt(64, "tokens per caption", ge=1)

    def check(self, key: str) -> list[str]:
        if self.backend == "transformers" and not self.path:
            return [f"{key}.path: the transformers captioner needs a model path"]
        return _model_path_problems(f"{key}.path", self.path)


@dataclass
class ClassifierConfig:
    """The audio classifier (AST) trained on D_small + synthetic clips."""

    path: str = opt("zoo:classifier", "AST checkpoint folder, hub id (MIT/ast-finetuned-audioset-"
                    "10-10-0.4593), or zoo:classifier")
    device: str = opt("auto", "device")

    def check(self, key: str) -> list[str]:
        return _model_path_problems(f"{key}.path", self.path)


@dataclass
class ModelsConfig:
    """Every model the system uses."""

    t2a: T2AConfig = opt(factory=T2AConfig, help="text-to-audio")
    clap: ClapConfig = opt(factory=ClapConfig, help="CLAP")
    llm: LLMConfig = opt(factory=LLMConfig, help="LLM")
    captioner: CaptionerConfig = opt(factory=CaptionerConfig, help="audio captioner")
    classifier: ClassifierConfig = opt(factory=ClassifierConfig, help="classifier")


