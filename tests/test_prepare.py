"""jobs/prepare.py end to end: embedded default, real recordings with planted corrupt files, and the
"every input row lands in exactly one output" accounting."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from synthio_ray.config import load_config
from synthio_ray.data.manifest import load_prepared
from synthio_ray.data.prepare import prepare_dataset
from synthio_ray.world.corpus import TARGET_CLASSES, TARGET_DOMAIN

REPO = Path(__file__).resolve().parents[1]
OUTS = ("train", "val", "test", "pool", "quarantine")


def run_job(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "jobs/prepare.py", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def all_outputs(out: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(out / f"{name}.parquet") for name in OUTS}


def assert_nothing_lost(out: Path, expected_inputs: int) -> dict[str, pd.DataFrame]:
    frames = all_outputs(out)
    rows = pd.concat([f.assign(_out=name) for name, f in frames.items()])
    assert len(rows) == expected_inputs
    assert rows["source_row"].is_unique and set(rows["source_row"]) == set(range(expected_inputs))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"] == expected_inputs and sum(summary["counts"].values()) == expected_inputs
    return frames


def test_embedded_default_via_job(tmp_path):
    out = tmp_path / "prep"
    res = run_job("--out", str(out), "--n", "16", "data.embedded_clips_per_class=10")
    assert res.returncode == 0, res.stderr
    assert "80 input rows = 16 train + 8 val + 16 test + 40 pool + 0 quarantine" in res.stdout
    frames = assert_nothing_lost(out, 80)
    train = frames["train"]
    assert set(train["label"]) == set(TARGET_CLASSES)
    assert (train.groupby("label").size() == 2).all()
    assert train["caption"].notna().all() and (train["sample_rate"] == 8000).all()
    assert np.allclose(train["duration"], 2.0)
    ds = load_prepared(out)
    assert ds.domain == TARGET_DOMAIN and ds.slugs["bird chirp"] == "bird_chirp"
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["data"]["n"] == 16 and saved["out"] == str(out)
    # same command, same seed: identical draw; another seed: another draw, same test split
    again = tmp_path / "again"
    assert run_job("--out", str(again), "--n", "16", "data.embedded_clips_per_class=10").returncode == 0
    assert list(pd.read_parquet(again / "train.parquet")["id"]) == list(train["id"])
    other = tmp_path / "seed1"
    assert run_job("--out", str(other), "--n", "16", "--seed", "1",
                   "data.embedded_clips_per_class=10").returncode == 0
    assert set(pd.read_parquet(other / "train.parquet")["id"]) != set(train["id"])
    assert list(pd.read_parquet(other / "test.parquet")["id"]) == list(frames["test"]["id"])


def test_bad_config_fails_before_work(tmp_path):
    out = tmp_path / "never"
    res = run_job("--out", str(out), "data.nn=3", "--n", "-1")
    assert res.returncode == 2
    assert "data.nn: unknown key" in res.stderr and "data.n: expected a value >= 1" in res.stderr
    assert not out.exists()
    res = run_job("--out", str(out), "--n", "3")   # fewer than the 8 labels
    assert res.returncode == 2 and "n=3 is smaller than the number of labels (8)" in res.stderr


def _plant_bad_files(folder: Path) -> int:
    """Corrupt files among real recordings; returns how many were planted."""
    good = next(iter(sorted(folder.glob("*.wav"))))
    data = good.read_bytes()
    (folder / "3_truncated_0.wav").write_bytes(data[: len(data) // 3])
    (folder / "4_empty_0.wav").write_bytes(b"")
    (folder / "5_text_0.wav").write_text("RIFF? no, a text file\n")
    x = np.zeros(800, np.float32)
    x[5] = np.nan
    sf.write(folder / "6_nan_0.wav", x, 8000, subtype="FLOAT")
    shutil.copy(good, folder / "7_copy_0.wav")            # byte-identical duplicate
    (folder / "notes.txt").write_text("recorded in a kitchen")  # does not match the pattern
    return 6


def _speak(folder: Path) -> int:
    """Spoken digits from espeak-ng (several voices, speeds and formats), FSDD-style names."""
    folder.mkdir(parents=True)
    voices = ["en-us", "en-gb", "en-gb-scotland", "en-us+f3"]
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    k = 0
    for d, word in enumerate(words):
        for v, voice in enumerate(voices):
            wav = folder / f"{d}_{voice.replace('+', '')}_{v}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(130 + 25 * v), "-w", str(wav), word],
                           check=True, capture_output=True)
            if v == 1:    # some as 44.1 kHz stereo FLAC, like a different recorder
                flac = wav.with_suffix(".flac")
                subprocess.run(["sox", str(wav), "-r", "44100", "-c", "2", str(flac)], check=True)
                wav.unlink()
            k += 1
    return k


def test_flat_folder_of_real_recordings_with_corrupt_files(tmp_path):
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:   # a missing tool fails the test unless skipping was asked for
        how = "`apt-get install espeak-ng sox`; .ci/run installs them"
        if os.environ.get("SYNTHIO_ALLOW_SKIP_RECORDINGS") == "1":
            pytest.skip(f"SYNTHIO_ALLOW_SKIP_RECORDINGS=1 and {', '.join(missing)} not installed ({how})")
        pytest.fail(f"{', '.join(missing)} not installed ({how}); set SYNTHIO_ALLOW_SKIP_RECORDINGS=1 to skip")
    src = tmp_path / "digits"
    n_good = _speak(src)
    n_bad = _plant_bad_files(src)
    out = tmp_path / "prep"
    res = run_job("--source", str(src), "--pattern", r"^(?P<label>\d)_", "--n", "20", "--out", str(out))
    assert res.returncode == 0, res.stderr
    frames = assert_nothing_lost(out, n_good + n_bad)
    q = frames["quarantine"].set_index("rel_path")["reason"]
    assert q["3_truncated_0.wav"].startswith("truncated")
    assert q["4_empty_0.wav"] == "empty file (0 bytes)"
    assert q["5_text_0.wav"].startswith("not readable as audio")
    assert "NaN/Inf" in q["6_nan_0.wav"]
    assert q["7_copy_0.wav"].startswith("duplicate content")
    assert "does not match the pattern" in q["notes.txt"]
    assert len(q) == n_bad
    train = frames["train"]
    assert len(train) == 20 and train["label"].nunique() == 10
    flac = pd.concat([frames[s] for s in ("train", "val", "test", "pool")])
    flac = flac[flac["rel_path"].str.endswith(".flac")]
    assert len(flac) == 10 and (flac["sample_rate"] == 44100).all() and (flac["channels"] == 2).all()
    assert "quarantined 1: truncated" in res.stdout


def test_manifest_row_escaping_root_is_refused(make_wav, tmp_path):
    root = tmp_path / "ds"
    for i in range(6):
        make_wav(root / f"{i}.wav", seed=i)
    make_wav(tmp_path / "outside.wav", seed=99)
    lines = ["path,label,caption"] + [f"{i}.wav,{'ab'[i % 2]},clip {i}" for i in range(6)]
    lines.append("../outside.wav,a,should never be read")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    cfg = load_config(None, [f"data.source={root}", "data.n=2", "data.val_fraction=0", "data.test_fraction=0"])
    report = prepare_dataset(cfg, tmp_path / "out")
    frames = assert_nothing_lost(tmp_path / "out", 7)
    q = frames["quarantine"]
    assert len(q) == 1 and "escapes the dataset root" in q["reason"][0] and pd.isna(q["path"][0])
    assert report.counts == {"train": 2, "val": 0, "test": 0, "pool": 4, "quarantine": 1}
    assert list(frames["train"]["caption"].str.startswith("clip ")) == [True, True]


def test_multilabel_manifest(make_wav, tmp_path):
    root = tmp_path / "ds"
    labels = [["Bark", "Dog"], ["Dog"], ["Rain"], ["Rain", "Water"], ["Bark", "Dog"], ["Water"]] * 4
    recs = []
    for i, labs in enumerate(labels):
        make_wav(root / f"{i}.wav", seed=i)
        recs.append({"path": f"{i}.wav", "labels": labs, "split": "test" if i >= 20 else "train"})
    pd.DataFrame(recs).to_parquet(root / "manifest.parquet")
    cfg = load_config(None, [f"data.source={root}", "data.n=6"])
    report = prepare_dataset(cfg, tmp_path / "out")
    assert report.multilabel and report.labels == ["Bark", "Dog", "Rain", "Water"]
    frames = assert_nothing_lost(tmp_path / "out", 24)
    train = frames["train"]
    assert len(train) == 6 and train["label"].isna().all()
    assert {lab for labs in train["labels"] for lab in labs} == set(report.labels)
    assert report.labels_without_train_clip == []


def test_multilabel_n_below_the_number_of_labels_reports_the_uncovered(make_wav, tmp_path):
    """FSD50K at n=50 (200 labels): the draw covers the rarest labels first and reports the rest."""
    root = tmp_path / "ds"
    labels = [[f"L{i}"] for i in range(6)] * 2 + [["L0", "L1"]] * 6           # L0 and L1 are the common ones
    recs = []
    for i, labs in enumerate(labels):
        make_wav(root / f"{i}.wav", seed=i)
        recs.append({"path": f"{i}.wav", "labels": labs, "split": "test" if i % 6 == 5 else "train"})
    pd.DataFrame(recs).to_parquet(root / "manifest.parquet")
    report = prepare_dataset(load_config(None, [f"data.source={root}", "data.n=3", "data.val_fraction=0.1"]),
                             tmp_path / "out")
    train = pd.read_parquet(tmp_path / "out" / "train.parquet")
    covered = {lab for labs in train["labels"] for lab in labs}
    assert len(train) == 3 and covered == {"L2", "L3", "L4"}                     # rarest first (L5 only in test)
    assert report.labels_without_train_clip == ["L0", "L1", "L5"]
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["labels_without_train_clip"] == ["L0", "L1", "L5"]
    assert any("3 of 6 labels have no clip in the train split" in n for n in report.notes)
