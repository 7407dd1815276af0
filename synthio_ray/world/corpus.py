"""Drawing clips of the world: a class instance, its events, background and room, and its caption.

:func:`draw_clip` turns a seed into a :class:`Clip` (8 kHz mono wave, caption, and the facts the caption
was built from). The **general corpus** (every class, clean recordings) stands in for the large
captioned corpus that the zoo's models are pre-trained on; the **target dataset** (:data:`TARGET_CLASSES`,
recorded through :func:`~synthio_ray.world.scenes.target_microphone`) is the small dataset a user brings.
The two never share seeds, so no model pre-trained on the general corpus has heard a target clip.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from synthio_ray.ids import stable_int
from synthio_ray.world.scenes import BACKGROUNDS, EVENTS, ROOMS, apply_room, target_microphone
from synthio_ray.world.sounds import SOUND_CLASSES, TIMES, Attributes

__all__ = ["WORLD_SAMPLE_RATE", "WORLD_SECONDS", "TARGET_CLASSES", "TARGET_DOMAIN", "Clip", "draw_clip",
           "caption_for", "general_corpus", "target_clips", "random_caption"]

WORLD_SAMPLE_RATE = 8000
WORLD_SECONDS = 2.0
TARGET_CLASSES = ("dog bark", "cat meow", "bird chirp", "siren", "door knock", "footsteps", "rain",
                  "fire crackle")
TARGET_DOMAIN = "everyday sounds recorded on a handheld recorder"


@dataclass
class Clip:
    """One drawn clip: ``wave`` ``(frames,)`` float32 at :data:`WORLD_SAMPLE_RATE`, its ``caption``, and the
    parts it was built from (``events``, ``scenes``: the phrases a component extractor should find)."""

    label: str
    wave: np.ndarray
    caption: str
    attributes: Attributes
    events: list[str] = field(default_factory=list)
    scenes: list[str] = field(default_factory=list)
    target: bool = False


def _level(u: float, words: tuple[str, str, str]) -> str:
    return words[0] if u < 1 / 3 else words[2] if u > 2 / 3 else words[1]


def _articles(text: str) -> str:
    text = re.sub(r"\b([Aa])n? (?=[aeiouAEIOU])", r"\1n ", text)
    return re.sub(r"\b([Aa])n (?=[^aeiouAEIOU\W])", r"\1 ", text)


def caption_for(label: str, a: Attributes, events: list[str], background: str | None, room: str | None,
                faint: bool = False, order: int = 0) -> str:
    """The grammar: the class phrase with its attribute words, then events, then the scene."""
    c = SOUND_CLASSES[label]
    adj = []
    if faint:
        adj.append("faint")
    pitch = _level(a.pitch, ("low", "", "high-pitched") if c.pitched else ("dull", "", "bright"))
    if pitch:
        adj.append(pitch)
    sound = c.phrase.format(adj="".join(w + " " for w in adj), times=TIMES.get(a.count, f"{a.count} times"),
                            tempo=_level(a.rate, c.tempo))
    parts = [sound]
    if events:
        parts.append("with " + " and ".join(events))
    scene = " ".join(p for p in (room, background) if p)
    if scene and order % 2:
        text = f"{scene}, " + ", ".join(parts)
    else:
        text = ", ".join(parts + ([scene] if scene else []))
    return _articles(re.sub(r"\s+", " ", text).strip(" ,"))


def draw_clip(seed: int | tuple, label: str | None = None, target: bool = False,
              classes: tuple[str, ...] | None = None, seconds: float = WORLD_SECONDS) -> Clip:
    """A seeded ``seconds``-long clip of ``label`` (or of a class drawn from ``classes``, default all),
    recorded through the target microphone when ``target``. The same arguments always give the same clip."""
    sr, n = WORLD_SAMPLE_RATE, int(seconds * WORLD_SAMPLE_RATE)
    rng = np.random.default_rng(stable_int("world", *seed) if isinstance(seed, tuple) else seed)
    names = list(classes or SOUND_CLASSES)
    label = label or names[int(rng.integers(len(names)))]
    c = SOUND_CLASSES[label]
    lo_count = 2 if label == "door knock" else 1
    a = Attributes(pitch=float(rng.random()), rate=float(rng.random()),
                   count=int(rng.integers(lo_count, lo_count + 4)))
    x = c.make(rng, n, sr, a)
    x = x / (np.abs(x).max() + 1e-9)
    events = [str(e) for e in rng.choice(list(EVENTS), size=int(rng.choice([0, 0, 1, 1, 2])), replace=False)]
    for e in events:
        seg = EVENTS[e](rng, sr)
        start = int(rng.integers(0, max(n - len(seg), 1)))
        m = min(len(seg), n - start)
        x[start:start + m] += seg[:m] / (np.abs(seg).max() + 1e-9) * rng.uniform(0.3, 0.6)
    room = list(ROOMS)[int(rng.integers(len(ROOMS)))]
    if ROOMS[room]:
        x = apply_room(x, rng, sr, *ROOMS[room])
    background = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    faint = False
    if background:
        bed = BACKGROUNDS[background](rng, n, sr)
        faint = bool(rng.random() < 0.2)
        snr = rng.uniform(3, 8) if faint else rng.uniform(14, 26)
        x = x + bed / (np.std(bed) + 1e-9) * np.std(x) * 10 ** (-snr / 20)
    if target:
        x = target_microphone(x / (np.abs(x).max() + 1e-9), rng, sr)
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.4, 0.9)
    caption = caption_for(label, a, events, background, room, faint, order=int(rng.integers(2)))
    scenes = [p for p in (room, background) if p]
    return Clip(label, x.astype(np.float32), caption, a, events, scenes, target)


def general_corpus(count: int, split: str = "train", start: int = 0) -> list[Clip]:
    """``count`` clips of the general corpus (every class, clean), split ``train`` or ``val`` (disjoint seeds)."""
    key = {"train": 0, "val": 1}[split]
    return [draw_clip(("general", key, i)) for i in range(start, start + count)]


def target_clips(label: str, count: int, start: int = 0, seconds: float = WORLD_SECONDS) -> list[Clip]:
    """Clips ``start .. start+count-1`` of a target class, through the target microphone."""
    ci = TARGET_CLASSES.index(label)
    return [draw_clip(("target", ci, j), label=label, target=True, seconds=seconds)
            for j in range(start, start + count)]


def random_caption(rng: np.random.Generator, label: str, events: list[str] | None = None,
                   rooms: list[str] | None = None, backgrounds: list[str] | None = None) -> tuple[str, list, list]:
    """A grammar caption of ``label`` with attributes drawn from ``rng`` and components drawn from the
    given lists (all of the world's when None); no audio. Returns (caption, events, scenes)."""
    lo = 2 if label == "door knock" else 1
    a = Attributes(float(rng.random()), float(rng.random()), int(rng.integers(lo, lo + 4)))
    pool = list(events) if events is not None else list(EVENTS)
    k = min(len(pool), int(rng.choice([0, 1, 1, 2])))
    ev = [str(e) for e in rng.choice(pool, size=k, replace=False)] if k else []
    room_pool = [r for r in ROOMS if r] if rooms is None else rooms
    bg_pool = [b for b in BACKGROUNDS if b] if backgrounds is None else backgrounds
    room = str(rng.choice(room_pool)) if room_pool and rng.random() < 0.8 else None
    bg = str(rng.choice(bg_pool)) if bg_pool and rng.random() < 0.7 else None
    faint = bool(bg and rng.random() < 0.15)
    caption = caption_for(label, a, ev, bg, room, faint, order=int(rng.integers(2)))
    return caption, ev, [p for p in (room, bg) if p]
