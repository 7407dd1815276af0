"""Safe parsing of LLM output: JSON only (never ``eval``), checked against a schema, bounded retries.

``parse_reply(text, schema, check)`` returns ``(value, None)`` or ``(None, reason)``. It accepts a
JSON object on its own, inside a Markdown code fence, or surrounded by chatter, and takes the first
balanced ``{...}`` that parses. ``check`` adds rules a schema cannot say (e.g. the label must be
named); it returns a reason string or None.

``ask_json(model, conversations, schema, ...)`` runs a batch through a ``ChatModel`` and re-asks only
the rows whose answer did not parse, telling the model what was wrong, at most ``retries`` times.
Every row comes back with its attempts and either a value or the last reason.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import jsonschema

__all__ = ["parse_reply", "ParsedReply", "ask_json", "caption_check", "caption_problem", "word_count",
           "CAPTION_SLACK"]

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)


def _balanced_objects(text: str):
    """Yield each substring that is a brace-balanced ``{...}`` (string-literal aware), in order."""
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        depth, in_str, esc = 0, False, False
        for j in range(start, len(text)):
            ch = text[j]
            if in_str:
                if esc:
                    esc = False
                elif ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    yield text[start:j + 1]
                    break


def parse_reply(text: Any, schema: dict, check: Callable[[Any], str | None] | None = None
                ) -> tuple[Any, str | None]:
    """LLM text -> (value, None) when it holds a JSON object valid for ``schema`` (and ``check``),
    else (None, reason)."""
    if not isinstance(text, str) or not text.strip():
        return None, "empty reply"
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text.strip()]
    candidates += list(_balanced_objects(text))
    last = "no JSON object in the reply"
    for cand in candidates:
        try:
            value = json.loads(cand)
        except (json.JSONDecodeError, RecursionError):
            continue
        if not isinstance(value, dict):
            last = f"expected a JSON object, got {type(value).__name__}"
            continue
        try:
            jsonschema.validate(value, schema)
        except jsonschema.ValidationError as e:
            where = "/".join(map(str, e.absolute_path)) or "the object"
            last = f"schema: {where}: {e.message[:200]}"
            continue
        if check is not None:
            reason = check(value)
            if reason:
                last = reason
                continue
        return value, None
    return None, last


def word_count(text: str) -> int:
    return len(re.findall(r"\S+", text))


CAPTION_SLACK = 1.2   # captions may run 20 % over the prompt's word limit: LLMs count loosely
_FILLER = {"a", "an", "and", "the", "of", "or", "in", "on", "with"}


def caption_problem(caption: Any, label: str, max_words: int) -> str | None:
    """Why one caption is unusable, or None. It must name every content word of ``label`` as a whole
    word (case-insensitive; a plural "s"/"es" is allowed: "cats" names "cat", "scattered" does not) and
    have at most ``max_words * CAPTION_SLACK`` words."""
    if not isinstance(caption, str) or not caption.strip():
        return "empty caption"
    low = caption.lower()
    for w in re.findall(r"[a-z0-9]+", label.lower()):
        if w not in _FILLER and not re.search(rf"\b{re.escape(w)}(?:e?s)?\b", low):
            return f"caption does not name the label '{label}': {caption[:80]!r}"
    n, limit = word_count(caption), int(max_words * CAPTION_SLACK)
    if n > limit:
        return f"caption has {n} words (limit {max_words}, {limit} with slack): {caption[:80]!r}"
    return None


def caption_check(label: str, max_words: int, key: str = "captions") -> Callable[[Any], str | None]:
    """A ``check`` for caption answers. ``key="caption"`` (one caption): that caption must pass
    :func:`caption_problem`. ``key="captions"`` (a list): at least one must pass; the caller keeps the
    ones that do and asks again for the rest."""

    def check(value: Any) -> str | None:
        caps = value[key] if isinstance(value[key], list) else [value[key]]
        problems = [caption_problem(c, label, max_words) for c in caps]
        if caps and any(p is None for p in problems):
            return None
        return problems[0] if problems else "no caption"

    return check


@dataclass
class ParsedReply:
    """The outcome of asking for JSON: the value, or the reason it failed, and every raw reply."""

    value: Any = None
    error: str | None = None
    attempts: int = 0
    raw: list[str | None] = field(default_factory=list)


def _repair_turn(conversation: list[dict], reply: str | None, reason: str) -> list[dict]:
    return conversation + [
        {"role": "assistant", "content": (reply or "")[:2000]},
        {"role": "user", "content": f"That answer could not be used ({reason}). Reply again with only "
                                    "the JSON object in the requested format."},
    ]


def ask_json(model, conversations: list[list[dict]], schema: dict, *,
             checks: list[Callable[[Any], str | None] | None] | None = None, retries: int = 2,
             seeds: list[int] | None = None, **gen_kwargs: Any) -> list[ParsedReply]:
    """Ask ``model`` (a ChatModel) and parse each reply; re-ask failed rows up to ``retries`` times.

    ``checks[i]`` is row i's extra rule. ``seeds[i]`` seeds row i (attempt k uses ``seeds[i] + k``).
    """
    n = len(conversations)
    checks = checks or [None] * n
    seeds = seeds if seeds is not None else list(range(n))
    out = [ParsedReply() for _ in range(n)]
    pending = list(range(n))
    convs = [list(c) for c in conversations]
    for attempt in range(retries + 1):
        if not pending:
            break
        results = model.chat([convs[i] for i in pending], seeds=[seeds[i] + attempt for i in pending],
                             json_schema=schema, **gen_kwargs)
        still = []
        for i, res in zip(pending, results):
            rec = out[i]
            rec.attempts += 1
            rec.raw.append(res.text)
            if res.error:
                rec.error = f"model error: {res.error}"
                still.append(i)
                continue
            value, reason = parse_reply(res.text, schema, checks[i])
            if reason is None:
                rec.value, rec.error = value, None
            else:
                rec.error = reason
                convs[i] = _repair_turn(conversations[i], res.text, reason)
                still.append(i)
        pending = still
    return out
