"""One typed config for the whole system.

A config is a tree of dataclasses (one section per stage or model). Values come from, in order:
the defaults below, a YAML file (``--config``), and ``key=value`` overrides with dotted keys
(``data.n=100``). Everything is checked before any work starts; every problem is reported with
the dotted key, what was expected and what was given.

    cfg = load_config("configs/default.yaml", ["data.n=100", "seed=3"])
    cfg.data.n            # -> 100
    save_config(cfg, "out/config.yaml")
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

__all__ = [
    "Config", "DataConfig", "ModelsConfig", "T2AConfig", "ClapConfig", "LLMConfig", "CaptionerConfig",
    "ClassifierConfig", "AugmentConfig", "AlignConfig", "ClassifierTrainConfig", "SweepConfig", "GridConfig", "CLASSIFIER_METHODS",
    "ResourcesConfig", "RayConfig", "ConfigError", "load_config", "save_config",
    "config_to_dict", "describe_options", "LAYOUTS",
]

LAYOUTS = ("auto", "manifest", "folders", "esc50", "urbansound8k", "pattern")


class ConfigError(ValueError):
    """A config that cannot be used. ``problems`` lists one ``"key: what is wrong"`` line each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid config:\n" + "\n".join(f"  - {p}" for p in self.problems))


def opt(default: Any = None, help: str = "", *, choices: tuple | None = None, ge: float | None = None,
        le: float | None = None, gt: float | None = None, lt: float | None = None,
        path: str | None = None, factory: Any = None) -> Any:
    """A config field with its documentation and constraints.

    ``path`` is ``"file"``, ``"dir"`` or ``"any"``: the value (when not null) must exist on disk.
    """
    meta = dict(help=help, choices=choices, ge=ge, le=le, gt=gt, lt=lt, path=path)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    """Where the labelled audio comes from and how the small set is drawn (jobs/prepare.py)."""

    source: Optional[str] = opt(None, "dataset root folder or manifest file; null = the embedded "
                                "procedural dataset", path="any")
    layout: str = opt("auto", "how the source is organised", choices=LAYOUTS)
    pattern: Optional[str] = opt(None, "regex with a named group 'label' (optional groups 'split', 'id') "
                                 "matched against each file's path relative to the source (layout=pattern)")
    root: Optional[str] = opt(None, "dataset root that manifest paths are relative to and may not "
                              "leave (default: the manifest's folder)", path="dir")
    n: int = opt(50, "clips drawn for the small training set (stratified, >= 1 per label)", ge=1)
    val_n: Optional[int] = opt(None, "clips drawn from the validation split (null = same as n; "
                               "capped at what the split has)", ge=1)
    val_fraction: float = opt(0.1, "share of each label held out for validation when the source "
                              "has no validation split", ge=0.0, lt=1.0)
    test_fraction: float = opt(0.2, "share of each label held out for test when the source has no "
                               "test split", ge=0.0, lt=1.0)
    val_folds: Optional[list[int]] = opt(None, "folds used for validation (default: esc50 [4], "
                                         "urbansound8k [9])")
    test_folds: Optional[list[int]] = opt(None, "folds used for test (default: esc50 [5], "
                                          "urbansound8k [10])")
    multilabel: str = opt("auto", "multi-label set: auto (yes when any row has several labels), "
                          "true or false", choices=("auto", "true", "false"))
    label_delimiter: str = opt(",", "separator inside a 'labels' string column (multi-label manifests)")
    domain: Optional[str] = opt(None, "what the sounds are, for the LLM prompts (e.g. 'environmental "
                                "sounds', 'music'); null = from the layout or 'everyday sounds'")
    audio_extensions: list[str] = opt(factory=lambda: [".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"],
                                      help="file endings tried when a manifest path has none")
    workers: int = opt(0, "threads that decode and check audio (0 = one per CPU core)", ge=0)
    embedded_clips_per_class: int = opt(25, "clips per class of the embedded procedural dataset", ge=3)
    embedded_seconds: float = opt(2.0, "length of each embedded clip in seconds", gt=0.1, le=30.0)

    def check(self, key: str) -> list[str]:
        problems = []
        if self.val_fraction + self.test_fraction >= 1.0:
            problems.append(f"{key}.val_fraction + {key}.test_fraction: must leave some training data, "
                            f"got {self.val_fraction} + {self.test_fraction}")
        if self.layout == "pattern" and not self.pattern:
            problems.append(f"{key}.pattern: layout 'pattern' needs a regex with a (?P<label>...) group")
        if self.pattern:
            try:
                rx = re.compile(self.pattern)
            except re.error as e:
                problems.append(f"{key}.pattern: not a valid regex ({e}): {self.pattern!r}")
            else:
                if "label" not in rx.groupindex:
                    problems.append(f"{key}.pattern: needs a named group 'label', e.g. "
                                    f"'(?P<label>[a-z]+)_\\d+\\.wav', got {self.pattern!r}")
        if not self.label_delimiter:
            problems.append(f"{key}.label_delimiter: must not be empty")
        for f in ("val_folds", "test_folds"):
            folds = getattr(self, f)
            if folds is not None and any(x < 0 for x in folds):
                problems.append(f"{key}.{f}: folds are non-negative integers, got {folds}")
        if self.val_folds and self.test_folds and set(self.val_folds) & set(self.test_folds):
            problems.append(f"{key}.val_folds and {key}.test_folds overlap: "
                            f"{sorted(set(self.val_folds) & set(self.test_folds))}")
        return problems


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


