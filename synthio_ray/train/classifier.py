"""Fine-tuning the AST classifier: the epoch loop as plain functions, and its Ray Train worker loop.

``fit(model, train, val, opts)`` trains for ``opts.epochs`` epochs on ``train.epoch(e)`` (a
``FeatureSet``, the same every epoch, or a ``TrainingSet`` whose augmented copies are drawn afresh for
each epoch, featurised before it) and scores the **validation** split after each; the weights of the
best epoch (highest val accuracy, or mAP for multi-label sets; the first one on ties) are kept.
``evaluate`` then scores the test split once with those weights. The test split never influences
training or selection (the authors' script selected on test).

Recipe (AST's, as in NOTES.md): Adam(W) at ``lr``, weight decay ``weight_decay``, the learning rate
multiplied by ``lr_decay`` every epoch from ``lr_decay_start`` on; cross-entropy (single-label) or
binary cross-entropy (multi-label); shuffled mini-batches of ``batch_size`` (over all workers).

``train_loop_per_worker(config)`` is what ``TorchTrainer`` runs: every worker loads the feature files,
wraps the model with ``ray.train.torch.prepare_model`` (DDP when ``world > 1``), rebuilds the training
set (the fixed rows' file and, for a classic method, its ``AugmentedCopies``, featurised per epoch
through the shared feature cache, each rank computing its share of the misses) and trains on its shard
of each epoch's permutation (padded so every rank runs the same number of steps); every rank scores the
whole validation split (so all agree on the best epoch) and reports the epoch's metrics; rank 0 then
tests the best weights (unless no test file is given: a searched candidate, tested later only if
chosen) and reports the final result with a checkpoint holding ``result.json`` (and the model in
``model/`` when asked), so ``Result.metrics`` / ``Result.checkpoint`` are set (Ray Train V2).
"""
from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from synthio_ray.evaluate.metrics import classification_metrics, primary_metric
from synthio_ray.ids import stable_int
from synthio_ray.train.classifier_data import FeatureCache, FeatureSet, TrainingSet

__all__ = ["FitOptions", "FitResult", "fit", "evaluate", "evaluate_saved", "predict_probs", "lr_at",
           "train_loop_per_worker", "RESULT_FILE"]

RESULT_FILE = "result.json"


@dataclass
class FitOptions:
    labels: list[str]
    multilabel: bool = False
    epochs: int = 30
    lr: float = 1e-4
    batch_size: int = 24
    weight_decay: float = 5e-7
    lr_decay: float = 0.85
    lr_decay_start: int = 5
    seed: int = 0
    eval_batch_size: int = 32

    @property
    def metric(self) -> str:
        return primary_metric(self.multilabel)


@dataclass
class FitResult:
    curve: list[dict]          # per epoch: epoch, lr, train_loss, val metrics (no per-class dict)
    best_epoch: int            # 1-based
    best_val: dict             # full validation metrics of the best epoch
    best_state: dict           # state_dict of the best epoch (CPU tensors)
    metric: str


def lr_at(epoch: int, opts: FitOptions) -> float:
    """Learning rate of 1-based ``epoch``: ``lr`` before ``lr_decay_start``, then times ``lr_decay`` per epoch."""
    return opts.lr * opts.lr_decay ** max(0, epoch - opts.lr_decay_start + 1)


def _loss(logits: torch.Tensor, y: torch.Tensor, multilabel: bool) -> torch.Tensor:
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, y)
    return F.cross_entropy(logits, y.argmax(dim=1))


