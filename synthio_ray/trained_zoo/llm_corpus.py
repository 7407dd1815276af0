"""Prompt-answer pairs for the world's LLM: the pipeline's own three prompts, answered by the grammar.

Each example is ``(messages, answer)``: ``messages`` from :mod:`synthio_ray.prompts.templates` exactly as
the pipeline builds them, ``answer`` the JSON a perfect assistant of this world would write
(components: the events and scenes the caption was built from; MixCap: grammar captions of the label
mostly from the offered components; reflection: a grammar caption whose components differ from the
rejected caption's). Seeds make every split repeatable.
"""
from __future__ import annotations

import json

import numpy as np

from synthio_ray.prompts.templates import components_messages, mixcap_messages, reflect_messages
from synthio_ray.world.corpus import TARGET_DOMAIN, random_caption
from synthio_ray.world.scenes import BACKGROUNDS, EVENTS, ROOMS
from synthio_ray.world.sounds import SOUND_CLASSES

__all__ = ["llm_examples", "fixed_stretches", "KINDS"]

KINDS = ("components", "mixcap", "reflect")
_DOMAINS = (TARGET_DOMAIN, "everyday sounds", "environmental sounds", "recordings of the world")
_ROOMS = [r for r in ROOMS if r]
_BGS = [b for b in BACKGROUNDS if b]


def _subset(rng, items: list[str], lo: int = 0) -> list[str]:
    k = int(rng.integers(lo, len(items) + 1))
    return [str(x) for x in rng.choice(items, size=k, replace=False)] if k else []


def _components(rng, label):
    caption, ev, sc = random_caption(rng, label)
    return components_messages(label, caption), {"events": ev, "scenes": sc}


def _split_scenes(scenes):
    return [s for s in scenes if s in ROOMS], [s for s in scenes if s in BACKGROUNDS]


def _mixcap(rng, label):
    events = _subset(rng, list(EVENTS))
    scenes = _subset(rng, _ROOMS) + _subset(rng, _BGS)
    n = int(rng.integers(1, 5))
    written = [random_caption(rng, label)[0] for _ in range(int(rng.choice([0, 0, 0, 1, 2])))]
    rooms, bgs = _split_scenes(scenes)
    caps: list[str] = []
    while len(caps) < n:
        fresh = rng.random() < 0.15   # now and then a component that was not offered
        cap = random_caption(rng, label, None if fresh or not events else events,
                             None if fresh or not rooms else rooms, None if fresh or not bgs else bgs)[0]
        if cap not in caps and cap not in written:
            caps.append(cap)
    msgs = mixcap_messages(label, str(rng.choice(_DOMAINS)), events, scenes, n, written or None)
    return msgs, {"captions": caps}


def _reflect(rng, label):
    rejected, rej_ev, rej_sc = random_caption(rng, label)
    ev = [e for e in _subset(rng, list(EVENTS)) if e not in rej_ev]
    rooms = [r for r in _subset(rng, _ROOMS) if r not in rej_sc]
    bgs = [b for b in _subset(rng, _BGS) if b not in rej_sc]
    other_ev = [e for e in EVENTS if e not in rej_ev]
    cap = random_caption(rng, label, ev or other_ev, rooms or [r for r in _ROOMS if r not in rej_sc],
                         bgs or [b for b in _BGS if b not in rej_sc])[0]
    msgs = reflect_messages(label, str(rng.choice(_DOMAINS)), rejected, ev, rooms + bgs)
    return msgs, {"caption": cap}


_MAKERS = {"components": _components, "mixcap": _mixcap, "reflect": _reflect}


def llm_examples(count: int, seed: int, kinds=KINDS, weights=(0.3, 0.4, 0.3)) -> list[tuple[str, list, str]]:
    """``count`` examples ``(kind, messages, answer_json)`` over every class of the world."""
    rng = np.random.default_rng([seed, 4242])
    labels = list(SOUND_CLASSES)
    out = []
    for _ in range(count):
        kind = str(rng.choice(list(kinds), p=np.array(weights[:len(kinds)]) / sum(weights[:len(kinds)])))
        msgs, answer = _MAKERS[kind](rng, str(rng.choice(labels)))
        out.append((kind, msgs, json.dumps(answer)))
    return out


def fixed_stretches() -> list[str]:
    """The constant stretches of the three prompts' wording (between their variable parts), longest first."""
    marks = [chr(0xE000 + i) for i in range(6)]
    texts = [m[1]["content"] for m in (
        components_messages(marks[0], marks[1]),
        mixcap_messages(marks[0], marks[1], [marks[2]], [marks[3]], marks[4]),   # type: ignore[arg-type]
        mixcap_messages(marks[0], marks[1], [marks[2]], [marks[3]], marks[4], [marks[5]]),  # type: ignore[arg-type]
        reflect_messages(marks[0], marks[1], marks[2], [marks[3]], [marks[4]]),
    )] + [components_messages("x", "y")[0]["content"]]
    parts: set[str] = set()
    for t in texts:
        for m in marks:
            t = t.replace(m, "\x00")
        parts.update(p for p in t.split("\x00") if len(p) >= 4)
    return sorted(parts, key=len, reverse=True)
