"""Reading the augmentation job's output (``OUT/manifest.parquet``) for classifier training.

``select_synthetic(manifest, k, p)`` is the sweep's *generate once* rule: the augmentation runs a single
time at (k_max, p_max) and every (k, p) trial takes its subset from that manifest:

- the first ``k`` captions of each gold clip (``caption_index < k``);
- for each such caption chain (``source_id, caption_index``), the first reflection round whose clip has
  ``clap_score >= p`` (failed rows never count). A chain's later rounds exist only because the job's own
  threshold p_max rejected the earlier ones, so with a lower p an earlier round may already qualify: it is
  taken and the later rounds ignored. A chain where no round reaches p contributes nothing.
- ``p=None`` keeps the job's own decision: the rows of its final set (``final``: the accepted clip of each
  chain, and with ``augment.exhausted=best`` the ``kept_best`` clip of a chain still rejected after the
  last round; at most one per chain).
- With a p and ``exhausted="best"`` (read from the output's ``config.yaml``), a chain where no round reaches
  p contributes its best-scoring clip, so the set keeps k*n clips at every p; with ``"drop"`` it adds none.

Note that for p > p_max the rule is still well defined but pessimistic: a chain accepted at round 0 below
p was never reflected, so it contributes nothing. Sweeps therefore generate at the largest p they try.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

__all__ = ["load_synthetic", "select_synthetic", "synthetic_rows", "selection_fingerprint"]


def load_synthetic(folder: str | Path) -> pd.DataFrame:
    """``folder/manifest.parquet`` with ``path`` made absolute; FileNotFoundError naming what is missing."""
    folder = Path(folder)
    manifest = folder / "manifest.parquet"
    if not manifest.is_file():
        raise FileNotFoundError(f"{folder} is not an augmentation output (missing {manifest}); run "
                                f"jobs/augment.py --out {folder}")
    df = pd.read_parquet(manifest)
    df["path"] = [str(folder / p) if isinstance(p, str) else None for p in df["path"]]
    df["labels"] = [list(x) if x is not None else [] for x in df["labels"]]
    df.attrs["exhausted"] = _exhausted_policy(folder)
    return df


def _exhausted_policy(folder: Path) -> str:
    """``augment.exhausted`` of the run that made ``folder`` (``drop`` for outputs without a config)."""
    import yaml

    try:
        saved = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return "drop"
    return str((saved.get("augment") or {}).get("exhausted", "drop"))


def select_synthetic(manifest: pd.DataFrame, k: int | None = None, p: float | None = None,
                     exhausted: str | None = None) -> pd.DataFrame:
    """The rows a trial trains on (see the module docstring), sorted by source, caption, round.
    ``k=None``: every caption slot. ``exhausted``: ``best`` or ``drop`` (default: the manifest's own,
    ``manifest.attrs["exhausted"]``, else ``drop``)."""
    df = manifest
    if k is not None:
        df = df[df["caption_index"] < int(k)]
    if p is None:
        chosen = df[df["final"]] if "final" in df else df[df["status"] == "accepted"]
    else:
        scored = df[(df["status"] != "failed") & df["clap_score"].notna()]
        ok = scored[scored["clap_score"] >= float(p)].sort_values(["source_id", "caption_index", "round"])
        chosen = ok.groupby(["source_id", "caption_index"], sort=False).head(1)
        if (exhausted or manifest.attrs.get("exhausted", "drop")) == "best":
            reached = set(zip(chosen["source_id"], chosen["caption_index"]))
            rest = scored[[key not in reached for key in zip(scored["source_id"], scored["caption_index"])]]
            best = rest.sort_values(["source_id", "caption_index", "clap_score", "round"],
                                    ascending=[True, True, False, True])
            chosen = pd.concat([chosen, best.groupby(["source_id", "caption_index"], sort=False).head(1)])
    return chosen.sort_values(["source_id", "caption_index", "round"]).reset_index(drop=True)


def synthetic_rows(folders: list[str | Path], k: int | None = None, p: float | None = None) -> pd.DataFrame:
    """Selected clips of several augmentation outputs, as training rows ``id, path, labels, source_id``."""
    frames = []
    for f in folders:
        sel = select_synthetic(load_synthetic(f), k, p)
        frames.append(pd.DataFrame({"id": sel["id"], "path": sel["path"], "labels": sel["labels"],
                                    "source_id": sel["source_id"], "clap_score": sel["clap_score"],
                                    "round": sel["round"], "origin": str(f)}))
    if not frames:
        return pd.DataFrame(columns=["id", "path", "labels", "source_id", "clap_score", "round", "origin"])
    return pd.concat(frames, ignore_index=True)


def selection_fingerprint(rows: pd.DataFrame | None) -> str | None:
    """A digest of the synthetic clips a training uses (``synthetic_rows``: each clip's path within its folder,
    labels and CLAP score, since a clip regenerated under the same path scores differently; a moved folder
    keeps its digest). Equal digests, same training clips; ``None`` for no synthetic rows. A resumed sweep
    or grid compares it before it reuses a finished trial, so a trial whose set changed (re-finalised under
    another ``augment.exhausted``, regenerated) trains again."""
    if rows is None:
        return None
    keys = sorted(f"{os.path.relpath(path, origin)}\t{'|'.join(sorted(map(str, labs)))}\t{score:.6g}"
                  for path, origin, labs, score in zip(rows["path"], rows["origin"], rows["labels"],
                                                       rows["clap_score"].fillna(-1.0)))
    return hashlib.sha1("\n".join(keys).encode()).hexdigest()