@torch.no_grad()
def predict_probs(model: Any, x: torch.Tensor, batch_size: int, multilabel: bool) -> np.ndarray:
    """AST features ``(N, frames, mel)`` -> probabilities ``(N, C)`` (sigmoid or softmax)."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for i in range(0, len(x), batch_size):
            logits = model(input_values=x[i:i + batch_size].to(device)).logits.float()
            out.append((torch.sigmoid(logits) if multilabel else torch.softmax(logits, -1)).cpu().numpy())
    finally:
        model.train(was)
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels), np.float32)


def evaluate(model: Any, data: FeatureSet, opts: FitOptions) -> dict:
    """Metrics of ``model`` on ``data`` (see ``synthio_ray.evaluate.metrics.classification_metrics``)."""
    probs = predict_probs(model, data.x, opts.eval_batch_size, opts.multilabel)
    return classification_metrics(probs, data.y.numpy(), opts.labels, opts.multilabel)


def evaluate_saved(model_dir: str | Path, data: FeatureSet, opts: FitOptions, device: str = "cpu") -> dict:
    """``evaluate`` with the model saved in ``model_dir`` (``save_pretrained``), on ``device``."""
    from transformers import ASTForAudioClassification

    from synthio_ray.models.base import pick_device

    model = ASTForAudioClassification.from_pretrained(model_dir).to(pick_device(device)).eval()
    return evaluate(model, data, opts)


def _mean_over_workers(value: float, world: int) -> float:
    if world == 1:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / world


def fit(model: Any, train: FeatureSet | TrainingSet, val: FeatureSet, opts: FitOptions, *, module: Any = None,
        rank: int = 0,
        world: int = 1, on_epoch: Callable[[dict], None] | None = None) -> FitResult:
    """Train ``model`` (an ``ASTForAudioClassification``), selecting the epoch on ``val``.

    ``module``: what the forward pass goes through (the DDP wrapper on Ray Train; default ``model``).
    ``on_epoch(row)`` is called after each epoch with the curve row (with ``aug_draw`` and ``aug_digest``,
    the draw of augmented copies the epoch trained on, when ``train`` has them). Leaves ``model`` holding
    the best epoch's weights."""
    module = module if module is not None else model
    device = next(model.parameters()).device
    torch.manual_seed(stable_int("classifier-init", opts.seed, rank))
    opt = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay, betas=(0.95, 0.999))
    n = len(train)
    per_rank = max(1, math.ceil(opts.batch_size / world))
    curve: list[dict] = []
    best: tuple[float, int, dict, dict] | None = None
    for epoch in range(1, opts.epochs + 1):
        lr = lr_at(epoch, opts)
        for g in opt.param_groups:
            g["lr"] = lr
        order = torch.randperm(n, generator=torch.Generator().manual_seed(stable_int("classifier-order", opts.seed,
                                                                                      epoch)))
        if world > 1:  # pad to a multiple of the world size: every rank runs the same number of steps
            pad = (-n) % world
            order = torch.cat([order, order[:pad]])[rank::world]
        t0, losses = time.perf_counter(), []
        data = train.epoch(epoch)
        if len(data) != n:
            raise RuntimeError(f"epoch {epoch}: the training set has {len(data)} rows, not {n}")
        module.train()
        for i in range(0, len(order), per_rank):
            idx = order[i:i + per_rank]
            logits = module(input_values=data.x[idx].to(device)).logits
            loss = _loss(logits.float(), data.y[idx].to(device), opts.multilabel)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        val_metrics = evaluate(model, val, opts)
        score = _mean_over_workers(float(val_metrics[opts.metric]), world)
        row = {"epoch": epoch, "lr": lr, "train_loss": _mean_over_workers(float(np.mean(losses)), world),
               **{k: v for k, v in val_metrics.items() if k != "per_class_accuracy"},
               **data.info, "seconds": time.perf_counter() - t0}
        row[opts.metric] = score
        curve.append(row)
        if best is None or score > best[0]:
            state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            best = (score, epoch, val_metrics, state)
        if on_epoch is not None:
            on_epoch(dict(row, best_epoch=best[1], val_best=best[0]))
    assert best is not None
    model.load_state_dict(best[3])
    return FitResult(curve=curve, best_epoch=best[1], best_val=best[2], best_state=best[3], metric=opts.metric)


