"""The embedded default dataset: the procedural world's target dataset (:mod:`synthio_ray.world`).

``write_embedded_dataset(folder)`` writes ``folder/<class>/<id>.wav`` (8 kHz mono) and
``folder/manifest.csv`` (path, label, caption) for the world's target classes, recorded through the
target microphone (the domain shift the general corpus the zoo models learn from does not show). The
clips are drawn from fixed seeds, so every machine writes the same bytes and nothing is downloaded or
committed. Each clip's caption is the world grammar's description of it (class, attributes, events,
scene), standing in for an audio captioner's output.
"""
from __future__ import annotations

import csv
from pathlib import Path

from synthio_ray.data.audio import write_audio
from synthio_ray.data.labels import label_slugs
from synthio_ray.world.corpus import TARGET_CLASSES, TARGET_DOMAIN, WORLD_SAMPLE_RATE, WORLD_SECONDS, target_clips

__all__ = ["EMBEDDED_CLASSES", "EMBEDDED_DOMAIN", "EMBEDDED_SAMPLE_RATE", "write_embedded_dataset"]

EMBEDDED_CLASSES = TARGET_CLASSES
EMBEDDED_SAMPLE_RATE = WORLD_SAMPLE_RATE
EMBEDDED_DOMAIN = TARGET_DOMAIN


def write_embedded_dataset(folder: str | Path, clips_per_class: int = 25,
                           seconds: float = WORLD_SECONDS) -> Path:
    """Write target clips ``0 .. clips_per_class - 1`` of every class under ``folder``; return the manifest
    path. Idempotent. (The world report's held-out clips start at 5000, the judge's at 10000.)"""
    folder = Path(folder)
    manifest = folder / "manifest.csv"
    slugs = label_slugs(list(EMBEDDED_CLASSES))
    rows = []
    for label in EMBEDDED_CLASSES:
        for j, clip in enumerate(target_clips(label, clips_per_class, 0, seconds)):
            rel = f"{slugs[label]}/{slugs[label]}_{j:03d}.wav"
            write_audio(folder / rel, clip.wave, EMBEDDED_SAMPLE_RATE)
            rows.append({"path": rel, "label": label, "caption": clip.caption})
    tmp = manifest.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "caption"])
        w.writeheader()
        w.writerows(rows)
    tmp.replace(manifest)
    return manifest
