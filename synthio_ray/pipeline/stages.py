"""The augmentation pipeline's model stages as plain classes: ``stage(pandas.DataFrame) -> pandas.DataFrame``:
``GoldCaptioner`` (gold captions), ``Synthesizer`` (text-to-audio) and ``Scorer`` (CLAP), and the clip row
schema; the LLM stages are in ``llm_stages.py``.

Each constructor loads its model once (an actor in Ray Data, or a plain object in a test or a
notebook); ``__call__`` maps one batch. No stage raises for a bad row: model errors are retried
per batch, then per row, and what still fails is marked ``status="failed"`` with an ``error``.

Row columns of a generated clip (what ``manifest.parquet`` holds):
``id, chain_id, source_id, source_path, label, labels, label_slug, caption_index, round, parent_id,
caption, caption_source, llm_error, components, prompt_version, seed, seconds, path, sample_rate,
clap_score, accepted, status, error, t2a_model, clap_model, llm_model, t2a_steps, t2a_cfg_scale,
clap_threshold`` (the sampling steps, CFG scale and CLAP threshold p the clip was made and judged with).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from synthio_ray.config import Config
from synthio_ray.data.audio import AudioError, load_audio, write_audio
from synthio_ray.data.labels import display_labels
from synthio_ray.ids import stable_hash
from synthio_ray.models.base import RowErrors, is_out_of_memory

__all__ = ["GoldCaptioner", "Synthesizer", "Scorer", "label_text", "CLIP_COLUMNS", "audio_name"]

CLIP_COLUMNS = ["id", "chain_id", "source_id", "source_path", "label", "labels", "label_slug",
                "caption_index", "round", "parent_id", "caption", "caption_source", "llm_error",
                "components", "prompt_version", "seed", "seconds", "path", "sample_rate", "clap_score",
                "accepted", "status", "error", "t2a_model", "clap_model", "llm_model", "t2a_steps",
                "t2a_cfg_scale", "clap_threshold"]


def label_text(labels: Any) -> str:
    """A row's label key: its raw label, or its raw labels joined (multi-label). Keys pools and slugs;
    what the models read is ``display_labels(labels)``."""
    labs = list(labels) if not isinstance(labels, str) else [labels]
    return " and ".join(labs)


def _threads(n: int) -> None:
    if n > 0:
        import torch

        torch.set_num_threads(n)


class GoldCaptioner:
    """Gold rows -> + ``gold_caption`` and ``gold_caption_source`` (manifest | captioner | none)."""

    def __init__(self, cfg: Config, captioner: Any = None):
        _threads(cfg.resources.torch_threads)
        self.backend = cfg.models.captioner.backend
        self.model = captioner
        if self.model is None and self.backend == "transformers":
            from synthio_ray.models.captioner import load_captioner

            self.model = load_captioner(cfg.models.captioner)

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        """Adds ``gold_caption``, ``gold_caption_source`` and ``gold_caption_error`` (why a clip that
        should have been captioned has no caption; its prompts then use the label only)."""
        df = df.copy()
        caps: list[str | None] = [None] * len(df)
        src = ["none"] * len(df)
        errors: list[str | None] = [None] * len(df)
        if self.backend == "manifest" and "caption" in df:
            for i, c in enumerate(df["caption"]):
                if isinstance(c, str) and c.strip():
                    caps[i], src[i] = c.strip(), "manifest"
        elif self.backend == "transformers":
            waves, idx = [], []
            for i, p in enumerate(df["path"]):
                try:
                    waves.append(load_audio(p, sample_rate=16000)[0])
                    idx.append(i)
                except AudioError as e:
                    errors[i] = f"gold audio unreadable: {e}"
            try:
                for i, c in zip(idx, self.model.caption(waves, 16000)):
                    if c:
                        caps[i], src[i] = c, "captioner"
                    else:
                        errors[i] = "the captioner returned nothing"
            except Exception as e:  # noqa: BLE001 - recorded per row; prompts fall back to the label
                for i in idx:
                    errors[i] = f"captioner failed: {type(e).__name__}: {e}"
        df["gold_caption"], df["gold_caption_source"], df["gold_caption_error"] = caps, src, errors
        return df


def audio_name(row_id: str) -> str:
    """File name of a clip: the id without its label part. Labels never appear in paths, because a
    label such as 'train' would make datasets' audiofolder loader infer a split from the path."""
    return row_id.split("-", 1)[1] if "-" in row_id else stable_hash("audio", row_id, length=16)


def _retrying(fn: Callable[[list[int]], Any], idx: list[int], retries: int) -> tuple[dict[int, Any], dict[int, str]]:
    """Run ``fn`` on the batch ``idx`` (up to 1 + retries tries), then row by row; -> (results, {row: reason}).

    ``RowErrors`` (some rows failed after the batch's expensive part, e.g. a clip's VAE decode after its
    denoising) is never retried: its results are kept and its rows' reasons recorded. An out-of-memory
    error is not retried at the same batch size: the rows go one by one at once."""
    last, tries = "", 0
    for _ in range(retries + 1):
        tries += 1
        try:
            return dict(zip(idx, fn(idx))), {}
        except RowErrors as e:
            ok = {i: r for j, (i, r) in enumerate(zip(idx, e.results)) if j not in e.errors and r is not None}
            return ok, {idx[j]: f"failed after its batch's denoising, not retried: {reason}"
                        for j, reason in e.errors.items()}
        except Exception as e:  # noqa: BLE001 - recorded per row below
            last = f"{type(e).__name__}: {e}"
            if is_out_of_memory(e):
                break
    if len(idx) == 1:
        return {}, {idx[0]: f"failed after {tries} {'try' if tries == 1 else 'tries'}: {last}"}
    results, errors = {}, {}
    for i in idx:
        r, e = _retrying(fn, [i], 0)
        results.update(r)
        errors.update({k: v if "not retried" in v else f"{v} (alone, after {tries} as a batch)"
                       for k, v in e.items()})
    return results, errors


