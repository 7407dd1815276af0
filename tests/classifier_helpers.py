"""Shared by tests/test_classifier.py and tests/test_sweep_grid.py: a tiny prepared dataset and a hand-made
augmentation output (manifest.parquet + audio) in the augment job's output contract."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from synthio_ray.config import load_config
from synthio_ray.data.audio import load_audio, write_audio
from synthio_ray.data.prepare import prepare_dataset

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "configs" / "tiny.yaml"
TINY = ["data.embedded_clips_per_class=10", "data.embedded_seconds=1.0", "data.val_fraction=0.2",
        "data.test_fraction=0.3", "data.n=16", "ray.progress=off"]


def prepare_tiny(out: Path) -> Path:
    prepare_dataset(load_config(DEFAULT, TINY), out)
    return out


def tiny_setup(root: Path) -> dict:
    """A tiny prepared set, a fake augmentation output made from it (k=2, p 0.5) and a feature cache folder."""
    prep = prepare_tiny(root / "prepared")
    syn = root / "synthetic"
    fake_augment_output(syn, prep, k=2, p_gen=0.5)
    return {"prep": prep, "syn": syn, "cache": root / "cache"}


def fake_augment_output(folder: Path, prepared: Path, k: int = 2, p_gen: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """Per gold clip, k caption chains: round 0 with a random score; chains below p_gen get a round 1.
    Clips are the gold clip plus a little noise (label-consistent). Returns the manifest."""
    rng = np.random.default_rng(seed)
    gold = pd.read_parquet(prepared / "train.parquet")
    rows = []
    for g in gold.itertuples():
        wave, sr = load_audio(g.path)
        for j in range(k):
            for r in range(2):
                score = float(rng.uniform(0.2, 0.8))
                cid = f"{g.id}-c{j}-r{r}"
                rel = f"audio/{g.label}/{cid}.wav"
                write_audio(folder / rel, wave + 0.01 * rng.standard_normal(len(wave)).astype(np.float32), sr)
                status = "accepted" if score >= p_gen else "rejected"
                rows.append({"id": cid, "chain_id": f"{g.id}-c{j}", "source_id": g.id, "label": g.label,
                             "labels": [g.label], "caption_index": j, "round": r, "clap_score": score,
                             "status": status, "accepted": status == "accepted", "path": rel})
                if status == "accepted":
                    break
    df = pd.DataFrame(rows)
    df.to_parquet(folder / "manifest.parquet")
    return df