ZOO_NAMES = ("t2a", "t2a3", "clap", "llm", "classifier", "captioner")


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


CAPTION_MODES = ("mixcap", "llm", "template")


@dataclass
class AugmentConfig:
    """The augmentation job (jobs/augment.py): captions, synthesis, CLAP filter, self-reflection."""

    data: Optional[str] = opt(None, "prepared dataset folder (jobs/prepare.py output); null = prepare the "
                              "embedded default into OUT/__prepared__", path="dir")
    k: int = opt(2, "augmentation factor: generated captions per gold clip (paper: 1-5)", ge=1, le=50)
    threshold: Union[float, str] = opt(0.1, "CLAP acceptance threshold p on models.clap.score of the CLAP that "
                                       "scores: the one fine-tuned on D_small with models.clap.finetune=last (the "
                                       "default), whose scores on on-label clips run higher than the base model's "
                                       "(paper: 0.85 with sigmoid scores), or auto: calibrated on D_small's gold "
                                       "clips scored against their own and the other labels' texts (p = min(95th "
                                       "percentile off-label, 10th percentile on-label); OUT/clap_threshold.json, "
                                       "the card); compare p with jobs/sweep.py", ge=-1.0, le=1.0)
    rounds: int = opt(1, "self-reflection rounds i for rejected clips (0 = no reflection)", ge=0, le=10)
    captions: str = opt("mixcap", "mixcap (LLM captions from the label's events and scenes: Synthio), llm "
                        "(LLM captions from the label only: '+LLM Caps' / 'w/o MixCap'), template (\"Sound of "
                        "a {label}\": 'Vanilla Syn. Aug.')", choices=CAPTION_MODES)
    template: str = opt("Sound of a {label}", "template caption (and the fallback when the LLM fails)")
    caption_asks: int = opt(3, "LLM asks per gold clip for its k captions: the first asks for k, each later one "
                            "only for those still missing (captions that miss the label or run long are "
                            "dropped one by one); slots still empty after the last ask get the template "
                            "caption (caption_source template_fallback)", ge=1, le=10)
    component_fraction: float = opt(0.75, "share of a label's pooled events/scenes shown to MixCap (paper: 75%)",
                                    gt=0.0, le=1.0)
    clap_filter: bool = opt(True, "filter with CLAP (false = accept every clip: 'w/o CLAP filter')")
    exhausted: str = opt("best", "a caption chain still rejected after the last round: best (its best-scoring "
                         "clip joins the set, status kept_best, so the set has k*n clips as the paper's) or "
                         "drop (the chain adds nothing)", choices=("best", "drop"))
    max_seconds: Optional[float] = opt(None, "cap on a generated clip's length (null = the source clip's, "
                                       "capped at the model's maximum)", gt=0.0)
    audio_format: str = opt("flac", "file format of generated clips", choices=("flac", "wav"))
    retries: int = opt(2, "retries of a failing model batch before its rows are recorded as failed", ge=0)

    def check(self, key: str) -> list[str]:
        t = self.threshold
        if isinstance(t, bool) or not (t == "auto" or isinstance(t, (int, float))):
            return [f"{key}.threshold: expected a number in [-1, 1] or auto, got {t!r}"]
        if "{label}" not in self.template:
            return [f"{key}.template: must contain {{label}}, got {self.template!r}"]
        return []


