"""The on-disk form of a prepared dataset (what ``jobs/prepare.py`` writes and later jobs read).

``DIR/{train,val,test,pool}.parquet`` share ``ROW_SCHEMA``; ``DIR/quarantine.parquet`` adds
``reason``; ``DIR/labels.json`` holds the label set. ``label`` is the single label (null in
multi-label sets); ``labels`` is always the list.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["ROW_SCHEMA", "QUARANTINE_SCHEMA", "SPLIT_FILES", "write_rows", "PreparedDataset",
           "load_prepared"]

ROW_SCHEMA = pa.schema([
    ("id", pa.string()), ("path", pa.string()), ("rel_path", pa.string()), ("label", pa.string()),
    ("labels", pa.list_(pa.string())), ("split", pa.string()), ("fold", pa.int64()),
    ("caption", pa.string()), ("duration", pa.float64()), ("sample_rate", pa.int64()),
    ("channels", pa.int64()), ("frames", pa.int64()), ("format", pa.string()),
    ("subtype", pa.string()), ("sha1", pa.string()), ("source_row", pa.int64()),
])
QUARANTINE_SCHEMA = ROW_SCHEMA.append(pa.field("reason", pa.string()))
SPLIT_FILES = ("train", "val", "test", "pool")


def write_rows(path: str | Path, rows: list[dict], multilabel: bool, quarantine: bool = False) -> Path:
    """Write source rows (dicts from ``synthio_ray.data.sources``) as Parquet with a fixed schema."""
    schema = QUARANTINE_SCHEMA if quarantine else ROW_SCHEMA
    records = []
    for r in rows:
        rec = {k: r.get(k) for k in schema.names}
        rec["labels"] = list(r.get("labels") or [])
        rec["label"] = None if multilabel or not rec["labels"] else rec["labels"][0]
        rec["source_row"] = r.get("row")
        if quarantine:
            rec["reason"] = r.get("error")
        records.append(rec)
    table = pa.Table.from_pylist(records, schema=schema)
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(p)
    return p


@dataclass
class PreparedDataset:
    """A prepared dataset folder: split frames, label set, and its domain."""

    root: Path
    labels: list[str]
    slugs: dict[str, str]
    multilabel: bool
    domain: str

    def split(self, name: str) -> pd.DataFrame:
        """One of train, val, test, pool, quarantine as a DataFrame."""
        return pd.read_parquet(self.root / f"{name}.parquet")


def load_prepared(folder: str | Path) -> PreparedDataset:
    """Open a folder written by ``jobs/prepare.py``; raise FileNotFoundError naming what is missing."""
    root = Path(folder)
    meta = root / "labels.json"
    missing = [str(p) for p in [meta] + [root / f"{s}.parquet" for s in ("train", "val", "test")]
               if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{root} is not a prepared dataset (missing {', '.join(missing)}); "
                                f"run jobs/prepare.py --out {root}")
    info = json.loads(meta.read_text())
    return PreparedDataset(root=root, labels=info["labels"], slugs=info["slugs"],
                           multilabel=info["multilabel"], domain=info["domain"])
