"""augment.threshold=auto: the rule, the calibration against the filter's own scores on the tiny zoo CLAP,
the config, and how the sweep reads the p an output was judged with (the full augment run: test_augment)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from synthio_ray.config import ClapConfig, ConfigError, load_config
from synthio_ray.data.audio import write_audio
from synthio_ray.experiments.sweep import default_thresholds, sweep_thresholds
from synthio_ray.models.clap import load_clap
from synthio_ray.pipeline.stages import Scorer
from synthio_ray.pipeline.threshold import applied_threshold, calibrate, threshold_rule

from conftest import tone

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clap():
    return load_clap(ClapConfig(path="zoo:clap", device="cpu", batch_size=4))


def test_rule_takes_the_off_label_quantile_when_apart_and_caps_at_the_on_label_one():
    rng = np.random.default_rng(0)
    off = rng.normal(0.0, 0.05, 2000)
    apart = rng.normal(0.5, 0.05, 100)
    p, by = threshold_rule(apart, off)
    assert by == "off" and p == pytest.approx(np.quantile(off, 0.95))
    assert np.mean(off >= p) == pytest.approx(0.05, abs=1e-3) and np.mean(apart >= p) == 1.0
    overlapping = rng.normal(0.05, 0.05, 100)   # CLAP barely tells the labels apart
    p, by = threshold_rule(overlapping, off)
    assert by == "on" and p == pytest.approx(np.quantile(overlapping, 0.10))
    assert np.mean(overlapping >= p) >= 0.9     # never rejects more than ~10 % of real-like clips
    # a monotone map of the scores (cosine -> sigmoid) moves p with them
    sig = lambda x: 1 / (1 + np.exp(-14.3 * x))  # noqa: E731
    assert threshold_rule(sig(apart), sig(off))[0] == pytest.approx(sig(threshold_rule(apart, off)[0]), rel=1e-6)
    with pytest.raises(ValueError):
        threshold_rule(apart, off[:0])


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Three labels, two clips each, of different kinds (the generated clips' format: stereo 44.1 kHz)."""
    folder = tmp_path_factory.mktemp("gold")
    rows = []
    for label, freq in (("hum", 120), ("beep", 2000), ("static", None)):
        for i in range(2):
            x = tone(1.5 + i, 44100, freq or 440, channels=2, seed=i)
            if freq is None:
                x = (0.3 * np.random.default_rng(i).standard_normal(x.shape)).astype(np.float32)
            rows.append({"id": f"{label}{i}", "path": str(write_audio(folder / f"{label}{i}.flac", x, 44100)),
                         "labels": [label]})
    return folder, pd.DataFrame(rows)


@pytest.mark.parametrize("form", ["cosine", "sigmoid"])
def test_on_label_scores_are_what_the_filter_gives_those_clips(clap, clips, form):
    folder, frame = clips
    c = calibrate(clap, frame, "Sound of a {label}", form)
    assert c["on"]["n"] == 6 and c["off"]["n"] == 6 * 2
    assert c["score"] == form and c["rule"] == "p = min(q_off(0.95), q_on(0.1))"
    # the filter, scoring the same files as generated clips of their label
    cfg = load_config(None, ["augment.threshold=0.0", f"models.clap.score={form}"])
    rows = pd.DataFrame({"path": [f"{r}.flac" for r in frame["id"]], "status": ["generated"] * 6,
                         "error": [None] * 6, "labels": list(frame["labels"])})
    filtered = Scorer(cfg, folder, model=clap)(rows)["clap_score"].to_numpy()
    q = c["on"]["quantiles"]
    assert (q["0"], q["0.5"], q["1"]) == pytest.approx((filtered.min(), np.median(filtered), filtered.max()), abs=1e-6)
    assert c["on"]["mean"] == pytest.approx(filtered.mean(), abs=1e-6)
    assert sum(c["on"]["histogram"]) == 6 and sum(c["off"]["histogram"]) == 12
    assert len(c["histogram_edges"]) == len(c["on"]["histogram"]) + 1
    assert c["accepts"]["on"] == pytest.approx(np.mean(filtered >= c["p"]))


def test_multilabel_off_label_texts_share_no_label_and_one_label_is_an_error(clap, clips):
    _, frame = clips
    multi = frame.iloc[:4].assign(labels=[["hum"], ["beep"], ["hum", "beep"], ["static"]])
    c = calibrate(clap, multi, "Sound of a {label}")
    # hum: beep, static; beep: hum, static; hum+beep: static; static: hum, beep, hum+beep
    assert c["on"]["n"] == 4 and c["off"]["n"] == 2 + 2 + 1 + 3
    with pytest.raises(ValueError, match="augment.threshold to a number"):
        calibrate(clap, frame.iloc[:2], "Sound of a {label}")