@dataclass
class AlignConfig:
    """The alignment job (jobs/align.py): Diffusion-DPO (or ERM) of the T2A model on D_small, on Ray Train."""

    data: Optional[str] = opt(None, "prepared dataset folder (jobs/prepare.py output); null = prepare the "
                              "embedded default into OUT/prepared", path="dir")
    objective: str = opt("dpo", "dpo (Diffusion-DPO: gold clip beats the model's own generations) or erm "
                         "(plain diffusion loss on the gold clips: the 'w/ ERM' ablation)", choices=("dpo", "erm"))
    beta: float = opt(2000.0, "DPO beta (Tango 2 / Synthio: 2000; Diffusion-DPO for images: 5000)", gt=0.0)
    losers: int = opt(2, "losers j generated per gold clip (paper: 2)", ge=1, le=16)
    template: str = opt("Sound of a {label}", "caption shared by each gold clip and its losers")
    epochs: int = opt(12, "passes over the preference set (paper: 12)", ge=1)
    batch_size: int = opt(16, "(winner, loser) pairs per optimizer step over all workers (paper: 32)", ge=1)
    lr: float = opt(1e-4, "AdamW learning rate: 1e-4 suits LoRA (1e-3 drives the tiny model's errors up "
                    "~20x in 12 epochs); full fine-tuning wants 1e-8..1e-6", gt=0.0)
    weight_decay: float = opt(1e-3, "AdamW weight decay (authors: 1e-3)", ge=0.0)
    grad_clip: float = opt(1.0, "clip the gradient norm at this value (0 = off)", ge=0.0)
    full_finetune: bool = opt(False, "train every DiT weight instead of LoRA adapters on its attention")
    lora_rank: int = opt(8, "LoRA rank on the DiT attention projections to_q, to_k, to_v, to_out.0", ge=1)
    lora_alpha: float = opt(8.0, "LoRA alpha (scale = alpha / rank)", gt=0.0)
    export: str = opt("auto", "OUT/checkpoint as: adapter (the LoRA adapters in peft format + the base model "
                      "they go on, ~1 % of the model's size; --t2a loads them onto the base), merged (a complete "
                      "diffusers pipeline, adapters merged in), auto (adapter under LoRA, merged under "
                      "full_finetune)", choices=("auto", "adapter", "merged"))
    cfg_dropout: float = opt(0.1, "share of pairs trained on the unconditional branch (text conditioning "
                             "zeroed as the pipeline's, no negative prompt): the same draw for winner, loser "
                             "and reference, so classifier-free guidance at generation amplifies a trained "
                             "unconditional prediction (the authors' trainer: 0.1)", ge=0.0, le=1.0)
    timesteps: str = opt("uniform", "training timestep draw in [0, 1]: uniform or logit_normal "
                         "(sigmoid of a standard normal)", choices=("uniform", "logit_normal"))
    precision: str = opt("auto", "auto (bf16 autocast on GPU, fp32 on CPU), float32 or bfloat16 (autocast); "
                         "trained weights stay fp32", choices=("auto", "float32", "bfloat16"))
    base_dtype: str = opt("auto", "dtype of the frozen base (DiT, VAE, text encoder) under LoRA: auto (bfloat16 "
                          "when training under bf16 autocast, i.e. on a GPU; float32 otherwise), float32 or "
                          "bfloat16 (needs bf16 autocast and LoRA); adapters and optimizer stay fp32",
                          choices=("auto", "float32", "bfloat16"))
    gradient_checkpointing: Optional[bool] = opt(None, "recompute each DiT block in the backward instead of "
                                                 "keeping its activations (same loss and gradients, ~1/3 more "
                                                 "compute); null = on for GPU workers, off on CPU")
    micro_batch: Optional[int] = opt(None, "pairs per forward/backward: a worker's batch (align.batch_size / "
                                     "workers) runs in micro-batches whose gradients are accumulated into one "
                                     "step, the same update as the whole batch at once; null = the whole batch",
                                     ge=1)
    encode_batch: int = opt(2, "clips per VAE encode call when a worker encodes its winners and losers "
                            "(halved when a call runs out of memory)", ge=1)
    workers: int = opt(1, "Ray Train workers (DDP data-parallel replicas)", ge=1)
    gpus_per_worker: float = opt(0.0, "GPUs per worker (1 on a GPU cluster)", ge=0.0)
    cpus_per_worker: float = opt(1.0, "CPUs per worker (also its torch threads)", gt=0.0)
    max_failures: int = opt(2, "worker failures Ray Train recovers from (resuming from the last epoch's "
                            "checkpoint; -1 = no limit)", ge=-1)
    keep_checkpoints: int = opt(2, "epoch checkpoints kept under OUT/ray_train", ge=1)
    log_every: int = opt(5, "print step metrics every this many steps (per-epoch lines always)", ge=1)
    seed: Optional[int] = opt(None, "seed of loser generation, shuffling, noise and timesteps (null = the "
                              "top-level seed)", ge=0)

    def check(self, key: str) -> list[str]:
        problems = []
        if "{label}" not in self.template:
            problems.append(f"{key}.template: must contain {{label}}, got {self.template!r}")
        if self.base_dtype == "bfloat16" and self.full_finetune:
            problems.append(f"{key}.base_dtype: bfloat16 is for the frozen base under LoRA; full_finetune trains "
                            f"every weight in float32 (set {key}.base_dtype=float32 or auto)")
        if self.base_dtype == "bfloat16" and self.precision == "float32":
            problems.append(f"{key}.base_dtype: a bfloat16 base needs bf16 autocast ({key}.precision=bfloat16 "
                            f"or auto), got precision=float32")
        if self.export == "adapter" and self.full_finetune:
            problems.append(f"{key}.export: adapter needs LoRA training ({key}.full_finetune=false); a full "
                            f"fine-tune exports merged")
        return problems


