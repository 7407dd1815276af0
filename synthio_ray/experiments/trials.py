"""Classifier trainings as Ray Tune trials.

``run_trials(cfg, specs, storage, name)``: ``specs`` maps a trial id to ``{"cfg": config dict, "out": folder}``;
each becomes one trial of a Tune function trainable (``param_space = {"trial": grid_search(ids)}``; the specs
travel with ``tune.with_parameters``), with ``{"cpu": trial_cpus, "gpu": trial_gpus}``. Inside, the trial calls
``run_train_classifier``: with ``train_classifier.backend=local`` the loop runs in the trial process and reports
every epoch to Tune (``val_best`` is the metric); with ``ray_train`` the trial starts a ``TorchTrainer`` (Train
V2 inside a Tune function trainable, as Ray recommends; ``Tuner(trainer)`` is deprecated) and reports once at
the end. A trial whose ``OUT/metrics.json`` already holds a finished run of the same settings and the same
synthetic clips (``selection_fingerprint``) reports it again instead of retraining, so re-running a sweep or
grid resumes.

Returns one dict per trial id: ``status`` (ok | failed), ``metrics`` (the metrics.json) or ``error``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synthio_ray.config import Config, config_to_dict

__all__ = ["run_trials", "classifier_trial", "with_overrides", "prefetch_features"]


def with_overrides(cfg: Config, overrides: dict[str, Any]) -> dict:
    """The config as a dict with dotted ``overrides`` applied (values as Python objects)."""
    tree = config_to_dict(cfg)
    for dotted, value in overrides.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        if leaf not in node:
            raise KeyError(f"unknown config key {dotted}")
        node[leaf] = value
    return tree


def _numeric(row: dict) -> dict:
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def classifier_trial(config: dict, specs: dict) -> None:
    """The Tune function trainable: one classifier training (see the module docstring)."""
    from ray import tune

    from synthio_ray.config import build_config
    from synthio_ray.train.classifier_run import run_train_classifier

    spec = specs[config["trial"]]
    cfg = build_config(spec["cfg"])
    out = Path(spec["out"])
    done = out / "metrics.json"
    metrics = None
    if done.is_file():
        saved = json.loads(done.read_text())
        if saved.get("config") == spec["cfg"]["train_classifier"] and _same_synthetic(cfg, saved):
            metrics = saved
    if metrics is None:
        import warnings

        import torch
        import transformers

        transformers.logging.set_verbosity_error()  # the head re-initialisation report, once per trial
        warnings.filterwarnings("ignore", message="At least one mel filter")

        torch.set_num_threads(max(1, int(spec.get("threads", 1))))
        local = cfg.train_classifier.backend == "local"
        metrics = run_train_classifier(cfg, out, log=lambda s: None,
                                       on_epoch=(lambda row: tune.report(_numeric(row))) if local else None)
    m = metrics["metric"]
    tune.report({"done": 1, "val_best": metrics["val"][m], "test": metrics["test"][m],
                 "best_epoch": metrics["best_epoch"], "train_clips": metrics["data"]["train"]})


def _same_synthetic(cfg: Config, saved: dict) -> bool:
    """Whether a finished trial trained on the synthetic clips this one would: the same config can select
    other clips when a set was re-finalised or regenerated in the same folder."""
    from synthio_ray.train.synthetic import selection_fingerprint, synthetic_rows

    t = cfg.train_classifier
    now = selection_fingerprint(synthetic_rows(t.synthetic, t.synthetic_k, t.synthetic_threshold)) \
        if t.synthetic else None
    return (saved.get("data") or {}).get("synthetic_fingerprint") == now


def run_trials(specs: dict[str, dict], storage: Path, name: str, trial_cpus: float = 1.0,
               max_concurrent: int = 0, trial_gpus: float = 0.0) -> dict[str, dict]:
    from ray import tune

    if not specs:
        return {}
    resources = {"cpu": trial_cpus, **({"gpu": trial_gpus} if trial_gpus else {})}
    trainable = tune.with_resources(tune.with_parameters(classifier_trial, specs=specs), resources)
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(sorted(specs))},
        tune_config=tune.TuneConfig(metric="val_best", mode="max", max_concurrent_trials=max_concurrent or None,
                                    trial_dirname_creator=lambda t: str(t.config["trial"]).replace("/", "_")),
        run_config=tune.RunConfig(name=name, storage_path=str(Path(storage).resolve()), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )
    grid = tuner.fit()
    out: dict[str, dict] = {}
    for r in grid:
        tid = r.config["trial"]
        path = Path(specs[tid]["out"]) / "metrics.json"
        if r.error is None and path.is_file():
            out[tid] = {"status": "ok", "metrics": json.loads(path.read_text())}
        else:
            msg = str(r.error).strip().splitlines()[-1] if r.error is not None else "no metrics.json written"
            out[tid] = {"status": "failed", "error": msg[:300]}
    return out


def prefetch_features(cfg: Config, data_dir: Path, paths: list[str], cache_dir: Path) -> int:
    """Compute the AST features of the gold, val, test and given clips once; -> how many were computed."""
    from transformers import ASTFeatureExtractor

    from synthio_ray.data.manifest import load_prepared
    from synthio_ray.models.paths import resolve_model_path
    from synthio_ray.train.classifier_data import FeatureCache

    cache = FeatureCache(cache_dir, ASTFeatureExtractor.from_pretrained(resolve_model_path(cfg.models.classifier.path)))
    ds = load_prepared(data_dir)
    for p in [*ds.split("train")["path"], *ds.split("val")["path"], *ds.split("test")["path"], *paths]:
        cache.get(p)
    return cache.misses
