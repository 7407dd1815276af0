"""Check every source row before it is used; bad rows get a quarantine reason, never an exception.

Checks, in order: a reason already found while reading the source; no label; a path outside the
dataset root (never opened); a duplicate id or path; the audio itself (``check_audio``: missing,
empty, not audio, truncated, NaN/Inf); identical file content seen earlier (by SHA-1). The first
occurrence of a duplicate is kept and the later ones point at it.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from synthio_ray.data.audio import AudioError, check_audio
from synthio_ray.data.sources import is_inside as _inside

__all__ = ["validate_rows"]


def _probe(row: dict) -> dict:
    try:
        info = check_audio(row["path"])
    except AudioError as e:
        return {"error": str(e)}
    except Exception as e:  # noqa: BLE001 - a decoder crash on one file must not stop the job
        return {"error": f"audio check failed: {type(e).__name__}: {e}"}
    return {"duration": info.duration, "sample_rate": info.sample_rate, "channels": info.channels,
            "frames": info.frames, "format": info.format, "subtype": info.subtype, "sha1": info.sha1}


def validate_rows(rows: list[dict], root: Path, workers: int = 0) -> list[dict]:
    """Fill audio facts into each row, or set ``row['error']``. Returns the same rows (input order).

    ``workers`` threads decode audio in parallel (0 = one per CPU core).
    """
    root_real = os.path.realpath(root)
    seen_id: dict[str, str] = {}
    seen_path: dict[str, str] = {}
    todo = []
    for row in rows:
        for k in ("duration", "sample_rate", "channels", "frames", "format", "subtype", "sha1"):
            row.setdefault(k, None)
        if row["error"]:
            row["path"] = row["path"] if row["path"] and _inside(row["path"], root_real) else None
            continue
        if not row["labels"]:
            row["error"] = "no label"
            continue
        if row["path"] is None:
            row["error"] = "no path"
            continue
        if not _inside(row["path"], root_real):
            row["error"] = f"path escapes the dataset root {root} (symlink or '..'): {row['rel_path']}"
            row["path"] = None
            continue
        real = os.path.realpath(row["path"])
        if row["id"] in seen_id:
            row["error"] = f"duplicate id {row['id']!r} (first used by {seen_id[row['id']]})"
            continue
        if real in seen_path:
            row["error"] = f"duplicate path: same file as row id {seen_path[real]!r}"
            continue
        seen_id[row["id"]] = row["rel_path"] or row["id"]
        seen_path[real] = row["id"]
        todo.append(row)
    n = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=n) as pool:
        for row, facts in zip(todo, pool.map(_probe, todo)):
            row.update(facts)
    seen_hash: dict[str, str] = {}
    for row in todo:
        if row["error"]:
            continue
        first = seen_hash.setdefault(row["sha1"], row["id"])
        if first != row["id"]:
            row["error"] = f"duplicate content: identical bytes to id {first!r}"
    return rows