CLASSIFIER_METHODS = ("gold", "noise", "pitch", "specaugment", "audiomentations", "retrieval", "retrieval_in_domain",
                      "synthetic", "synthetic_only", "synthetic+noise", "synthetic+pitch", "synthetic+specaugment",
                      "synthetic+audiomentations", "synthetic+retrieval", "synthetic+retrieval_in_domain")


@dataclass
class ClassifierTrainConfig:
    """Classifier training (jobs/train_classifier.py): AST on D_small + synthetic or augmented clips, Ray Train."""

    data: Optional[str] = opt(None, "prepared dataset folder (jobs/prepare.py output); null = prepare the "
                              "embedded default into OUT/prepared", path="dir")
    synthetic: list[str] = opt(factory=list, help="augmentation outputs (jobs/augment.py --out) whose accepted "
                               "clips join the training set")
    method: Optional[str] = opt(None, "gold, noise, pitch, specaugment, audiomentations, retrieval (from "
                                "retrieval_pool), retrieval_in_domain (from the dataset's own pool split), "
                                "synthetic, synthetic_only, synthetic+<classic or retrieval>; null = synthetic when "
                                "synthetic outputs are given, else gold")
    synthetic_k: Optional[int] = opt(None, "use only the first k captions of each gold clip (null = all)", ge=1)
    synthetic_threshold: Optional[float] = opt(None, "CLAP threshold p: per caption chain, the first round "
                                               "scoring >= p (null = the augmentation job's own decisions)")
    copies: int = opt(2, "augmented copies per gold clip for the classic methods", ge=1, le=50)
    aug_draws: Optional[int] = opt(None, "classic methods: distinct random draws of the copies, cycled over "
                                   "the epochs (epoch e uses draw (e-1) mod aug_draws); null = a fresh draw every "
                                   "epoch; 1 = the copies are drawn once and reused", ge=1)
    noise_kinds: list[str] = opt(factory=lambda: ["gaussian", "background"], help="noise: the variants "
                                 "trained, gaussian (white noise) and background (background_noise recordings, "
                                 "or coloured 1/f^b noise, b in [1, 2], when it is null); the run reports the one "
                                 "with the best validation score (ties: the first listed)")
    audiomentations_search: list[str] = opt(
        factory=lambda: ["snr+shift", "stretch+pitch", "snr+stretch+pitch+shift", "snr+stretch+pitch+shift+masks"],
        help="audiomentations: the transform combinations trained (each transforms joined by '+' from snr, "
             "stretch, pitch, shift, masks, each at p 0.5); the run reports the one with the best validation "
             "score (ties: the first listed)")
    retrieval_pool: Optional[str] = opt(None, "retrieval: the outside pool it retrieves from (the paper: "
                                        "AudioSet), a folder of audio files or a prepared dataset from another "
                                        "source; required by method retrieval (retrieval_in_domain uses the "
                                        "prepared dataset's own pool split, labels dropped)", path="dir")
    retrieval_n: int = opt(2, "retrieval: CLAP-nearest pool clips added per gold clip", ge=1)
    background_noise: Optional[str] = opt(None, "noise: folder of background recordings for the background "
                                          "variant (null = coloured noise)", path="dir")
    epochs: Optional[int] = opt(None, "training epochs (null = 50, the paper's, or 40 for a zoo model)", ge=1)
    lr: Optional[float] = opt(None, "learning rate (null = 1e-4, the paper's for pre-trained AST, or 3e-4 "
                              "for a zoo model trained from scratch)", gt=0.0)
    batch_size: Optional[int] = opt(None, "clips per step over all workers (null = 24, the paper's, or 8 for "
                                    "a zoo model)", ge=1)
    weight_decay: float = opt(5e-7, "AdamW weight decay (AST recipe)", ge=0.0)
    lr_decay: float = opt(0.85, "learning rate factor per epoch from lr_decay_start on (AST recipe)",
                          gt=0.0, le=1.0)
    lr_decay_start: Optional[int] = opt(None, "first epoch of the decay (null = 5, AST's, or half the epochs "
                                        "for a zoo model)", ge=1)
    seed: Optional[int] = opt(None, "training seed: head init, shuffling, augmentation draws (null = the "
                              "top-level seed)", ge=0)
    backend: str = opt("ray_train", "ray_train (TorchTrainer, DDP over workers) or local (this process)",
                       choices=("ray_train", "local"))
    workers: int = opt(1, "Ray Train workers", ge=1)
    cpus_per_worker: float = opt(1.0, "CPUs per worker (also its torch threads)", gt=0.0)
    gpus_per_worker: float = opt(0.0, "GPUs per worker (1 on a GPU cluster)", ge=0.0)
    zero_shot: bool = opt(True, "also score zero-shot CLAP (models.clap, text models.clap.text_template) on "
                          "the test split as a reference row")
    save_model: bool = opt(True, "save the selected model to OUT/model")
    feature_cache: Optional[str] = opt(None, "folder caching AST features across runs (null = OUT/features)")

    def check(self, key: str) -> list[str]:
        problems = []
        if self.method is not None and self.method not in CLASSIFIER_METHODS:
            problems.append(f"{key}.method: expected one of {', '.join(CLASSIFIER_METHODS)}; got {self.method!r}")
        kinds = ("gaussian", "background")
        if not self.noise_kinds or any(k not in kinds for k in self.noise_kinds):
            problems.append(f"{key}.noise_kinds: a non-empty list of {', '.join(kinds)}; got {self.noise_kinds}")
        transforms = ("snr", "stretch", "pitch", "shift", "masks")
        for combo in self.audiomentations_search or [""]:
            names = combo.split("+")
            if not combo or any(n not in transforms for n in names) or len(set(names)) != len(names):
                problems.append(f"{key}.audiomentations_search: each entry distinct transforms joined by '+' from "
                                f"{', '.join(transforms)}; got {combo!r}")
        return problems


