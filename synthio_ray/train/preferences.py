"""The preference set for Diffusion-DPO: each gold clip (winner) against j clips the model makes itself.

``build_preferences(cfg, gold, folder) -> DataFrame`` writes, under ``folder`` (``OUT/preferences``):

- ``winners/<label>/<id>.flac``: every gold clip resampled to the model's rate, its channels matched
  to the model's (mono duplicated, more than the model has averaged), trimmed/padded to its duration
  capped at the model's maximum;
- ``audio/``: the losers, generated from noise with the template caption by the augmentation job's own
  ``Synthesizer`` stage on a Ray Data actor pool (batched, seeded per loser), named as that stage names
  its clips; ``generated.jsonl`` records each loser's outcome as it arrives;
- ``manifest.parquet``: one row per (winner, loser) pair (``objective=erm``: one row per gold clip,
  loser columns null) with its provenance, ``PAIR_COLUMNS``; rows with ``status="failed"`` carry the
  ``error`` and are left out of training;
- ``info.json``: the build key (model, sampler settings, template, j, seed, gold ids). A later run with
  the same key reuses the set; otherwise losers already made under the same ids (recorded in
  ``generated.jsonl``, file present) are kept, since their ids hash the model and its settings, and only
  the missing ones are generated: an interrupted build resumes.

Needs a running Ray (``ensure_ray``) for the loser generation.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthio_ray.config import Config
from synthio_ray.data.audio import AudioError, load_audio, write_audio
from synthio_ray.data.labels import display_labels, label_slugs
from synthio_ray.ids import stable_hash, stable_int
from synthio_ray.models.paths import resolve_model_path
from synthio_ray.pipeline.stages import Synthesizer, label_text
from synthio_ray.prompts.templates import template_caption

__all__ = ["build_preferences", "model_audio_format", "load_preferences", "PAIR_COLUMNS", "to_channels"]

PAIR_COLUMNS = ["pair_id", "source_id", "label", "labels", "caption", "seconds", "winner_path",
                "winner_source_path", "loser_id", "loser_index", "loser_seed", "loser_path", "sample_rate",
                "status", "error", "t2a_model", "t2a_steps", "t2a_cfg_scale", "template", "build_key"]


def model_audio_format(cfg: Config, path: str | None = None) -> tuple[int, int, float]:
    """(sample rate, channels, longest clip in s) of a diffusers Stable Audio checkpoint (or of an adapter
    folder's base), from its configs only (no weights loaded)."""
    from diffusers import AutoencoderOobleck, StableAudioDiTModel

    from synthio_ray.models.t2a_adapter import pipeline_folder

    where = pipeline_folder(resolve_model_path(path or cfg.models.t2a.path))
    vae = AutoencoderOobleck.load_config(where, subfolder="vae")
    dit = StableAudioDiTModel.load_config(where, subfolder="transformer")
    hop = int(np.prod(vae["downsampling_ratios"]))
    sr = int(vae["sampling_rate"])
    return sr, int(vae["audio_channels"]), int(dit["sample_size"]) * hop / sr


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """``(frames, c)`` audio -> ``(frames, channels)``: duplicated from mono, averaged down otherwise."""
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[1] == channels:
        return x
    mono = x.mean(axis=1, keepdims=True)
    return np.repeat(mono, channels, axis=1)


def _settings(cfg: Config, t2a_path: str | None) -> dict:
    from synthio_ray.models.t2a import t2a_settings

    t = cfg.models.t2a
    return {"t2a": resolve_model_path(t2a_path or t.path), "backend": t.backend, **t2a_settings(t, t2a_path),
            "negative_prompt": t.negative_prompt, "crop_latents": t.crop_latents}


def _seed(cfg: Config) -> int:
    return cfg.seed if cfg.align.seed is None else cfg.align.seed


def _winners(cfg: Config, gold: pd.DataFrame, folder: Path, slugs: dict, fmt: tuple) -> list[dict]:
    """Gold rows -> winner records (audio written in the model's format), failures recorded, not raised."""
    sr, channels, max_seconds = fmt
    out = []
    for g in gold.to_dict("records"):
        lab = label_text(g["labels"])
        seconds = float(min(max(float(g["seconds"]), 0.1), max_seconds))
        rel = Path("winners") / slugs[lab] / f"{slugs[lab]}-{stable_hash('winner', g['source_id'])}.flac"
        rec = {"source_id": g["source_id"], "label": g["label"], "labels": list(g["labels"]),
               "label_slug": slugs[lab], "caption": template_caption(display_labels(g["labels"]), cfg.align.template), "seconds": seconds,
               "winner_path": rel.as_posix(), "winner_source_path": g["source_path"], "status": "ok", "error": None}
        try:
            if not (folder / rel).is_file():
                x, _ = load_audio(g["source_path"], sample_rate=sr, mono=False, seconds=seconds)
                write_audio(folder / rel, to_channels(x, channels), sr)
        except (AudioError, OSError, ValueError) as e:
            rec.update(status="failed", error=f"gold clip unusable: {e}", winner_path=None)
        out.append(rec)
    return out


def _generate(cfg: Config, planned: pd.DataFrame, folder: Path, t2a_path: str | None, progress: Path,
              known: dict[str, dict]) -> None:
    """Planned loser rows -> the Synthesizer on a Ray Data actor pool; each finished row's outcome (id,
    path as the stage wrote it, status, error) is appended to ``progress`` as it arrives and to ``known``."""
    from synthio_ray.pipeline.augment import _dataset, _pool

    res = cfg.resources
    ds = _dataset(planned)
    ds = ds.map_batches(Synthesizer, fn_constructor_kwargs=dict(cfg=cfg, out_dir=str(folder), t2a_path=t2a_path),
                        batch_size=cfg.models.t2a.batch_size, **_pool(cfg, res.t2a_gpus, res.t2a_actors))
    with progress.open("a") as f:
        for batch in ds.iter_batches(batch_format="pandas", batch_size=None, prefetch_batches=0):
            for r in batch[["id", "path", "status", "error"]].to_dict("records"):
                known[r["id"]] = r
                f.write(json.dumps(r) + "\n")
            f.flush()


def _read_progress(progress: Path) -> dict[str, dict]:
    known: dict[str, dict] = {}
    if progress.is_file():
        for line in progress.read_text().splitlines():
            try:
                r = json.loads(line)
                known[r["id"]] = r
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut short by a crash: that loser is made again
    return known


def build_preferences(cfg: Config, gold: pd.DataFrame, folder: str | Path, t2a_path: str | None = None,
                      log: Any = print) -> pd.DataFrame:
    """Gold rows (``gold_rows``: source_id, source_path, label, labels, seconds) -> the pair manifest
    (also written to ``folder/manifest.parquet``). ``t2a_path`` overrides ``models.t2a.path``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    a = cfg.align
    j = a.losers if a.objective == "dpo" else 0
    settings = _settings(cfg, t2a_path)
    key = stable_hash(json.dumps({**settings, "template": a.template, "losers": j, "seed": _seed(cfg),
                                  "gold": sorted(gold["source_id"])}, sort_keys=True), length=16)
    manifest, info = folder / "manifest.parquet", folder / "info.json"
    if manifest.is_file() and info.is_file() and json.loads(info.read_text()).get("build_key") == key:
        log(f"preference set: reusing {manifest}")
        return load_preferences(folder)

    fmt = model_audio_format(cfg, t2a_path)
    slugs = label_slugs({label_text(x) for x in gold["labels"]})
    winners = _winners(cfg, gold, folder, slugs, fmt)
    model_key = stable_hash(json.dumps(settings, sort_keys=True), length=8)
    planned = []
    for w in winners:
        if w["status"] != "ok":
            continue
        for i in range(j):
            digest = stable_hash("dpo-loser", w["source_id"], i, w["caption"], model_key, _seed(cfg))
            lid = f"{w['label_slug']}-{digest}"
            planned.append({"id": lid, "source_id": w["source_id"], "label_slug": w["label_slug"],
                            "caption": w["caption"], "seconds": w["seconds"], "loser_index": i,
                            "seed": stable_int("dpo-loser-seed", _seed(cfg), w["source_id"], i, bits=31)})
    plan = pd.DataFrame(planned, columns=["id", "source_id", "label_slug", "caption", "seconds", "loser_index",
                                          "seed"])
    progress = folder / "generated.jsonl"
    known = _read_progress(progress)
    done = {i for i, r in known.items() if r["status"] == "generated" and r["path"] and (folder / r["path"]).is_file()}
    todo = plan[~plan["id"].isin(done)]
    if len(todo):
        log(f"preference set: generating {len(todo)} losers ({len(plan) - len(todo)} already on disk) with "
            f"{settings['t2a']} ({settings['steps']} steps, cfg {settings['cfg_scale']:g})")
        _generate(cfg, todo, folder, t2a_path, progress, known)
    rows = []
    for w in winners:
        base = {"source_id": w["source_id"], "label": w["label"], "labels": w["labels"], "caption": w["caption"],
                "seconds": w["seconds"], "winner_path": w["winner_path"],
                "winner_source_path": w["winner_source_path"], "sample_rate": fmt[0], "t2a_model": settings["t2a"],
                "t2a_steps": settings["steps"], "t2a_cfg_scale": settings["cfg_scale"], "template": a.template,
                "build_key": key}
        if j == 0 or w["status"] != "ok":
            rows.append({**base, "pair_id": stable_hash("pair", w["source_id"], -1), "loser_id": None,
                         "loser_index": None, "loser_seed": None, "loser_path": None, "status": w["status"],
                         "error": w["error"]})
            continue
        for p in plan[plan["source_id"] == w["source_id"]].to_dict("records"):
            g = known.get(p["id"]) or {"status": "failed", "path": None, "error": "no result from the synthesis stage"}
            ok = g["status"] == "generated"
            rows.append({**base, "pair_id": stable_hash("pair", w["source_id"], p["id"]), "loser_id": p["id"],
                         "loser_index": int(p["loser_index"]), "loser_seed": int(p["seed"]),
                         "loser_path": g["path"] if ok else None, "status": "ok" if ok else "failed",
                         "error": None if ok else g["error"]})
    df = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    tmp = manifest.with_name(f".manifest.parquet.{os.getpid()}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, manifest)
    info.write_text(json.dumps({"build_key": key, **settings, "template": a.template, "losers": j,
                                "seed": _seed(cfg), "rows": len(df), "ok": int((df["status"] == "ok").sum())},
                               indent=2))
    return df


def load_preferences(folder: str | Path) -> pd.DataFrame:
    """Read ``folder/manifest.parquet`` (lists as lists)."""
    df = pd.read_parquet(Path(folder) / "manifest.parquet")
    df["labels"] = [list(x) for x in df["labels"]]
    return df

