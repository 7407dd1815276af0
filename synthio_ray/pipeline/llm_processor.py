"""LLM stages through a ``ray.data.llm`` processor (vLLM engine on GPUs, or the HTTP processor).

An ``_LLMStage`` subclass splits into its two halves around the processor:

    rows -> PromptRows (one request row per input row: messages, seed, the input row as JSON)
         -> processor (chat template, tokenize, engine with guided JSON, detokenize)
         -> AnswerRows (parse each answer against the stage's schema and rules, cache it, finish)

The engine decodes under the prompt's JSON schema (``structured_outputs``), so answers parse; one
that still does not (or a row the engine failed, ``__inference_error__``) falls back like any other
unusable answer, with the reason in the row. Rows whose answers are already cached never reach the
processor (``split_cached`` in the driver).
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from synthio_ray.prompts.parse import parse_reply

__all__ = ["PromptRows", "AnswerRows", "llm_processor", "uses_processor"]


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and np.isnan(v):
        return None
    return v


def uses_processor(cfg) -> bool:
    """vLLM always runs as a Ray Data processor; HTTP does when ``models.llm.http_processor`` is set."""
    return cfg.models.llm.backend == "vllm" or (cfg.models.llm.backend == "http" and cfg.models.llm.http_processor)


class PromptRows:
    """Input rows -> request rows (``messages``, ``seed``, ``_row``: the input row as JSON)."""

    def __init__(self, stage_cls: type, stage_kwargs: dict):
        self.stage = stage_cls(**stage_kwargs)

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        items, _ = self.stage.prompts(df)
        rows = []
        for rec, item in zip(df.to_dict("records"), items):
            if item is None:
                raise ValueError("a row without a prompt must not reach the LLM processor (split it off first)")
            rows.append({"_row": json.dumps(_plain(rec)), "messages": [dict(m) for m in item[1]],
                         "seed": self.stage.seed_of(item)})
        return pd.DataFrame(rows)


class AnswerRows:
    """Processor output rows (``llm_text`` / ``llm_error`` / ``__inference_error__``) -> the stage's rows."""

    def __init__(self, stage_cls: type, stage_kwargs: dict):
        self.stage = stage_cls(**stage_kwargs)

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        df_in = pd.DataFrame([json.loads(r) for r in df["_row"]])
        items, states = self.stage.prompts(df_in)
        answers = []
        for i, item in enumerate(items):
            engine_error = df["__inference_error__"].iloc[i] if "__inference_error__" in df else None
            text = df["llm_text"].iloc[i] if "llm_text" in df else None
            http_error = df["llm_error"].iloc[i] if "llm_error" in df else None
            if isinstance(engine_error, str) and engine_error:
                ans = {"value": None, "error": f"model error: {engine_error[:300]}", "attempts": 1}
            elif isinstance(http_error, str) and http_error:
                ans = {"value": None, "error": f"model error: {http_error[:300]}", "attempts": 1}
            else:
                value, reason = parse_reply(text, self.stage.schema, item[2])
                ans = {"value": value, "error": reason, "attempts": 1}
            self.stage.cache.put(self.stage.cache_key(item), ans)
            answers.append(ans)
        return self.stage.finish(df_in, states, answers)


def llm_processor(cfg, schema: dict):
    """The configured ``ray.data.llm`` processor; its rows carry ``messages`` and ``seed`` in, ``llm_text``
    (and, for HTTP, ``llm_error``) out, plus every input column."""
    keep = lambda row: {k: v for k, v in row.items() if k in ("_row", "llm_text", "llm_error")}  # noqa: E731
    if cfg.models.llm.backend == "vllm":
        from synthio_ray.models.llm_vllm import build_vllm_processor

        return build_vllm_processor(cfg.models.llm, preprocess=lambda row: {"messages": row["messages"],
                                                                            "seed": row["seed"]},
                                    postprocess=keep, json_schema=schema)
    from synthio_ray.models.llm_http import build_http_processor

    return build_http_processor(cfg.models.llm, preprocess=lambda row: {"messages": row["messages"],
                                                                        "seed": row["seed"]},
                                postprocess=keep, json_schema=schema, num_cpus=cfg.resources.cpus_per_actor / 4)