@dataclass
class SweepConfig:
    """The Tune sweep over k and p (jobs/sweep.py): one generation at (max k, max p), one trial per (k, p)."""

    ks: list[int] = opt(factory=lambda: [1, 2, 3, 4, 5], help="augmentation factors k to try (paper: 1..5)")
    thresholds: Optional[list[float]] = opt(None, "CLAP thresholds p to try (null = augment.threshold and the "
                                            "25th and 50th percentiles of the generated round-0 scores below it)")
    synthetic: Optional[str] = opt(None, "an augmentation output made at (max k, max p) to select from instead "
                                   "of generating (jobs/augment.py --out)", path="dir")
    method: str = opt("synthetic", "training method of every trial (synthetic or synthetic+<classic>)")
    backend: str = opt("local", "local (the classifier loop runs inside the trial: the CPU default) or ray_train "
                       "(each trial starts a TorchTrainer with train_classifier.workers workers)",
                       choices=("local", "ray_train"))
    trial_cpus: float = opt(1.0, "CPUs per trial (with backend=ray_train the workers ask for their own)", gt=0.0)
    trial_gpus: float = opt(0.0, "GPUs per trial with backend=local (1 on a GPU cluster; with ray_train the "
                            "workers ask for train_classifier.gpus_per_worker)", ge=0.0)
    max_concurrent: int = opt(0, "trials at once (0 = as many as the CPUs allow)", ge=0)

    def check(self, key: str) -> list[str]:
        problems = []
        if not self.ks or any(k < 1 for k in self.ks):
            problems.append(f"{key}.ks: a non-empty list of k >= 1, got {self.ks}")
        if self.thresholds is not None and not self.thresholds:
            problems.append(f"{key}.thresholds: give at least one p, or null")
        if self.method != "synthetic" and not self.method.startswith("synthetic+"):
            problems.append(f"{key}.method: synthetic or synthetic+<classic>, got {self.method!r}")
        return problems


