"""jobs/download.py offline: the folders already in the destination are used, a missing one is refused by key."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from synthio_ray.config import load_config

REPO = Path(__file__).resolve().parents[1]
HUB = ["models.t2a.path=stabilityai/stable-audio-open-1.0", "models.clap.path=laion/clap-htsat-unfused",
       "models.classifier.path=MIT/ast-finetuned-audioset-10-10-0.4593"]


def _job():
    spec = importlib.util.spec_from_file_location("download_job", REPO / "jobs" / "download.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_offline_with_a_model_missing_is_refused_by_key(tmp_path, capsys, monkeypatch, zoo):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dest = tmp_path / "models"
    shutil.copytree(zoo("t2a"), dest / "stabilityai" / "stable-audio-open-1.0")   # one there, two not
    with pytest.raises(SystemExit) as e:
        _job().main(["--out", str(dest), *HUB])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "models.clap.path: laion/clap-htsat-unfused is not in" in err and "HF_HUB_OFFLINE=1" in err
    assert "models.classifier.path: MIT/ast-finetuned-audioset-10-10-0.4593 is not in" in err
    assert "models.t2a.path" not in err


def test_offline_uses_the_folders_already_there_and_prints_the_overrides(tmp_path, capsys, zoo):
    dest = tmp_path / "models"
    for name, repo in (("t2a", "stabilityai/stable-audio-open-1.0"), ("clap", "laion/clap-htsat-unfused"),
                       ("classifier", "MIT/ast-finetuned-audioset-10-10-0.4593")):
        shutil.copytree(zoo(name), dest / repo)
    assert _job().main(["--out", str(dest), *HUB, f"models.llm.path={zoo('llm')}"]) == 0
    out = capsys.readouterr().out
    keys = (dest / "overrides.txt").read_text().split()
    assert keys == [f"models.t2a.path={dest / 'stabilityai/stable-audio-open-1.0'}",
                    f"models.clap.path={dest / 'laion/clap-htsat-unfused'}",
                    f"models.classifier.path={dest / 'MIT/ast-finetuned-audioset-10-10-0.4593'}"]
    assert " ".join(keys) in out and "models.llm.path          local" in out
    cfg = load_config(None, HUB + keys)   # the overrides point a job at real, loadable folders
    from synthio_ray.models.clap import load_clap

    assert load_clap(cfg.models.clap).model_id == str(dest / "laion/clap-htsat-unfused")


def test_patterns_skip_the_other_formats():
    from synthio_ray.models.download import hub_models

    cfg = load_config(REPO / "configs" / "production.yaml")
    models = {m.key: m for m in hub_models(cfg)}
    assert set(models) == {"models.t2a.path", "models.clap.path", "models.llm.path", "models.captioner.path",
                           "models.classifier.path"}
    # Stable Audio Open's repo holds the diffusers folders and a stable-audio-tools copy (model.ckpt,
    # model.safetensors at the root, 4.8 GB each): the diffusers backend takes only its own
    assert {"*.ckpt", "model.safetensors", "model_config.json"} <= set(models["models.t2a.path"].ignore)
    sat = hub_models(load_config(REPO / "configs" / "production.yaml", ["models.t2a.backend=stable_audio_tools"]))
    assert sat[0].allow == ("model_config.json", "*.safetensors") and "*/*" in sat[0].ignore
    assert "models.llm.path" not in {m.key for m in hub_models(load_config(None, [
        "models.llm.backend=http", "models.llm.url=http://x:8000/v1", "models.llm.path=served"]))}
