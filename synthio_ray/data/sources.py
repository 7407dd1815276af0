"""Read a labelled audio source into rows, one per input item, without decoding any audio.

Layouts:
- ``manifest``: a CSV / JSONL / Parquet file with a path column and a label column; optional id,
  split, fold and caption columns; multi-label as a list column or a ``labels`` string column.
- ``folders``: ``root/<label>/...audio`` (optionally ``root/<split>/<label>/...``).
- ``esc50``: ``root/meta/esc50.csv`` + ``root/audio/`` (folds 1-5).
- ``urbansound8k``: ``root/metadata/UrbanSound8K.csv`` + ``root/audio/fold<k>/`` (folds 1-10).
- ``pattern``: every file under root; the label (and optionally split and id) from a regex on the
  file's path relative to root.

Each row is a dict: ``row`` (input order), ``id``, ``path`` (absolute, or None when it must not be
read), ``rel_path``, ``labels`` (list), ``split`` (train/val/test or None), ``fold``, ``caption`` and
``error`` (a quarantine reason found at this stage, or None). Paths that resolve outside the dataset
root (``..``, absolute paths, symlinks) get an error and a None path: they are never opened.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from synthio_ray.config import DataConfig

__all__ = ["Source", "SourceError", "read_source", "detect_layout", "is_inside", "SPLIT_NAMES"]

SPLIT_NAMES = {
    "train": "train", "training": "train", "tr": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test", "eval": "test", "evaluation": "test",
}
PATH_COLUMNS = ("path", "file_name", "filename", "file", "filepath", "audio_path", "audio",
                "fname", "slice_file_name")
LABEL_COLUMNS = ("labels", "label", "class", "category", "class_name")
ID_COLUMNS = ("id", "clip_id", "uid")
SPLIT_COLUMNS = ("split", "subset", "partition")
CAPTION_COLUMNS = ("caption", "captions", "text", "description")
MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl", "manifest.parquet", "metadata.csv",
                  "metadata.jsonl", "metadata.parquet")
MANIFEST_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet", ".pq")
LAYOUT_DOMAINS = {"esc50": "environmental sounds", "urbansound8k": "urban sounds"}
DEFAULT_FOLDS = {"esc50": ([4], [5]), "urbansound8k": ([9], [10])}


class SourceError(ValueError):
    """The source as a whole cannot be read (not a row-level problem)."""


@dataclass
class Source:
    """Rows read from a source, plus what was learned about it."""

    root: Path
    layout: str
    rows: list[dict]
    domain: str
    skipped_hidden: int = 0
    notes: list[str] = field(default_factory=list)


def _row(i: int, **kw: Any) -> dict:
    base = dict(row=i, id=None, path=None, rel_path=None, labels=[], split=None, fold=None,
                caption=None, error=None)
    base.update(kw)
    return base


def _is_hidden(rel: Path) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in rel.parts)


def _walk(root: Path) -> tuple[list[Path], int]:
    """Regular files under root (sorted, relative), and how many hidden ones were skipped."""
    files, hidden = [], 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            rel = (Path(dirpath) / name).relative_to(root)
            if _is_hidden(rel):
                hidden += 1
            else:
                files.append(rel)
    return files, hidden


def is_inside(path: str | Path, root_real: str) -> bool:
    """True when ``path`` (after resolving links and '..') lies under the resolved root."""
    real = os.path.realpath(path)
    return os.path.commonpath([real, root_real]) == root_real


def _resolve(raw: str, root: Path, root_real: str, exts: list[str]) -> tuple[Path | None, str | None]:
    """Manifest path text -> (absolute path, None) or (None, reason). Never touches files outside root."""
    p = Path(os.path.expanduser(raw))
    cand = p if p.is_absolute() else root / p
    if not is_inside(cand, root_real):
        return None, f"path escapes the dataset root {root}: {raw}"
    if not cand.exists() and not cand.suffix:
        for ext in exts:
            alt = cand.with_name(cand.name + ext)
            if alt.exists() and is_inside(alt, root_real):
                return alt, None
    return cand, None


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _parse_labels(value: Any, column: str, delimiter: str) -> list[str]:
    value = _clean(value)
    if value is None:
        return []
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value if _clean(v) is not None]
    elif isinstance(value, str) and column == "labels":
        items = [s.strip() for s in value.split(delimiter)]
    else:
        items = [str(value).strip()]
    seen, out = set(), []
    for s in items:
        if s and s not in seen:
            seen.add(s)
            out.append(s)
    return out


def _pick(columns: list[str], names: tuple[str, ...]) -> str | None:
    lower = {c.lower(): c for c in columns}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        if suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=True, dtype=False)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - any parser error is a clear source error
        raise SourceError(f"cannot read manifest {path}: {type(e).__name__}: {e}") from None
    raise SourceError(f"manifest {path}: unsupported format {suffix!r}; use .csv, .jsonl or .parquet")


def _split_of(value: Any) -> tuple[str | None, str | None]:
    value = _clean(value)
    if value is None:
        return None, None
    s = SPLIT_NAMES.get(str(value).strip().lower())
    if s is None:
        return None, f"unknown split {value!r} (expected one of {sorted(set(SPLIT_NAMES))})"
    return s, None


def _fold_of(value: Any) -> int | None:
    value = _clean(value)
    if value is None:
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _manifest_rows(table: pd.DataFrame, manifest: Path, root: Path, cfg: DataConfig,
                   path_fn=None, label_col: str | None = None) -> list[dict]:
    cols = list(table.columns)
    pcol = _pick(cols, PATH_COLUMNS)
    lcol = label_col or _pick(cols, LABEL_COLUMNS)
    if pcol is None and path_fn is None:
        raise SourceError(f"manifest {manifest} has no path column: expected one of {', '.join(PATH_COLUMNS)}; "
                          f"it has {', '.join(map(str, cols))}")
    if lcol is None:
        raise SourceError(f"manifest {manifest} has no label column: expected one of {', '.join(LABEL_COLUMNS)}; "
                          f"it has {', '.join(map(str, cols))}")
    icol, scol = _pick(cols, ID_COLUMNS), _pick(cols, SPLIT_COLUMNS)
    fcol, ccol = _pick(cols, ("fold",)), _pick(cols, CAPTION_COLUMNS)
    root_real = os.path.realpath(root)
    rows = []
    for i, rec in enumerate(table.to_dict("records")):
        raw = path_fn(rec) if path_fn else _clean(rec.get(pcol))
        labels = _parse_labels(rec.get(lcol), lcol.lower(), cfg.label_delimiter)
        split, split_err = _split_of(rec.get(scol)) if scol else (None, None)
        caption = _clean(rec.get(ccol)) if ccol else None
        rid = _clean(rec.get(icol)) if icol else None
        row = _row(i, labels=labels, split=split, fold=_fold_of(rec.get(fcol)) if fcol else None,
                   caption=str(caption) if caption is not None else None)
        if raw is None:
            row.update(error="no path in this manifest row", id=str(rid) if rid is not None else f"row{i}")
            rows.append(row)
            continue
        raw = str(raw).strip()
        path, err = _resolve(raw, root, root_real, cfg.audio_extensions)
        rel = Path(raw).as_posix() if err else Path(os.path.relpath(path, root)).as_posix()
        row.update(path=str(path) if path else None, rel_path=rel,
                   id=str(rid) if rid is not None else str(Path(rel).with_suffix("").as_posix()),
                   error=err or split_err)
        rows.append(row)
    return rows


def _esc50(root: Path, cfg: DataConfig) -> list[dict]:
    meta = root / "meta" / "esc50.csv"
    table = _read_table(meta)
    if "filename" not in table.columns or "category" not in table.columns:
        raise SourceError(f"{meta}: expected ESC-50 columns filename, fold, category")
    return _manifest_rows(table, meta, root, cfg, path_fn=lambda r: f"audio/{r['filename']}",
                          label_col="category")


def _urbansound8k(root: Path, cfg: DataConfig) -> list[dict]:
    meta = root / "metadata" / "UrbanSound8K.csv"
    table = _read_table(meta)
    if not {"slice_file_name", "fold", "class"} <= set(table.columns):
        raise SourceError(f"{meta}: expected UrbanSound8K columns slice_file_name, fold, class")
    return _manifest_rows(table, meta, root, cfg,
                          path_fn=lambda r: f"audio/fold{r['fold']}/{r['slice_file_name']}",
                          label_col="class")


def _folders(root: Path, files: list[Path]) -> list[dict]:
    tops = {p.parts[0] for p in files if len(p.parts) > 1}
    by_split = bool(tops) and all(t.lower() in SPLIT_NAMES for t in tops)
    rows = []
    for i, rel in enumerate(files):
        parts = rel.parts[1:] if by_split else rel.parts
        split = SPLIT_NAMES[rel.parts[0].lower()] if by_split and len(rel.parts) > 1 else None
        row = _row(i, id=rel.with_suffix("").as_posix(), path=str(root / rel), rel_path=rel.as_posix(),
                   split=split)
        if len(parts) < 2:
            row.update(error="file is not inside a class folder", path=None)
        else:
            row["labels"] = [parts[0]]
        rows.append(row)
    return rows


def _pattern(root: Path, files: list[Path], pattern: str) -> list[dict]:
    rx = re.compile(pattern)
    rows = []
    for i, rel in enumerate(files):
        m = rx.search(rel.as_posix())
        row = _row(i, id=rel.with_suffix("").as_posix(), path=str(root / rel), rel_path=rel.as_posix())
        if m is None or not (m.group("label") or "").strip():
            row.update(error=f"file name does not match the pattern {pattern!r}", path=None)
        else:
            gd = m.groupdict()
            row["labels"] = [m.group("label").strip()]
            if gd.get("id"):
                row["id"] = gd["id"]
            if gd.get("split"):
                row["split"], err = _split_of(gd["split"])
                if err:
                    row.update(error=err, path=None)
        rows.append(row)
    return rows


def detect_layout(source: Path, pattern: str | None = None) -> str:
    """Guess the layout of ``source``; raise SourceError when nothing fits."""
    if source.is_file():
        if source.suffix.lower() in MANIFEST_SUFFIXES:
            return "manifest"
        raise SourceError(f"{source} is a file but not a manifest (.csv, .jsonl, .parquet)")
    if (source / "meta" / "esc50.csv").is_file():
        return "esc50"
    if (source / "metadata" / "UrbanSound8K.csv").is_file():
        return "urbansound8k"
    if any((source / n).is_file() for n in MANIFEST_NAMES):
        return "manifest"
    if pattern:
        return "pattern"
    if any(p.is_dir() and not p.name.startswith(".") for p in source.iterdir()):
        return "folders"
    raise SourceError(f"cannot tell the layout of {source}: a flat folder needs --pattern with a "
                      f"(?P<label>...) group, or give --layout and a manifest")


def read_source(source: str | Path, cfg: DataConfig) -> Source:
    """Read ``source`` (a folder or a manifest file) with ``cfg.layout`` into rows (no audio decoded)."""
    src = Path(os.path.expanduser(str(source))).absolute()
    if not src.exists():
        raise SourceError(f"source not found: {source}")
    layout = cfg.layout if cfg.layout != "auto" else detect_layout(src, cfg.pattern)
    hidden = 0
    if layout == "manifest":
        manifest = src
        if src.is_dir():
            found = [src / n for n in MANIFEST_NAMES if (src / n).is_file()]
            if not found:
                raise SourceError(f"no manifest in {src}: expected one of {', '.join(MANIFEST_NAMES)}")
            manifest = found[0]
        root = Path(cfg.root).absolute() if cfg.root else manifest.parent
        rows = _manifest_rows(_read_table(manifest), manifest, root, cfg)
    elif layout in ("esc50", "urbansound8k"):
        root = src
        rows = (_esc50 if layout == "esc50" else _urbansound8k)(root, cfg)
    elif layout in ("folders", "pattern"):
        if not src.is_dir():
            raise SourceError(f"layout {layout!r} needs a folder, got the file {src}")
        root = src
        files, hidden = _walk(root)
        if layout == "pattern":
            if not cfg.pattern:
                raise SourceError("layout 'pattern' needs --pattern with a (?P<label>...) group")
            rows = _pattern(root, files, cfg.pattern)
        else:
            rows = _folders(root, files)
    else:
        raise SourceError(f"unknown layout {layout!r}")
    notes = []
    if hidden:
        notes.append(f"skipped {hidden} hidden file(s) (names starting with '.')")
    domain = cfg.domain or LAYOUT_DOMAINS.get(layout, "everyday sounds")
    return Source(root=root, layout=layout, rows=rows, domain=domain, skipped_hidden=hidden, notes=notes)