@dataclass
class GridConfig:
    """The paper's Table 1 (jobs/grid.py): datasets x n x methods x seeds, each cell a Tune trial."""

    datasets: list[str] = opt(factory=lambda: ["embedded"], help="[name=]VALUE each: 'embedded', a dataset "
                              "folder or manifest (data.source), a YAML config whose data section applies, or "
                              "SOURCE@CONFIG.yaml (e.g. esc50=/data/ESC-50-master@configs/esc50.yaml)")
    ns: list[int] = opt(factory=lambda: [50], help="small-set sizes n (paper: 50, 100, 200, 500)")
    methods: list[str] = opt(factory=lambda: ["gold", "noise", "specaugment", "wo_dpo"],
                             help="rows: classifier methods and the synthesis variants (see jobs/grid.py --help)")
    seeds: list[int] = opt(factory=lambda: [0, 1], help="training seeds per cell (paper: 3 runs)")
    ks: list[int] = opt(factory=lambda: [1, 2], help="augmentation factors k tried per synthesis row: each "
                        "variant is generated once at the largest, every k trains on the first k captions of "
                        "each gold clip, and the table reports the k with the best mean validation score "
                        "(paper: 1..5, chosen on validation)")
    backend: str = opt("local", "local (the classifier loop runs inside the trial) or ray_train (each trial "
                       "starts a TorchTrainer)", choices=("local", "ray_train"))
    trial_cpus: float = opt(1.0, "CPUs per trial (with backend=ray_train the workers ask for their own)", gt=0.0)
    trial_gpus: float = opt(0.0, "GPUs per trial with backend=local (1 on a GPU cluster; with ray_train the "
                            "workers ask for train_classifier.gpus_per_worker)", ge=0.0)
    max_concurrent: int = opt(0, "trials at once (0 = as many as the CPUs allow)", ge=0)
    zero_shot: bool = opt(True, "add a zero-shot CLAP row per dataset")
    analyses: bool = opt(True, "write the section-6 analyses (diversity, spectral features, FAD) for each "
                         "synthetic set")
    align_epochs: Optional[int] = opt(None, "epochs of the align runs the DPO/ERM rows need (null = align.epochs)",
                                      ge=1)

    def check(self, key: str) -> list[str]:
        problems = []
        for name in ("datasets", "ns", "methods", "seeds", "ks"):
            if not getattr(self, name):
                problems.append(f"{key}.{name}: must not be empty")
        return problems


@dataclass
class ResourcesConfig:
    """Actor pools of the streaming pipeline (per stage: actors, GPUs and CPUs per actor, batch)."""

    llm_actors: int = opt(1, "LLM stage actors (transformers / http backends)", ge=1)
    llm_gpus: float = opt(0.0, "GPUs per LLM actor (transformers LLM backend)", ge=0.0)
    captioner_gpus: Optional[float] = opt(None, "GPUs per gold-captioner actor (transformers captioner, e.g. "
                                          "Qwen2-Audio: 1); null = resources.llm_gpus", ge=0.0)
    t2a_actors: int = opt(1, "text-to-audio actors", ge=1)
    t2a_gpus: float = opt(0.0, "GPUs per text-to-audio actor (1 on a GPU cluster)", ge=0.0)
    clap_actors: int = opt(1, "CLAP scoring actors", ge=1)
    clap_gpus: float = opt(0.0, "GPUs per CLAP actor (a fraction shares a GPU, e.g. 0.25)", ge=0.0)
    cpus_per_actor: float = opt(0.5, "CPUs reserved per actor", gt=0.0)
    torch_threads: int = opt(1, "torch CPU threads per actor (0 = torch's default)", ge=0)
    wait_for_nodes: float = opt(600.0, "seconds a model server waits for a node that fits it to join (an "
                                "autoscaling cluster adds one on demand) before the job fails saying why; a "
                                "local Ray the job starts itself fails at once", ge=0.0)


@dataclass
class RayConfig:
    """How jobs connect to Ray."""

    address: Optional[str] = opt(None, "Ray cluster address (null = start or join a local one; "
                                 "'auto' = the running cluster)")
    num_cpus: Optional[int] = opt(None, "CPUs for a local Ray started by the job (null = all)", ge=1)
    progress: str = opt("auto", "progress display: auto (only on a terminal), on, off",
                        choices=("auto", "on", "off"))


