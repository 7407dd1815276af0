"""The LLM stages of the augmentation pipeline as plain classes: ``stage(pandas.DataFrame) -> pandas.DataFrame``.

``ComponentExtractor`` (prompt 1: events and scenes of a caption), ``CaptionWriter`` (prompt 2: MixCap, LLM-only or
template captions, checked one by one, re-asked for the missing ones) and ``Reflector`` (prompt 3: a rewrite of a
rejected clip's caption). They share ``_LLMStage``: what to ask, a bounded re-ask of unparseable answers, and an
on-disk answer cache (``OUT/llm_cache``) so a re-run never asks twice; a ``ray.data.llm`` processor can sit between
``prompts`` and ``finish`` instead (``synthio_ray.pipeline.llm_processor``). Output rows have ``CLIP_COLUMNS``.
"""
from __future__ import annotations

import copy
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthio_ray.config import Config
from synthio_ray.data.labels import display_labels
from synthio_ray.ids import chain_id, clip_id, clip_seed, stable_hash, stable_int
from synthio_ray.pipeline.stages import CLIP_COLUMNS, _threads, label_text
from synthio_ray.prompts.parse import ask_json, caption_check, caption_problem
from synthio_ray.prompts.templates import (COMPONENTS_SCHEMA, MAX_CAPTION_WORDS, MIXCAP_SCHEMA,
                                           PROMPT_VERSION, REFLECT_SCHEMA, components_messages,
                                           mixcap_messages, reflect_messages, template_caption)

__all__ = ["AnswerCache", "ComponentExtractor", "CaptionWriter", "Reflector", "pool_components"]


class AnswerCache:
    """LLM answers on disk, one JSON file per key (atomic writes), so re-runs reuse them."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def key(self, *parts: Any) -> str:
        return stable_hash(*[json.dumps(p, sort_keys=True, default=str) for p in parts], length=24)

    def get(self, key: str) -> dict | None:
        p = self.folder / f"{key}.json"
        try:
            return json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, value: dict) -> None:
        p = self.folder / f"{key}.json"
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(value))
        tmp.replace(p)


class _LLMStage:
    """Shared LLM plumbing. A subclass says what to ask (``prompts``) and what to make of the answers
    (``finish``); ``__call__`` asks a ChatModel with bounded re-asks, and a Ray Data LLM processor
    (vLLM) can sit between ``prompts`` and ``finish`` instead (``synthio_ray.pipeline.llm_processor``).
    Answers are cached on disk by content, so a re-run never asks twice."""

    stage = "llm"
    schema: dict = {}

    def __init__(self, cfg: Config, cache_dir: str | Path, chat_model: Any = None):
        self.cfg = cfg
        self.llm_cfg = cfg.models.llm
        self._model = chat_model
        self.cache = AnswerCache(Path(cache_dir) / self.stage)

    @property
    def model(self):
        if self._model is None:
            from synthio_ray.models.llm import load_chat_model

            _threads(self.cfg.resources.torch_threads)
            self._model = load_chat_model(self.llm_cfg)
        return self._model

    @property
    def model_id(self) -> str:
        return getattr(self._model, "model_id", None) or self.llm_cfg.path

    # -- what subclasses implement --------------------------------------------------------------------
    def prompts(self, df: pd.DataFrame) -> tuple[list[tuple | None], list[Any]]:
        """One item ``(row key, messages, check)`` or None (nothing to ask) per row, and per-row state."""
        raise NotImplementedError

    def finish(self, df: pd.DataFrame, states: list[Any], answers: list[dict | None]) -> pd.DataFrame:
        """Rows out, from the rows in, their states and answers (``{"value", "error", "attempts"}``)."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------------
    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        items, states = self.prompts(df)
        return self.finish(df, states, self.ask(items))

    def cache_key(self, item: tuple) -> str:
        c = self.llm_cfg
        settings = dict(model=c.path, backend=c.backend, max_tokens=c.max_tokens, temperature=c.temperature,
                        top_p=c.top_p, retries=c.retries, seed=self.cfg.seed)
        return self.cache.key(self.stage, PROMPT_VERSION, settings, item[0], item[1])

    def seed_of(self, item: tuple) -> int:
        return stable_int(self.stage, self.cfg.seed, item[0], bits=31)

    def cached(self, df: pd.DataFrame) -> list[bool]:
        """Per row: True when nothing needs asking (no prompt, or its answer is on disk)."""
        items, _ = self.prompts(df)
        return [it is None or self.cache.get(self.cache_key(it)) is not None for it in items]

    def ask(self, items: list[tuple | None]) -> list[dict | None]:
        """Answers for the items (None stays None), from the cache or from the ChatModel."""
        c = self.llm_cfg
        keys = [self.cache_key(it) if it is not None else None for it in items]
        out: list[dict | None] = [self.cache.get(k) if k else None for k in keys]
        todo = [i for i, (it, o) in enumerate(zip(items, out)) if it is not None and o is None]
        if todo:
            replies = ask_json(self.model, [items[i][1] for i in todo], self.schema,
                               checks=[items[i][2] for i in todo], retries=c.retries,
                               seeds=[self.seed_of(items[i]) for i in todo],
                               max_tokens=c.max_tokens, temperature=c.temperature, top_p=c.top_p)
            for i, r in zip(todo, replies):
                out[i] = {"value": r.value, "error": r.error, "attempts": r.attempts}
                self.cache.put(keys[i], out[i])
        return out


