"""The world report's model-level measures, on held-out target clips that no model saw.

Models come in through the pipeline's own backends (``load_t2a``, ``load_clap``, ``TransformersChat``),
so a measure is also a check that the backend loads and drives the checkpoint as a job would. The
:class:`~synthio_ray.world.judge.Judge` (trained on real target clips only, never used by the pipeline)
decides what a clip sounds like. Every function returns plain numbers (or dicts of them).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from synthio_ray.evaluate.fad import frechet_distance
from synthio_ray.world.corpus import TARGET_CLASSES, WORLD_SAMPLE_RATE, Clip, random_caption, target_clips
from synthio_ray.world.judge import Judge

__all__ = ["REPORT_START", "held_out", "vae_ceiling", "clap_zero_shot", "generate_for_labels",
           "clap_filter_gap", "judge_frechet", "set_consistency"]

REPORT_START = 5_000  # target clips REPORT_START.. are the report's (the embedded dataset uses 0..)


def held_out(per_class: int = 25, labels: Sequence[str] = TARGET_CLASSES) -> list[Clip]:
    """``per_class`` held-out target clips of each label."""
    return [c for lab in labels for c in target_clips(lab, per_class, REPORT_START)]


def vae_ceiling(vae, judge: Judge, clips: list[Clip], batch: int = 25) -> dict[str, float]:
    """The judge's accuracy on ``clips`` and on their VAE reconstructions (posterior mode); ``ratio`` is
    the ceiling any generated clip is held to. ``vae`` is a diffusers ``AutoencoderOobleck``."""
    import torch

    x = torch.from_numpy(np.stack([c.wave for c in clips]))
    with torch.no_grad():
        rec = torch.cat([vae.decode(vae.encode(x[i:i + batch, None]).latent_dist.mode()).sample[:, 0, :x.shape[1]]
                         for i in range(0, len(x), batch)]).numpy()
    labels = [c.label for c in clips]
    real, recon = judge.accuracy([c.wave for c in clips], labels), judge.accuracy(list(rec), labels)
    return {"real": round(real, 4), "reconstructed": round(recon, 4), "ratio": round(recon / max(real, 1e-9), 4)}


def clap_zero_shot(clap, clips: list[Clip], template: str = "Sound of a {label}",
                   labels: Sequence[str] = TARGET_CLASSES) -> float:
    """Share of ``clips`` whose CLAP audio embedding is closest to their own label's template text."""
    a = clap.embed_audio([c.wave for c in clips], WORLD_SAMPLE_RATE)
    t = clap.embed_text([template.format(label=lab) for lab in labels])
    pred = (a @ t.T).argmax(1)
    return float(np.mean([labels[p] == c.label for p, c in zip(pred, clips)]))


def generate_for_labels(t2a, labels: Sequence[str], per_label: int, seed: int = 0, steps: int = 50,
                        cfg_scale: float = 3.0, seconds: float = 2.0,
                        batch: int = 16) -> tuple[list[np.ndarray], list[str], list[str]]:
    """``per_label`` clips per label from grammar captions (what MixCap writes), through ``t2a``
    (a ``TextToAudio``). Returns (mono waves at the world's rate, captions, labels)."""
    from synthio_ray.data.audio import resample

    rng = np.random.default_rng([seed, 77])
    captions, labs = [], []
    for lab in labels:
        for _ in range(per_label):
            captions.append(random_caption(rng, lab)[0])
            labs.append(lab)
    waves: list[np.ndarray] = []
    for i in range(0, len(captions), batch):
        out = t2a.generate(captions[i:i + batch], [seconds] * len(captions[i:i + batch]),
                           [seed * 100_003 + j for j in range(i, i + len(captions[i:i + batch]))],
                           steps=steps, cfg_scale=cfg_scale)
        waves += [resample(np.asarray(w).mean(axis=0), t2a.sample_rate, WORLD_SAMPLE_RATE) for w in out]
    return waves, captions, labs


def clap_filter_gap(clap, judge: Judge, waves: list[np.ndarray], labels: list[str], threshold: float,
                    template: str = "Sound of a {label}") -> dict[str, float]:
    """Score each clip against its label's text, accept at ``threshold`` (cosine), and compare the
    judge's label consistency of the accepted and the rejected clips (``gap`` = accepted - rejected)."""
    scores = clap.score(waves, WORLD_SAMPLE_RATE, [template.format(label=lab) for lab in labels])
    right = judge.predict(waves) == np.array([judge.labels.index(lab) for lab in labels])
    keep = scores >= threshold
    acc = float(right[keep].mean()) if keep.any() else float("nan")
    rej = float(right[~keep].mean()) if (~keep).any() else float("nan")
    return {"accepted_share": round(float(keep.mean()), 4), "accepted": round(acc, 4), "rejected": round(rej, 4),
            "gap": round(acc - rej, 4)}


def judge_frechet(judge: Judge, a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Frechet distance between the judge's embeddings of two sets of waves."""
    return frechet_distance(judge.embed(a), judge.embed(b))


def set_consistency(judge: Judge, folder) -> dict[str, dict[str, float]]:
    """The judge's label consistency of an augmentation output ``folder`` (its ``manifest.parquet``): for the
    final set (``final``) and for each status among every clip made (``accepted``, ``kept_best``,
    ``rejected``), ``{"consistency", "clips"}``. Failed rows (no audio) are left out."""
    from pathlib import Path

    import pandas as pd

    folder = Path(folder)
    rows = pd.read_parquet(folder / "manifest.parquet")
    rows = rows[rows["path"].notna() & (rows["status"] != "failed")]
    if rows.empty:
        return {}
    right = judge.predict(judge.read([folder / p for p in rows["path"]])) == np.array(
        [judge.labels.index(lab) for lab in rows["label"]])
    groups = {"final": rows["final"].to_numpy(bool)} | {s: (rows["status"] == s).to_numpy() for s in
                                                        ("accepted", "kept_best", "rejected")}
    return {name: {"consistency": round(float(right[m].mean()), 4), "clips": int(m.sum())}
            for name, m in groups.items() if m.any()}