@dataclass
class Config:
    """The whole system's config. Sections: data, models, augment, resources, ray."""

    seed: int = opt(0, "seed for sampling and generation; every random choice derives from it", ge=0)
    out: Optional[str] = opt(None, "output folder of the job")
    data: DataConfig = opt(factory=DataConfig, help="dataset source and small-set sampling")
    models: ModelsConfig = opt(factory=ModelsConfig, help="model backends")
    augment: AugmentConfig = opt(factory=AugmentConfig, help="augmentation job")
    align: AlignConfig = opt(factory=AlignConfig, help="alignment job (DPO / ERM)")
    train_classifier: ClassifierTrainConfig = opt(factory=ClassifierTrainConfig, help="classifier training")
    sweep: SweepConfig = opt(factory=SweepConfig, help="Tune sweep over k and p")
    grid: GridConfig = opt(factory=GridConfig, help="the paper's dataset grid")
    resources: ResourcesConfig = opt(factory=ResourcesConfig, help="actor pools")
    ray: RayConfig = opt(factory=RayConfig, help="Ray connection")

    def check(self, key: str) -> list[str]:
        return []


# ----------------------------------------------------------------------------------------------
# Building and checking

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _type_name(tp: Any) -> str:
    tp, optional = _unwrap_optional(tp)
    origin = typing.get_origin(tp)
    if origin is list:
        name = f"list of {_type_name(typing.get_args(tp)[0])}"
    elif origin is dict:
        name = "mapping"
    elif origin in (Union, types.UnionType):
        name = " or ".join(_type_name(a) for a in typing.get_args(tp))
    else:
        name = {int: "integer", float: "number", str: "string", bool: "boolean"}.get(tp, str(tp))
    return f"{name} or null" if optional else name


def _coerce_str(text: str, tp: Any) -> Any:
    """Turn a command-line string into a value of type ``tp`` (best effort; checked afterwards)."""
    base, optional = _unwrap_optional(tp)
    if optional and text.strip().lower() in ("null", "none", "~"):
        return None
    if base is str:
        return text
    if base is bool:
        low = text.strip().lower()
        return True if low in _TRUE else False if low in _FALSE else text
    if base is int:
        try:
            return int(text)
        except ValueError:
            return text
    if base is float:
        try:
            return float(text)
        except ValueError:
            return text
    if typing.get_origin(base) is list:
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                items = yaml.safe_load(stripped)
            except yaml.YAMLError:
                return text
        else:
            items = [s for s in (p.strip() for p in stripped.split(",")) if s]
        inner = typing.get_args(base)[0]
        return [_coerce_str(str(x), inner) if isinstance(x, str) or inner is str else x for x in items]
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _check_value(key: str, value: Any, tp: Any, meta: dict) -> tuple[Any, list[str]]:
    base, optional = _unwrap_optional(tp)
    if value is None:
        return (None, []) if optional else (None, [f"{key}: expected {_type_name(tp)}, got null"])
    bad = [f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})"]
    if base is bool:
        if not isinstance(value, bool):
            return value, bad
    elif base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                return value, bad
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, bad
        value = float(value)
    elif base is str:
        if not isinstance(value, str):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            else:
                return value, bad
    elif typing.get_origin(base) is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            return value, bad
        inner = typing.get_args(base)[0]
        out, problems = [], []
        for i, item in enumerate(value):
            v, p = _check_value(f"{key}[{i}]", item, inner, {})
            out.append(v)
            problems += p
        if problems:
            return value, problems
        value = out
    elif typing.get_origin(base) is dict:
        if not isinstance(value, dict):
            return value, bad
    problems = []
    if meta.get("choices") and value not in meta["choices"]:
        problems.append(f"{key}: expected one of {', '.join(map(str, meta['choices']))}; got {value!r}")
    for op, fn, word in (("ge", lambda a, b: a >= b, ">="), ("gt", lambda a, b: a > b, ">"),
                         ("le", lambda a, b: a <= b, "<="), ("lt", lambda a, b: a < b, "<")):
        bound = meta.get(op)
        if bound is not None and isinstance(value, (int, float)) and not fn(value, bound):
            problems.append(f"{key}: expected a value {word} {bound}, got {value!r}")
    kind = meta.get("path")
    if kind and isinstance(value, str):
        p = Path(os.path.expanduser(value))
        if kind == "file" and not p.is_file():
            problems.append(f"{key}: file not found: {value}")
        elif kind == "dir" and not p.is_dir():
            problems.append(f"{key}: folder not found: {value}")
        elif kind == "any" and not p.exists():
            problems.append(f"{key}: path not found: {value}")
    return value, problems


