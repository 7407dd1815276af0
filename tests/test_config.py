"""Typed config: YAML + dotted overrides, clear errors naming the key, --help lists every key."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from synthio_ray.cli import parse_job_args
from synthio_ray.config import Config, ConfigError, describe_options, load_config, save_config

REPO = Path(__file__).resolve().parents[1]


def problems_of(*args, **kw) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(*args, **kw)
    return e.value.problems


def test_defaults_and_overrides_are_typed():
    cfg = load_config(None, ["data.n=100", "seed=3", "data.val_folds=[1, 2]", "data.source=null",
                             "data.test_fraction=0.25", "data.audio_extensions=.wav,.flac"])
    assert cfg.data.n == 100 and isinstance(cfg.data.n, int)
    assert cfg.seed == 3
    assert cfg.data.val_folds == [1, 2]
    assert cfg.data.source is None
    assert cfg.data.test_fraction == 0.25
    assert cfg.data.audio_extensions == [".wav", ".flac"]


def test_yaml_then_overrides_win(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"seed": 5, "data": {"n": 20, "layout": "folders"}}))
    cfg = load_config(f, ["data.n=30"])
    assert (cfg.seed, cfg.data.n, cfg.data.layout) == (5, 30, "folders")


def test_unknown_key_names_key_and_suggests(tmp_path):
    (p,) = problems_of(None, ["data.nn=3"])
    assert p.startswith("data.nn:") and "did you mean 'data.n'" in p
    f = tmp_path / "c.yaml"
    f.write_text("data:\n  sourse: x\n")
    (p,) = problems_of(f)
    assert "data.sourse" in p and "data.source" in p


def test_wrong_type_range_choice_and_missing_path_all_reported():
    problems = problems_of(None, ["data.n=abc", "data.val_fraction=1.5", "data.layout=tree",
                                  "data.source=/no/such/dir", "seed=-1"])
    text = "\n".join(problems)
    assert "data.n: expected integer" in text
    assert "data.val_fraction: expected a value < 1.0" in text
    assert "data.layout: expected one of auto, manifest" in text
    assert "data.source: path not found: /no/such/dir" in text
    assert "seed: expected a value >= 0" in text
    assert len(problems) == 5


def test_cross_field_checks():
    text = "\n".join(problems_of(None, ["data.layout=pattern"]))
    assert "data.pattern" in text and "label" in text
    text = "\n".join(problems_of(None, ["data.pattern=([a-z]+"]))
    assert "not a valid regex" in text
    text = "\n".join(problems_of(None, ["data.pattern=(?P<cls>[a-z]+)"]))
    assert "named group 'label'" in text
    text = "\n".join(problems_of(None, ["data.val_folds=[4]", "data.test_folds=[4, 5]"]))
    assert "overlap" in text


def test_yaml_type_errors(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("data: 3\n")
    assert "data: expected a section" in problems_of(f)[0]
    f.write_text("- a\n- b\n")
    assert "must hold a mapping" in problems_of(f)[0]
    f.write_text("data: {n: true}\n")
    assert "data.n: expected integer" in problems_of(f)[0]
    assert "file not found" in problems_of(tmp_path / "none.yaml")[0]


def test_override_syntax_errors():
    assert "key=value" in problems_of(None, ["data.n"])[0]
    assert "is a section" in problems_of(None, ["data=3"])[0]


def test_saved_config_reloads_identically(tmp_path):
    cfg = load_config(None, ["data.n=77", "data.pattern=(?P<label>\\w+)_"])
    p = save_config(cfg, tmp_path / "config.yaml")
    assert load_config(p) == cfg


def _leaf_fields(cls, prefix=""):
    """(dotted key, field) of every leaf of the Config dataclass tree, walked here independently."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _leaf_fields(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f


def test_every_key_is_described():
    leaves = dict(_leaf_fields(Config))
    assert len(leaves) > 100 and {"seed", "data.n", "ray.address", "augment.k"} <= set(leaves)
    undocumented = sorted(k for k, f in leaves.items() if not f.metadata.get("help", "").strip())
    assert not undocumented, f"keys without a description: {undocumented}"
    described = {}
    for line in describe_options():
        if line.startswith("  "):
            key, _, rest = line[2:].partition(" (")
            described[key] = rest.split("): ", 1)[1] if "): " in rest else ""
    assert set(described) == set(leaves)             # --help lists every key, once
    assert {k for k, text in described.items() if not text.strip()} == set()
    assert all(described[k] == leaves[k].metadata["help"] for k in leaves)


def test_cli_flags_map_to_keys_and_errors_exit_2(capsys):
    flags = {"--n": ("data.n", "n"), "--seed": ("seed", "seed")}
    cfg = parse_job_args(["--n", "12", "--seed", "4", "data.layout=folders"], "job", "d", flags)
    assert (cfg.data.n, cfg.seed, cfg.data.layout) == (12, 4, "folders")
    with pytest.raises(SystemExit) as e:
        parse_job_args(["--n", "0"], "job", "d", flags)
    assert e.value.code == 2
    assert "data.n: expected a value >= 1" in capsys.readouterr().err


def test_job_help_lists_options():
    out = subprocess.run([sys.executable, "jobs/prepare.py", "--help"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert "--source" in out and "data.n (integer" in out and "data.val_fraction" in out


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    # dataset and retrieval-pool paths in the examples point at the user's disk; everything else must check out
    load_config(path, ["data.source=null", "train_classifier.retrieval_pool=null"])