class ComponentExtractor(_LLMStage):
    """Gold rows with ``gold_caption`` -> + ``events``, ``scenes``, ``components_error`` (prompt 1)."""

    stage = "components"
    schema = COMPONENTS_SCHEMA

    def prompts(self, df: pd.DataFrame) -> tuple[list[tuple | None], list[Any]]:
        items = [(sid, components_messages(display_labels(labs), cap), None) if isinstance(cap, str) and cap else None
                 for sid, labs, cap in zip(df["id"], df["labels"], df["gold_caption"])]
        return items, [None] * len(df)

    def finish(self, df: pd.DataFrame, states: list[Any], answers: list[dict | None]) -> pd.DataFrame:
        df = df.copy()
        events, scenes, errors = [], [], []
        for ans in answers:
            ok = ans is not None and ans["value"] is not None
            events.append(_clean_phrases(ans["value"]["events"]) if ok else [])
            scenes.append(_clean_phrases(ans["value"]["scenes"]) if ok else [])
            errors.append(None if ok or ans is None else ans["error"])
        df["events"], df["scenes"], df["components_error"] = events, scenes, errors
        return df


def _clean_phrases(items: list[str]) -> list[str]:
    seen, out = set(), []
    for s in items:
        s = re.sub(r"\s+", " ", str(s)).strip().strip(".,;")
        if s and s.lower() not in seen:
            seen.add(s.lower())
            out.append(s)
    return out


def pool_components(gold: pd.DataFrame) -> dict[str, tuple[list[str], list[str]]]:
    """Events and scenes pooled over all gold clips of each label text (first-seen order by id)."""
    pools: dict[str, tuple[list[str], list[str]]] = {}
    for _, r in gold.sort_values("id").iterrows():
        ev, sc = pools.setdefault(label_text(r["labels"]), ([], []))
        ev.extend(x for x in r["events"] if x.lower() not in {e.lower() for e in ev})
        sc.extend(x for x in r["scenes"] if x.lower() not in {s.lower() for s in sc})
    return pools


def _subsample(items: list[str], fraction: float, rng: np.random.Generator) -> list[str]:
    if not items:
        return []
    k = max(1, math.ceil(fraction * len(items)))
    return [items[i] for i in sorted(rng.choice(len(items), size=k, replace=False))]