def _build(cls: type, raw: dict, prefix: str, problems: list[str]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for k in raw:
        if k not in fields:
            key = f"{prefix}{k}"
            close = difflib.get_close_matches(str(k), list(fields), n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            problems.append(f"{key}: unknown key{hint}; valid keys here: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        tp = hints[name]
        key = f"{prefix}{name}"
        if _is_section(tp):
            sub = raw.get(name, {})
            if sub is None:
                sub = {}
            if not isinstance(sub, dict):
                problems.append(f"{key}: expected a section (mapping of keys), got {sub!r}")
                sub = {}
            kwargs[name] = _build(tp, sub, key + ".", problems)
        elif name in raw:
            value, p = _check_value(key, raw[name], tp, dict(f.metadata))
            problems += p
            if not p:
                kwargs[name] = value
    obj = cls(**kwargs)
    if hasattr(obj, "check"):
        problems += obj.check(prefix.rstrip(".") or "config")
    return obj


def _field_type(cls: type, dotted: str) -> Any:
    """The declared type at a dotted key, or raise KeyError with the closest match."""
    parts = dotted.split(".")
    tp: Any = cls
    for i, part in enumerate(parts):
        if not _is_section(tp):
            raise KeyError(f"{'.'.join(parts[:i])} is a value, not a section")
        names = [f.name for f in dataclasses.fields(tp)]
        if part not in names:
            close = difflib.get_close_matches(part, names, n=1)
            where = ".".join(parts[:i]) or "the top level"
            hint = f" (did you mean '{'.'.join(parts[:i] + [close[0]])}'?)" if close else ""
            raise KeyError(f"unknown key{hint}; valid keys in {where}: {', '.join(names)}")
        tp = typing.get_type_hints(tp)[part]
    return tp


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value


def apply_overrides(tree: dict, overrides: list[str], cls: type = None) -> list[str]:
    """Apply ``key=value`` strings onto a raw config tree; return problems (unknown keys, bad syntax)."""
    cls = cls or Config
    problems = []
    for item in overrides:
        if "=" not in item:
            problems.append(f"{item}: an override is key=value with a dotted key, e.g. data.n=100")
            continue
        key, text = item.split("=", 1)
        key = key.strip()
        try:
            tp = _field_type(cls, key)
        except KeyError as e:
            problems.append(f"{key}: {e.args[0]}")
            continue
        if _is_section(tp):
            problems.append(f"{key}: is a section; set one of its keys, e.g. {key}."
                            f"{dataclasses.fields(tp)[0].name}=...")
            continue
        _set_dotted(tree, key, _coerce_str(text, tp))
    return problems


def build_config(tree: dict, cls: type = None) -> Any:
    """Check a raw tree (as read from YAML) and build the typed config, or raise ConfigError."""
    cls = cls or Config
    problems: list[str] = []
    cfg = _build(cls, tree or {}, "", problems)
    if problems:
        raise ConfigError(problems)
    return cfg


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None,
                cls: type = None) -> Any:
    """Defaults <- YAML file <- dotted overrides; checked. Raises ConfigError listing every problem."""
    cls = cls or Config
    tree: dict = {}
    problems: list[str] = []
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError([f"--config: file not found: {path}"])
        try:
            tree = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError([f"--config: {path} is not valid YAML: {e}"]) from None
        if not isinstance(tree, dict):
            raise ConfigError([f"--config: {path} must hold a mapping of sections, got {type(tree).__name__}"])
    problems += apply_overrides(tree, overrides or [], cls)
    try:
        cfg = build_config(tree, cls)
    except ConfigError as e:
        problems += e.problems
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return cfg


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (re-loadable with ``load_config``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return p


def describe_options(cls: type = None, prefix: str = "") -> list[str]:
    """One line per leaf key: ``key (type, default X): help``; used by every job's --help."""
    cls = cls or Config
    lines = []
    hints = typing.get_type_hints(cls)
    inst = cls()
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if _is_section(tp):
            continue
        meta = f.metadata
        extra = f", one of {'|'.join(map(str, meta['choices']))}" if meta.get("choices") else ""
        default = getattr(inst, f.name)
        lines.append(f"  {prefix}{f.name} ({_type_name(tp)}{extra}, default {default!r}): {meta.get('help', '')}")
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if _is_section(tp):
            lines.append(f"[{prefix}{f.name}] {tp.__doc__.splitlines()[0] if tp.__doc__ else ''}")
            lines += describe_options(tp, f"{prefix}{f.name}.")
    return lines
