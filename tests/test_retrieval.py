"""The retrieval baseline retrieves from an outside pool (the paper: AudioSet): without
train_classifier.retrieval_pool the job and the grid stop before any work, naming the key; the in-domain
variant (the dataset's own undrawn clips) is its own method and row."""
from __future__ import annotations

import importlib.util

import pytest

from classifier_helpers import DEFAULT, REPO, TINY
from synthio_ray.config import load_config
from synthio_ray.experiments.grid import parse_row, run_grid
from synthio_ray.train.classifier_data import parse_method


def _job(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "jobs" / f"{name}.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    return job


@pytest.mark.parametrize("method", ["retrieval", "synthetic+retrieval"])
def test_train_classifier_without_a_pool_stops_at_once_naming_the_key(method, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _job("train_classifier").main(["--out", str(tmp_path / "run"), "--method", method,
                                       "--synthetic", str(tmp_path)])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "train_classifier.retrieval_pool" in err and "retrieval_in_domain" in err
    assert not (tmp_path / "run" / "prepared").exists() and not (tmp_path / "run" / "metrics.json").exists()


def test_grid_with_a_retrieval_row_and_no_pool_stops_before_any_work(tmp_path):
    cfg = load_config(DEFAULT, TINY + ["grid.methods=[gold,synthio+retrieval]"])
    with pytest.raises(ValueError, match=r"synthio\+retrieval .*train_classifier.retrieval_pool"):
        run_grid(cfg, tmp_path / "grid", log=lambda s: None)
    assert not (tmp_path / "grid").exists()


def test_in_domain_retrieval_is_its_own_row():
    assert parse_row("retrieval_in_domain") == (None, "retrieval_in_domain")
    assert parse_row("synthio+retrieval_in_domain") == ("synthio", "synthetic+retrieval_in_domain")
    a, b = parse_method("retrieval"), parse_method("retrieval_in_domain")
    assert a.retrieval and b.retrieval and not a.in_domain and b.in_domain