class Synthesizer:
    """Planned rows -> + audio written to ``OUT/audio/<label>/<id>.<fmt>`` (``path`` relative to OUT).

    ``t2a_path`` overrides ``models.t2a.path`` (e.g. an aligned checkpoint).
    """

    def __init__(self, cfg: Config, out_dir: str | Path, t2a_path: str | None = None, model: Any = None):
        self.cfg, self.out = cfg, Path(out_dir)
        if model is None:   # a served model needs no torch here: a forwarder starts without importing it
            from synthio_ray.models.t2a import load_t2a

            _threads(cfg.resources.torch_threads)
            model = load_t2a(cfg.models.t2a, t2a_path)
        self.model = model

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy().reset_index(drop=True)
        a, m = self.cfg.augment, self.model
        cap = min(m.max_seconds, a.max_seconds or m.max_seconds)
        secs = [float(min(max(s, 0.1), cap)) for s in df["seconds"]]
        bs = self.cfg.models.t2a.batch_size
        paths, errors = [None] * len(df), [None] * len(df)
        for start in range(0, len(df), bs):
            idx = list(range(start, min(start + bs, len(df))))

            def gen(rows: list[int]) -> list[np.ndarray]:
                return m.generate([df["caption"][i] for i in rows], [secs[i] for i in rows],
                                  [int(df["seed"][i]) for i in rows])

            results, errs = _retrying(gen, idx, a.retries)
            for i, wave in results.items():
                rel = Path("audio") / f"{audio_name(df['id'][i])}.{a.audio_format}"
                try:
                    write_audio(self.out / rel, np.asarray(wave).T, m.sample_rate)
                    paths[i] = rel.as_posix()
                except Exception as e:  # noqa: BLE001
                    errors[i] = f"writing audio failed: {type(e).__name__}: {e}"
            for i, e in errs.items():
                errors[i] = f"generation {e}"
        df["seconds"] = secs
        df["path"], df["sample_rate"] = paths, [m.sample_rate if p else None for p in paths]
        df["t2a_model"] = m.model_id
        # the values used, defaults resolved (None for a model that does not say, e.g. a user's wrapper)
        steps, cfg_scale = getattr(m, "steps", None), getattr(m, "cfg_scale", None)
        df["t2a_steps"] = None if steps is None else int(steps)
        df["t2a_cfg_scale"] = None if cfg_scale is None else float(cfg_scale)
        df["error"] = errors
        df["status"] = ["generated" if p else "failed" for p in paths]
        return df


class Scorer:
    """Generated rows -> + ``clap_score``, ``accepted``, ``status`` (accepted | rejected | failed) and
    ``clap_threshold`` (p). ``cfg.augment.threshold`` must be a number here: ``run_augment`` resolves
    ``auto`` before any clip is scored (``synthio_ray.pipeline.threshold``)."""

    def __init__(self, cfg: Config, out_dir: str | Path, model: Any = None):
        if cfg.augment.threshold == "auto":
            raise ValueError("augment.threshold=auto must be calibrated before scoring: run_augment does it "
                             "(synthio_ray.pipeline.threshold.resolve_threshold); give Scorer a number")
        self.cfg, self.out = cfg, Path(out_dir)
        if model is None:
            from synthio_ray.models.clap import load_clap

            _threads(cfg.resources.torch_threads)
            model = load_clap(cfg.models.clap)
        self.model = model

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        from synthio_ray.models.clap import clap_input

        df = df.copy().reset_index(drop=True)
        a, c = self.cfg.augment, self.cfg.models.clap
        scores: list[float | None] = [None] * len(df)
        errors = list(df["error"])
        waves, idx = [], []
        for i, (st, p) in enumerate(zip(df["status"], df["path"])):
            if st != "generated":
                continue
            try:
                waves.append(clap_input(self.model, self.out / p))
                idx.append(i)
            except AudioError as e:
                errors[i] = f"generated audio unreadable: {e}"
        texts = [c.text_template.format(label=display_labels(df["labels"][i])) for i in idx]

        def score(rows: list[int]) -> list[float]:
            pos = [idx.index(i) for i in rows]
            return list(self.model.score([waves[p] for p in pos], self.model.sample_rate,
                                         [texts[p] for p in pos], form=c.score))

        if idx:
            results, errs = _retrying(score, idx, a.retries)
            for i, s in results.items():
                scores[i] = float(s)
            for i, e in errs.items():
                errors[i] = f"scoring {e}"
        status, accepted = [], []
        for i in range(len(df)):
            if scores[i] is None:
                status.append("failed")
                accepted.append(False)
            else:
                ok = (not a.clap_filter) or scores[i] >= a.threshold
                status.append("accepted" if ok else "rejected")
                accepted.append(ok)
        df["clap_score"], df["accepted"], df["status"], df["error"] = scores, accepted, status, errors
        df["clap_model"] = self.model.model_id
        df["clap_threshold"] = float(a.threshold)
        return df