def _say(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def train_loop_per_worker(config: dict) -> None:
    """Ray Train worker. ``config``: ``features`` {train, val, test: FeatureSet files; test may be None},
    ``augmented`` (None, or {copies: AugmentedCopies, at: gold rows, cache: feature cache folder}),
    ``options`` (FitOptions as a dict), ``model`` (AST path), ``threads``, ``save_model``, ``log``."""
    import logging

    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    from synthio_ray.models.classifier_ast import load_ast_classifier

    import ray.train.v2._internal.execution.context as train_context

    for name in ("ray.train", train_context.__file__):  # Ray Train V2 logs every report at INFO otherwise
        logging.getLogger(name).setLevel(logging.WARNING)
    import transformers

    transformers.logging.set_verbosity_error()  # the head re-initialisation report, once per worker
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, int(config.get("threads", 1))))
    opts = FitOptions(**config["options"])
    device = ray.train.torch.get_device()
    model, fe = load_ast_classifier(config["model"], opts.labels, opts.multilabel, "cpu", opts.seed)
    module = ray.train.torch.prepare_model(model)  # moves to device; DDP when world > 1
    model = getattr(module, "module", module)
    train = FeatureSet.load(config["features"]["train"])
    aug = config.get("augmented")
    if aug:
        train = TrainingSet(train, aug["at"], aug["copies"], FeatureCache(aug["cache"], fe), rank, world)
    val = FeatureSet.load(config["features"]["val"])

    def on_epoch(row: dict) -> None:
        if rank == 0 and config.get("log", True):
            _say(f"[classifier] epoch {row['epoch']}/{opts.epochs}: loss {row['train_loss']:.4f} val "
                 f"{opts.metric} {row[opts.metric]:.4f} (best {row['val_best']:.4f} @ {row['best_epoch']})")
        ray.train.report({k: v for k, v in row.items() if isinstance(v, (int, float))})

    t0 = time.perf_counter()
    res = fit(model, train, val, opts, module=module, rank=rank, world=world, on_epoch=on_epoch)
    seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        checkpoint = None
        final: dict = {"done": 1, "best_epoch": res.best_epoch, "val_best": res.best_val[opts.metric]}
        if rank == 0:
            test = None
            if config["features"].get("test"):
                test = evaluate(model, FeatureSet.load(config["features"]["test"]), opts)
                final["test_" + opts.metric] = test[opts.metric]
            result = {"curve": res.curve, "best_epoch": res.best_epoch, "val": res.best_val, "test": test,
                      "metric": opts.metric, "seconds": seconds, "device": str(device), "world": world}
            (Path(d) / RESULT_FILE).write_text(json.dumps(result))
            if config.get("save_model"):
                model.save_pretrained(Path(d) / "model")
                fe.save_pretrained(Path(d) / "model")
            checkpoint = Checkpoint.from_directory(d)
        ray.train.report(final, checkpoint=checkpoint)


def options_dict(opts: FitOptions) -> dict:
    return asdict(opts)


def fit_local(model_path: str, train: FeatureSet | TrainingSet, val: FeatureSet, test: FeatureSet | None,
              opts: FitOptions, device: str = "cpu", on_epoch: Callable[[dict], None] | None = None,
              save_model: Path | None = None) -> dict:
    """The same training in this process (no Ray): -> ``result`` as ``result.json`` holds it (``test``
    None when no test set is given)."""
    from synthio_ray.models.classifier_ast import load_ast_classifier

    model, fe = load_ast_classifier(model_path, opts.labels, opts.multilabel, device, opts.seed)
    t0 = time.perf_counter()
    res = fit(model, train, val, opts, on_epoch=on_epoch)
    seconds = time.perf_counter() - t0
    test_metrics = evaluate(model, test, opts) if test is not None else None
    if save_model is not None:
        model.save_pretrained(save_model)
        fe.save_pretrained(save_model)
    return {"curve": res.curve, "best_epoch": res.best_epoch, "val": res.best_val, "test": test_metrics,
            "metric": opts.metric, "seconds": seconds, "device": str(device), "world": 1}


def fit_ray_train(model_path: str, feature_files: dict[str, str | None], opts: FitOptions, storage: Path, name: str,
                  workers: int = 1, cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0,
                  save_model: Path | None = None, log: bool = True, augmented: dict | None = None) -> dict:
    """The training on Ray Train (``TorchTrainer`` with ``workers`` DDP workers) -> ``result``.
    ``augmented``: see ``train_loop_per_worker``."""
    import shutil

    from ray.train import FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = {"CPU": cpus_per_worker}
    if gpus_per_worker:
        resources["GPU"] = gpus_per_worker
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"features": feature_files, "options": options_dict(opts), "model": model_path,
                           "threads": max(1, int(cpus_per_worker)), "save_model": save_model is not None,
                           "log": log, "augmented": augmented},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus_per_worker > 0, resources_per_worker=resources),
        run_config=RunConfig(name=name, storage_path=str(Path(storage).resolve()),
                             failure_config=FailureConfig(max_failures=0),
                             logging_config=LoggingConfig(log_level="WARNING")),
    )
    result = trainer.fit()
    if result.error is not None:
        raise RuntimeError(f"classifier training failed: {result.error}")
    if result.checkpoint is None:
        raise RuntimeError("classifier training finished without its final checkpoint")
    with result.checkpoint.as_directory() as d:
        out = json.loads((Path(d) / RESULT_FILE).read_text())
        if save_model is not None:
            if save_model.exists():
                shutil.rmtree(save_model)
            shutil.copytree(Path(d) / "model", save_model)
    out["ray_metrics"] = dict(result.metrics or {})
    return out