def test_config_accepts_auto_and_numbers_only():
    assert load_config(None, ["augment.threshold=auto"]).augment.threshold == "auto"
    assert load_config(None, ["augment.threshold=-0.25"]).augment.threshold == -0.25
    for bad, says in (("autox", "a number in [-1, 1] or auto"), ("1.5", "<= 1.0"), ("yes", "or auto")):
        with pytest.raises(ConfigError) as e:
            load_config(None, [f"augment.threshold={bad}"])
        assert any(p.startswith("augment.threshold:") and says in p for p in e.value.problems)
    with pytest.raises(ValueError, match="calibrated before scoring"):
        Scorer(load_config(None, ["augment.threshold=auto"]), ".", model=object())


def test_sweep_reads_the_p_an_auto_output_was_judged_with(tmp_path):
    manifest = pd.DataFrame({"round": [0] * 6, "clap_score": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
                             "clap_threshold": [0.45] * 6})
    auto, fixed, bare = tmp_path / "auto", tmp_path / "fixed", tmp_path / "bare"
    for folder, t in ((auto, "auto"), (fixed, 0.35)):
        folder.mkdir()
        (folder / "config.yaml").write_text(yaml.safe_dump({"augment": {"threshold": t}}))
    (auto / "clap_threshold.json").write_text(json.dumps({"p": 0.45}))
    bare.mkdir()
    manifest.to_parquet(bare / "manifest.parquet")
    assert applied_threshold(auto) == 0.45 and applied_threshold(fixed) == 0.35 and applied_threshold(bare) == 0.45
    assert applied_threshold(tmp_path) is None
    assert sweep_thresholds(None, "auto", auto, manifest) == default_thresholds(manifest, 0.45) == [0.175, 0.25, 0.45]
    assert sweep_thresholds(None, 0.35, auto, manifest) == default_thresholds(manifest, 0.35)
    assert sweep_thresholds([0.5, 0.25, 0.5], "auto", auto, manifest) == [0.25, 0.5]   # numeric p as given
    with pytest.raises(ValueError, match="sweep.thresholds"):
        sweep_thresholds(None, "auto", tmp_path, manifest)


def test_a_clap_fine_tuned_on_the_training_clips_is_calibrated_on_the_validation_clips(clap, tmp_path):
    from synthio_ray.data.manifest import load_prepared
    from synthio_ray.data.prepare import prepare_dataset
    from synthio_ray.pipeline.threshold import resolve_threshold

    cfg = load_config(None, ["data.embedded_clips_per_class=6", "data.embedded_seconds=1.0", "data.n=8",
                             "data.val_fraction=0.2", "augment.threshold=auto", "models.clap.device=cpu"])
    prepare_dataset(cfg, tmp_path / "prepared")
    ds = load_prepared(tmp_path / "prepared")
    val, train = ds.split("val"), ds.split("train")
    assert len(val) == 8 and not set(val["id"]) & set(train["id"])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    p_val, on_val = resolve_threshold(cfg, ds, tmp_path / "a", fine_tuned=True, log=lambda s: None)
    p_train, on_train = resolve_threshold(cfg, ds, tmp_path / "b", fine_tuned=False, log=lambda s: None)
    assert (on_val["split"], on_val["key"]["ids"], on_val["note"]) == ("val", sorted(val["id"]), None)
    assert (on_train["split"], on_train["key"]["ids"]) == ("train", sorted(train["id"]))
    assert p_val == pytest.approx(calibrate(clap, val, "Sound of a {label}")["p"], abs=1e-6)
    assert p_train != p_val
    assert resolve_threshold(load_config(None, ["augment.threshold=0.2"]), ds, tmp_path) == (0.2, None)


def test_production_config_calibrates_p_and_leaves_sampling_to_the_backend(tmp_path):
    from pathlib import Path

    from synthio_ray.config import save_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "production.yaml", ["data.source=null"])
    assert cfg.augment.threshold == "auto"
    assert (cfg.models.t2a.steps, cfg.models.t2a.cfg_scale) == (None, None)
    again = load_config(save_config(cfg, tmp_path / "config.yaml"))    # a run's saved config resumes as auto
    assert again.augment.threshold == "auto" and applied_threshold(tmp_path) is None
