"""The augmentation output folder: per-round part files written atomically, resume state, manifest.

    OUT/rounds/round_<r>/part-<run>-<n>.parquet   rows as they finish (the streaming writer)
    OUT/audio/<label>/<id>.<fmt>                  clips (written atomically by the synthesis stage)
    OUT/manifest.parquet                          one row per generated clip, all rounds
    OUT/metadata.csv                              file_name,label of accepted clips (audiofolder layout)

A row is *done* when it sits in a readable part file with status accepted or rejected and its audio
file exists. A part file cut short by a crash does not read and is moved aside; its rows are simply
not done, so a re-run makes them again (same ids, same seeds) and never duplicates one.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from synthio_ray.pipeline.stages import CLIP_COLUMNS

__all__ = ["RunStore", "CLIP_SCHEMA"]

CLIP_SCHEMA = pa.schema([
    ("id", pa.string()), ("chain_id", pa.string()), ("source_id", pa.string()),
    ("source_path", pa.string()), ("label", pa.string()), ("labels", pa.list_(pa.string())),
    ("label_slug", pa.string()), ("caption_index", pa.int64()), ("round", pa.int64()),
    ("parent_id", pa.string()), ("caption", pa.string()), ("caption_source", pa.string()),
    ("llm_error", pa.string()), ("components", pa.string()), ("prompt_version", pa.string()),
    ("seed", pa.int64()), ("seconds", pa.float64()), ("path", pa.string()), ("sample_rate", pa.int64()),
    ("clap_score", pa.float64()), ("accepted", pa.bool_()), ("status", pa.string()), ("error", pa.string()),
    ("t2a_model", pa.string()), ("clap_model", pa.string()), ("llm_model", pa.string()),
    ("t2a_steps", pa.int64()), ("t2a_cfg_scale", pa.float64()), ("clap_threshold", pa.float64()),
])
assert CLIP_SCHEMA.names == CLIP_COLUMNS

_DONE = ("accepted", "rejected")
_RANK = {"accepted": 0, "rejected": 0, "failed": 1}


def _to_table(df: pd.DataFrame) -> pa.Table:
    df = df.reindex(columns=CLIP_COLUMNS)
    records = df.to_dict("records")
    for r in records:
        r["labels"] = [str(x) for x in (r["labels"] if r["labels"] is not None else [])]
        for k, v in r.items():
            if k != "labels" and not isinstance(v, (list, str)) and pd.isna(v):
                r[k] = None
    return pa.Table.from_pylist(records, schema=CLIP_SCHEMA)


class RunStore:
    """Reads and writes one augmentation output folder."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.run = uuid.uuid4().hex[:8]
        self._n = 0

    def round_dir(self, r: int) -> Path:
        return self.out / "rounds" / f"round_{r}"

    def append(self, r: int, df: pd.DataFrame) -> Path:
        """Write one batch of finished rows of round ``r`` as a new part file (tmp + rename)."""
        d = self.round_dir(r)
        d.mkdir(parents=True, exist_ok=True)
        self._n += 1
        p = d / f"part-{self.run}-{self._n:05d}.parquet"
        tmp = d / f".{p.name}.tmp"
        pq.write_table(_to_table(df), tmp)
        os.replace(tmp, p)
        return p

    def read_round(self, r: int) -> pd.DataFrame:
        """All rows of round ``r`` (one per id: a done row wins over a failed one). Unreadable parts are
        renamed ``*.corrupt`` and left out; another run's unfinished ``.part-*.tmp`` writes are removed."""
        d = self.round_dir(r)
        frames = []
        for t in d.glob(".part-*.parquet.tmp") if d.is_dir() else []:
            if not t.name.startswith(f".part-{self.run}-"):   # a dead run's unfinished write: its rows were
                t.unlink(missing_ok=True)                      # never done, so they are made again
        for p in sorted(d.glob("part-*.parquet")) if d.is_dir() else []:
            try:
                frames.append(pq.read_table(p, schema=CLIP_SCHEMA).to_pandas())
            except Exception:  # noqa: BLE001 - a part cut short by a crash
                p.rename(p.with_suffix(".corrupt"))
        if not frames:
            return pd.DataFrame(columns=CLIP_COLUMNS)
        df = pd.concat(frames, ignore_index=True)
        df["_rank"] = df["status"].map(_RANK).fillna(2)
        df["_has_audio"] = [isinstance(p, str) and (self.out / p).is_file() for p in df["path"]]
        df.loc[df["status"].isin(_DONE) & ~df["_has_audio"], "_rank"] = 3  # audio lost: not done
        df = df.sort_values(["id", "_rank"], kind="stable").drop_duplicates("id", keep="first")
        return df.drop(columns=["_rank", "_has_audio"]).reset_index(drop=True)

    def done_ids(self, r: int) -> set[str]:
        df = self.read_round(r)
        audio = [isinstance(p, str) and (self.out / p).is_file() for p in df["path"]]
        return {i for i, st, a in zip(df["id"], df["status"], audio) if a and st in _DONE}

    def rounds(self) -> list[int]:
        base = self.out / "rounds"
        if not base.is_dir():
            return []
        return sorted(int(p.name.split("_")[1]) for p in base.iterdir() if p.name.startswith("round_"))

    def all_rows(self) -> pd.DataFrame:
        frames = [self.read_round(r) for r in self.rounds()]
        frames = [f for f in frames if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CLIP_COLUMNS)

    def write_manifest(self, exhausted: str = "best") -> pd.DataFrame:
        """Consolidate every round into ``manifest.parquet`` and ``metadata.csv`` (the final set).

        Adds ``best_score`` (the chain's best CLAP score) and ``final`` (the row is in the final set: the
        chain's accepted clip; with ``exhausted="best"``, for a chain still rejected after the last round,
        its best-scoring clip, whose status becomes ``kept_best``; with ``"drop"`` such a chain has none).
        """
        df = self.all_rows()
        df = df.sort_values(["label_slug", "source_id", "caption_index", "round"]).reset_index(drop=True)
        if len(df):
            df["best_score"] = df.groupby("chain_id")["clap_score"].transform("max")
            df["final"] = df["status"] == "accepted"
            if exhausted == "best":
                open_chain = ~df["final"].groupby(df["chain_id"]).transform("any")
                cand = df[open_chain & (df["status"] == "rejected")]
                best = cand.sort_values(["chain_id", "clap_score", "round"], ascending=[True, False, True])
                idx = best.groupby("chain_id").head(1).index
                df.loc[idx, "status"], df.loc[idx, "final"] = "kept_best", True
        else:
            df["final"], df["best_score"] = pd.Series(dtype=bool), pd.Series(dtype=float)
        table = pa.Table.from_pandas(df, preserve_index=False)
        tmp = self.out / ".manifest.parquet.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, self.out / "manifest.parquet")
        acc = df[df["final"]]
        meta = pd.DataFrame({"file_name": acc["path"], "label": acc["label"].where(acc["label"].notna(),
                             acc["labels"].map(lambda x: ",".join(x)))})
        tmp = self.out / ".metadata.csv.tmp"
        meta.to_csv(tmp, index=False)
        os.replace(tmp, self.out / "metadata.csv")
        return df