def _clip_row(cfg: Config, gold: dict, slug: str, caption_index: int, round_: int, caption: str,
              source: str, llm_error: str | None, components: dict, llm_model: str | None,
              parent_id: str | None = None) -> dict:
    seconds = float(gold["seconds"])
    return {
        "id": clip_id(slug, gold["source_id"], caption_index, round_),
        "chain_id": chain_id(gold["source_id"], caption_index),
        "source_id": gold["source_id"], "source_path": gold["source_path"], "label": gold["label"],
        "labels": list(gold["labels"]), "label_slug": slug, "caption_index": caption_index,
        "round": round_, "parent_id": parent_id, "caption": caption, "caption_source": source,
        "llm_error": llm_error, "components": json.dumps(components), "prompt_version": PROMPT_VERSION,
        "seed": clip_seed(cfg.seed, gold["source_id"], caption_index, round_), "seconds": seconds,
        "path": None, "sample_rate": None, "clap_score": None, "accepted": None, "status": "planned",
        "error": None, "t2a_model": None, "clap_model": None, "llm_model": llm_model,
    }


class CaptionWriter(_LLMStage):
    """Gold rows (with events/scenes) -> caption rows of round 0 (MixCap, LLM-only or template).

    Captions are checked one by one (:func:`caption_problem`); the valid ones fill the clip's slots in
    order. Ask ``ask`` (0-based, of ``augment.caption_asks``) asks only for the slots the earlier asks,
    replayed from the answer cache, left empty; it emits rows for the captions it adds, and with
    ``final`` the template caption for every slot still empty (``template_fallback``, with the reasons).
    Called as a stage (ChatModel backends), one call runs ``asks`` asks in a row, from ``ask`` on, so a
    single stream does them all; the ``ray.data.llm`` processor path runs one ask per pass.
    ``pools``: label key -> (events, scenes) pooled over that label's gold clips; ``slugs``: label key ->
    file-name-safe slug; ``domain``: what the dataset's sounds are.
    """

    stage = "mixcap"

    def __init__(self, cfg: Config, cache_dir: str | Path, pools: dict, slugs: dict, domain: str,
                 chat_model: Any = None, ask: int = 0, final: bool = True, asks: int = 1):
        super().__init__(cfg, cache_dir, chat_model)
        self.pools, self.slugs, self.domain = pools, slugs, domain
        self.mode, self.k = cfg.augment.captions, cfg.augment.k
        self.ask_index, self.final, self.asks = ask, final, max(1, asks)

    schema = MIXCAP_SCHEMA

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        frames = []
        last = self.ask_index + self.asks - 1
        for q in range(self.ask_index, last + 1):
            step = copy.copy(self)
            step.ask_index, step.final, step.asks = q, self.final and q == last, 1
            items, states = step.prompts(df)
            frames.append(step.finish(df, states, step.ask(items)))
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def _item(self, g: dict, comp: dict, written: list[str], ask: int) -> tuple:
        """Ask ``ask``'s request: its own key (so its own seed and cache entry) and the captions kept so far."""
        shown = display_labels(g["labels"])
        key = g["source_id"] if ask == 0 else f"{g['source_id']}#ask{ask}"
        return (key, mixcap_messages(shown, self.domain, comp["events"], comp["scenes"], self.k - len(written),
                                     written), caption_check(shown, MAX_CAPTION_WORDS))

    def _take(self, g: dict, written: list[str], ans: dict | None) -> tuple[list[str], list[str]]:
        """The valid new captions of an answer (at most the slots left) and why the others were dropped."""
        if ans is None or ans["value"] is None:
            return [], [(ans or {}).get("error") or "no answer"]
        shown, new, problems = display_labels(g["labels"]), [], []
        seen = {c.strip().lower() for c in written}
        for c in ans["value"]["captions"]:
            why = caption_problem(c, shown, MAX_CAPTION_WORDS)
            if why is None and c.strip().lower() in seen:
                why = f"repeats a caption: {c[:80]!r}"
            if why is None and len(written) + len(new) < self.k:
                new.append(c.strip())
                seen.add(c.strip().lower())
            elif why is not None:
                problems.append(why)
        return new, problems

    def prompts(self, df: pd.DataFrame) -> tuple[list[tuple | None], list[Any]]:
        a = self.cfg.augment
        items, states = [], []
        for g in df.to_dict("records"):
            ev, sc = self.pools.get(label_text(g["labels"]), ([], [])) if self.mode == "mixcap" else ([], [])
            rng = np.random.default_rng(stable_int("mixcap-subsample", self.cfg.seed, g["source_id"]))
            comp = {"events": _subsample(list(ev), a.component_fraction, rng),
                    "scenes": _subsample(list(sc), a.component_fraction, rng)}
            written, problems = [], []
            if self.mode != "template":
                for q in range(self.ask_index):          # replay the earlier asks from the cache
                    if len(written) >= self.k:
                        break
                    earlier = self.cache.get(self.cache_key(self._item(g, comp, written, q)))
                    new, problems = self._take(g, written, earlier)
                    written += new
            states.append({"comp": comp, "written": written, "problems": problems})
            items.append(None if self.mode == "template" or len(written) >= self.k
                         else self._item(g, comp, written, self.ask_index))
        return items, states

    def finish(self, df: pd.DataFrame, states: list[Any], answers: list[dict | None]) -> pd.DataFrame:
        a = self.cfg.augment
        rows = []
        for g, st, ans in zip(df.to_dict("records"), states, answers):
            slug = self.slugs[label_text(g["labels"])]
            comp, written = st["comp"], st["written"]
            if self.mode == "template":
                new, problems = [template_caption(display_labels(g["labels"]), a.template)] * self.k, []
                source = "template"
            elif len(written) >= self.k:
                continue
            else:
                new, problems = self._take(g, written, ans)
                source = self.mode
            for j, cap in enumerate(new, start=len(written)):
                rows.append(_clip_row(self.cfg, g, slug, j, 0, cap, source,
                                      None, comp, None if source == "template" else self.model_id))
            if self.final and source != "template":
                err = (f"after {self.ask_index + 1} asks the LLM gave {len(written) + len(new)} of {self.k} "
                       f"usable captions; last problems: {'; '.join(problems)[:400]}")
                for j in range(len(written) + len(new), self.k):
                    rows.append(_clip_row(self.cfg, g, slug, j, 0, template_caption(display_labels(g["labels"]),
                                                                                     a.template),
                                          "template_fallback", err, comp, self.model_id))
        return pd.DataFrame(rows, columns=CLIP_COLUMNS)


