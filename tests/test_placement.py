"""Where models run: the production config puts every model on a GPU in every job; a large model left on CPU
is a warning naming the key (printed, and in the dataset card); large models never load in the driver; the
vLLM engine's placement and batch size; the cached-answer pass-through reserves no GPU; the worker env."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthio_ray import placement
from synthio_ray.config import ConfigError, load_config
from synthio_ray.placement import JOBS, model_uses, placement_warnings

REPO = Path(__file__).resolve().parents[1]
PRODUCTION = REPO / "configs" / "production.yaml"
DEFAULT = REPO / "configs" / "tiny.yaml"


def prod(*overrides: str):
    return load_config(PRODUCTION, list(overrides))


# ---------------------------------------------------------------------------------------------- the rules

def test_production_puts_every_model_on_a_gpu_in_every_job():
    cfg = prod()
    expected = {"augment": {"models.t2a", "models.clap", "models.captioner"},
                "align": {"models.t2a"},
                "train_classifier": {"models.classifier", "models.clap"},
                "sweep": {"models.t2a", "models.clap", "models.captioner", "models.classifier"},
                "grid": {"models.t2a", "models.clap", "models.captioner", "models.classifier"}}
    for job in JOBS:
        uses = model_uses(cfg, job)
        assert {u.model for u in uses} == expected[job], job
        assert all(u.gpus > 0 and not u.on_cpu for u in uses), (job, [u for u in uses if u.on_cpu])
        assert placement_warnings(cfg, job) == [], job
    # the LLM is vLLM: the engine takes its own GPUs, on the node type that has vLLM
    assert cfg.models.llm.backend == "vllm" and cfg.models.llm.accelerator_type == "L40S"


@pytest.mark.parametrize("override, job, key", [
    ("resources.t2a_gpus=0", "augment", "resources.t2a_gpus=1"),
    ("resources.clap_gpus=0", "augment", "resources.clap_gpus=0.25"),
    ("resources.captioner_gpus=0", "augment", "resources.captioner_gpus=1"),
    ("align.gpus_per_worker=0", "align", "align.gpus_per_worker=1"),
    ("resources.t2a_gpus=0", "align", "resources.t2a_gpus=1"),
    ("train_classifier.gpus_per_worker=0", "train_classifier", "train_classifier.gpus_per_worker=1"),
    ("resources.clap_gpus=0", "train_classifier", "resources.clap_gpus=0.25"),
    ("sweep.trial_gpus=0", "sweep", "sweep.trial_gpus=1"),
    ("grid.trial_gpus=0", "grid", "grid.trial_gpus=1"),
    ("resources.clap_gpus=0", "grid", "resources.clap_gpus=0.25"),
    ("models.t2a.device=cpu", "augment", "models.t2a.device=auto"),
])
def test_a_large_model_left_on_cpu_is_a_warning_naming_the_key(override, job, key):
    cfg = prod(override)
    lines = placement_warnings(cfg, job)
    assert len(lines) >= 1 and any(key in line for line in lines), lines
    line = next(line for line in lines if key in line)
    model = line.split()[1]
    assert line.startswith("WARNING: models.") and "runs on CPU" in line
    path = {"models.t2a": cfg.models.t2a.path, "models.clap": cfg.models.clap.path,
            "models.captioner": cfg.models.captioner.path, "models.classifier": cfg.models.classifier.path}[model]
    assert f"({path})" in line


def test_the_transformers_llm_and_the_local_classifier_backend_are_covered(monkeypatch):
    cfg = prod("models.llm.backend=transformers", "resources.llm_gpus=0")
    assert any("models.llm (Qwen/Qwen2.5-7B-Instruct)" in w and "resources.llm_gpus=1" in w
               for w in placement_warnings(cfg, "augment"))
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = prod("train_classifier.backend=local")
    assert any("train_classifier.backend=ray_train" in w for w in placement_warnings(cfg, "train_classifier"))
    # with ray_train each grid trial's workers ask for the GPU, not the trial
    cfg = prod("grid.backend=ray_train", "grid.trial_gpus=0")
    assert placement_warnings(cfg, "grid") == []
    assert placement_warnings(prod("grid.backend=ray_train", "train_classifier.gpus_per_worker=0"), "grid")


def test_small_models_on_cpu_are_fine_and_size_decides_for_local_folders(zoo, tmp_path):
    cfg = load_config(DEFAULT)
    assert all(placement_warnings(cfg, job) == [] for job in JOBS)   # the zoo on CPU: as meant
    assert not placement.is_large("zoo:t2a") and not placement.is_large(str(zoo("t2a")))
    assert placement.is_large("stabilityai/stable-audio-open-1.0")   # a hub id is a real checkpoint
    big = tmp_path / "real-clap"
    big.mkdir()
    (big / "config.json").write_text("{}")
    with open(big / "model.safetensors", "wb") as f:   # sparse: the size of a real checkpoint, no disk used
        f.truncate(placement.LARGE_MODEL_BYTES)
    assert placement.is_large(str(big))
    lines = placement_warnings(load_config(DEFAULT, [f"models.clap.path={big}"]), "augment")
    assert lines == [f"WARNING: models.clap ({big}) runs on CPU for the CLAP fine-tuning and scoring of augment: "
                     f"set resources.clap_gpus=0.25 (a share of a GPU) to put it on a GPU"]


def test_warnings_are_printed(capsys):
    lines = placement.print_placement_warnings(prod("resources.t2a_gpus=0"), "augment")
    assert capsys.readouterr().err.splitlines() == lines and len(lines) == 1


def test_accelerator_type_is_checked():
    with pytest.raises(ConfigError, match="models.llm.accelerator_type"):
        load_config(None, ["models.llm.accelerator_type=L40 S"])


# ---------------------------------------------------------------------------------------------- vLLM

def test_vllm_engine_gets_its_accelerator_type_and_its_own_batch_size():
    from synthio_ray.models.llm_vllm import vllm_processor_config

    cfg = prod("models.llm.path=zoo:llm", "models.llm.batch_size=8")
    try:
        config = vllm_processor_config(cfg.models.llm)      # the config object only: nothing is built
    except ImportError as e:  # pragma: no cover - as in test_llm
        pytest.skip(f"vLLMEngineProcessorConfig needs vllm installed here: {e}")
    assert config.accelerator_type == "L40S"
    assert config.batch_size == 64 == cfg.models.llm.engine_batch_size   # not models.llm.batch_size (8)
    config = vllm_processor_config(load_config(None, ["models.llm.backend=vllm",
                                                      "models.llm.engine_batch_size=256"]).models.llm)
    assert config.batch_size == 256 and config.accelerator_type is None


def test_cached_answers_pass_through_without_a_gpu(ray_local, tmp_path):
    """vLLM backend, LLM actors configured with a GPU, every answer cached: the rows pass through the stage on
    a CPU actor (a GPU request on this GPU-less machine would never be scheduled), and no processor is built."""
    from synthio_ray.pipeline import augment as aug
    from synthio_ray.pipeline.llm_stages import ComponentExtractor

    cfg = load_config(DEFAULT, ["models.llm.backend=vllm", "resources.llm_gpus=1", "ray.progress=off"])
    df = pd.DataFrame({"id": [f"g{i}" for i in range(5)], "labels": [["dog"], ["rain"]] * 2 + [["dog"]],
                       "gold_caption": [f"a sound {i}" for i in range(5)]})
    kwargs = dict(cfg=cfg, cache_dir=str(tmp_path / "llm_cache"), chat_model=None)
    probe = ComponentExtractor(**kwargs)
    items, _ = probe.prompts(df)
    for i, it in enumerate(items):
        probe.cache.put(probe.cache_key(it), {"value": {"events": [f"event {i}"], "scenes": ["a street"]},
                                              "error": None, "attempts": 1})
    ds = aug._llm_rows(cfg, df, ComponentExtractor, kwargs)
    asks = {op.name: op.ray_remote_args for op in ds._logical_plan.dag.post_order_iter()
            if hasattr(op, "ray_remote_args")}
    assert asks and all(not a.get("num_gpus") for a in asks.values()), asks
    out = aug._collect(ds)
    assert list(out["id"]) == list(df["id"]) and [e[0] for e in out["events"]] == [f"event {i}" for i in range(5)]


# ---------------------------------------------------------------------------------------------- the driver

def test_worker_runtime_env_forwards_the_hub_token_unless_the_job_sets_it():
    from synthio_ray.ray_hooks import worker_runtime_env

    env = worker_runtime_env("/repo", local=False, environ={"HF_TOKEN": "hf_x", "HF_HOME": "/mnt/shared/hf"})
    assert env == {"env_vars": {"PYTHONPATH": "/repo", "HF_TOKEN": "hf_x", "HF_HOME": "/mnt/shared/hf"}}
    assert "HF_TOKEN" not in worker_runtime_env("/repo", local=False, environ={})["env_vars"]
    job = json.dumps({"runtime_env": {"working_dir": "gcs://x.zip", "env_vars": {"HF_TOKEN": "hf_x"}}})
    env = worker_runtime_env("/repo", local=True, environ={"HF_TOKEN": "hf_x", "RAY_JOB_CONFIG_JSON_ENV_VAR": job})
    assert env["env_vars"] == {"PYTHONPATH": "/repo"}   # Ray refuses to merge a second value of HF_TOKEN
    assert env["worker_process_setup_hook"] == "synthio_ray.ray_hooks.quiet_local_worker"


def test_remote_clap_matches_the_local_one(ray_local, zoo, make_wav, tmp_path):
    from synthio_ray.models.clap import load_clap
    from synthio_ray.models.clap_remote import CHUNK, RemoteClap

    cfg = load_config(None, [f"models.clap.path={zoo('clap')}"])
    local, remote = load_clap(cfg.models.clap), RemoteClap(cfg.models.clap, cpus=0.5)
    waves = [np.random.default_rng(i).standard_normal(8000).astype(np.float32) * 0.1 for i in range(CHUNK + 3)]
    texts = ["a dog barks", "rain on a roof"]
    assert remote.model_id == local.model_id and remote.sample_rate == local.sample_rate
    assert np.allclose(remote.embed_audio(waves, 16000), local.embed_audio(waves, 16000), atol=1e-5)
    assert np.allclose(remote.embed_text(texts), local.embed_text(texts), atol=1e-6)
    assert np.allclose(remote.score(waves[:2], 16000, texts, form="sigmoid"),
                       local.score(waves[:2], 16000, texts, form="sigmoid"), atol=1e-5)
    remote.close()


def _no_driver_loads(monkeypatch):
    """Loading any model in this (the driver's) process fails the test; actors import their own copies."""
    def refuse(*a, **k):
        raise AssertionError("a large model was loaded in the driver")
    import synthio_ray.models.captioner as cap
    import synthio_ray.models.clap as clap
    import synthio_ray.models.llm as llm
    import synthio_ray.models.t2a as t2a

    for mod, name in ((cap, "load_captioner"), (clap, "load_clap"), (llm, "load_chat_model"), (t2a, "load_t2a")):
        monkeypatch.setattr(mod, name, refuse)


def test_large_models_on_cpu_never_load_in_the_driver_and_the_card_says_so(ray_local, zoo, tmp_path, monkeypatch):
    """Every model counts as large here (threshold 0): the captioner, the component extractor, the CLAP
    fine-tuning and the zero-shot CLAP all run on Ray workers, and the dataset card carries the warnings."""
    from synthio_ray.data.prepare import prepare_dataset
    from synthio_ray.models.clap_remote import RemoteClap, load_placed_clap
    from synthio_ray.pipeline.augment import run_augment
    from synthio_ray.pipeline.card import write_card

    monkeypatch.setattr(placement, "LARGE_MODEL_BYTES", 0)
    small = ["data.embedded_clips_per_class=3", "data.embedded_seconds=1.0", "data.n=8", "augment.k=1",
             "augment.rounds=0", "models.t2a.steps=2", "models.llm.max_tokens=12", "ray.progress=off",
             "models.captioner.max_tokens=8", "models.clap.finetune_epochs=3"]
    prepared = tmp_path / "prepared"
    prepare_dataset(load_config(DEFAULT, small), prepared)
    cfg = load_config(DEFAULT, small + [
        f"augment.data={prepared}", "models.clap.finetune=last", "models.captioner.backend=transformers",
        f"models.captioner.path={zoo('captioner')}", f"models.llm.path={zoo('llm')}",
        f"models.clap.path={zoo('clap')}", f"models.t2a.path={zoo('t2a')}"])
    warnings = placement_warnings(cfg, "augment")
    assert {w.split()[1] for w in warnings} == {"models.t2a", "models.clap", "models.llm", "models.captioner"}
    _no_driver_loads(monkeypatch)
    out = tmp_path / "out"
    report = run_augment(cfg, out)
    assert report.rows == 8 and (out / "clap_finetuned" / "metrics.json").is_file()
    plan = pd.read_parquet(out / "plan" / "gold.parquet")   # the captioner ran (on its actor) for every clip
    assert not plan["gold_caption_error"].fillna("").str.startswith("captioner failed").any()
    write_card(cfg, out)
    card = (out / "README.md").read_text()
    assert "## Placement warnings" in card and all(w in card for w in warnings)
    clap = load_placed_clap(cfg)      # zero-shot / retrieval / analyses CLAP: on an actor too
    assert isinstance(clap, RemoteClap) and clap.embed_text(["a dog"]).shape[0] == 1
    clap.close()
