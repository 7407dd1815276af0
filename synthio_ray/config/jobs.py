"""The sections of the data and of each job: ``data`` (prepare), ``augment``, ``align``, ``train_classifier``,
``sweep`` and ``grid``."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Union

from synthio_ray.config.loader import opt

__all__ = ["DataConfig", "AugmentConfig", "AlignConfig", "ClassifierTrainConfig", "SweepConfig", "GridConfig",
           "LAYOUTS", "CAPTION_MODES", "CLASSIFIER_METHODS"]

LAYOUTS = ("auto", "manifest", "folders", "esc50", "urbansound8k", "pattern")


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
    exhausted: str = opt("drop", "a caption chain still rejected after the last round: drop (it adds nothing: "
                         "only clips CLAP accepted join the set) or best (its best-scoring clip joins the set, "
                         "status kept_best, so the set has k*n clips even when the filter rejects most; on the "
                         "world grid those clips were as off-label as the rejected ones)", choices=("best", "drop"))
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