class Reflector(_LLMStage):
    """Rejected rows of round r-1 -> their replacement rows for round r (prompt 3).

    ``accepted``: label text -> (events, scenes) of the label's accepted captions so far.
    """

    stage = "reflect"

    def __init__(self, cfg: Config, cache_dir: str | Path, round_: int, accepted: dict, domain: str,
                 chat_model: Any = None):
        super().__init__(cfg, cache_dir, chat_model)
        self.round, self.accepted, self.domain = round_, accepted, domain

    schema = REFLECT_SCHEMA

    def prompts(self, df: pd.DataFrame) -> tuple[list[tuple | None], list[Any]]:
        items = []
        for r in df.to_dict("records"):
            lab = label_text(r["labels"])
            ev, sc = self.accepted.get(lab, ([], []))
            shown = display_labels(r["labels"])
            items.append((r["id"], reflect_messages(shown, self.domain, r["caption"], list(ev), list(sc)),
                          caption_check(shown, MAX_CAPTION_WORDS, key="caption")))
        return items, [None] * len(df)

    def finish(self, df: pd.DataFrame, states: list[Any], answers: list[dict | None]) -> pd.DataFrame:
        rows = []
        for r, ans in zip(df.to_dict("records"), answers):
            gold = {"source_id": r["source_id"], "source_path": r["source_path"], "label": r["label"],
                    "labels": list(r["labels"]), "seconds": r["seconds"]}
            comp = json.loads(r["components"]) if isinstance(r["components"], str) else {}
            if ans is not None and ans["value"] is not None:
                caption, source, err = ans["value"]["caption"], "reflection", None
            else:
                caption = template_caption(display_labels(r["labels"]), self.cfg.augment.template)
                source, err = "reflection_fallback", (ans or {}).get("error")
            rows.append(_clip_row(self.cfg, gold, r["label_slug"], int(r["caption_index"]), self.round, caption,
                                  source, err, comp, self.model_id, parent_id=r["id"]))
        return pd.DataFrame(rows, columns=CLIP_COLUMNS)
