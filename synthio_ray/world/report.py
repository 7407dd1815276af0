"""The world report: each trained model's measure against the issue's target, on held-out target clips.

``model_report(models, judge)`` loads the trained models, the committed ``world:`` zoo (``models=None``) or
the folder ``python -m synthio_ray.trained_zoo train`` writes (``clap/``, ``llm/``, ``t2a/`` with its VAE),
each through the pipeline's own backend, and returns rows ``{"measure", "value", "target", "met"}``; a model
that is not there gives a row saying so (value None). ``markdown(rows)`` renders the table.
"""
from __future__ import annotations

from pathlib import Path

from synthio_ray.world.judge import Judge
from synthio_ray.world.measures import (clap_filter_gap, clap_zero_shot, generate_for_labels, held_out,
                                        vae_ceiling)

__all__ = ["model_report", "markdown"]


def _row(measure: str, value, target: str, ok) -> dict:
    return {"measure": measure, "value": value, "target": target, "met": ok}


def _folders(models: str | Path | None) -> dict[str, Path | None]:
    from synthio_ray.trained_zoo.export import WEIGHTS, world_model

    if models is None:
        return {n: world_model(n) if (WEIGHTS / n).is_dir() else None for n in ("t2a", "clap", "llm")}
    return {n: Path(models) / n if (Path(models) / n).is_dir() else None for n in ("t2a", "clap", "llm")}


def model_report(models: str | Path | None, judge: Judge, per_class: int = 25, generated_per_label: int = 10,
                 steps: int = 50, cfg_scale: float = 3.0, threshold: float = 0.5,
                 log=print) -> list[dict]:
    """Rows of the report for the trained models (``None``: the committed world zoo); ``judge``: a Judge."""
    folders, judge_model = _folders(models), judge
    clips = held_out(per_class)
    rows = []
    if folders["t2a"] is not None:
        from diffusers import AutoencoderOobleck

        vae = AutoencoderOobleck.from_pretrained(folders["t2a"] / "vae").eval()
        c = vae_ceiling(vae, judge_model, clips)
        log(f"vae: {c}")
        rows.append(_row("VAE reconstruction ceiling (judge on reconstructions / on real clips)", c["ratio"],
                         ">= 0.9", c["ratio"] >= 0.9))
    else:
        rows.append(_row("VAE reconstruction ceiling", None, ">= 0.9", None))
    if folders["llm"] is not None:
        from synthio_ray.trained_zoo.llm import evaluate_llm

        shares = evaluate_llm(folders["llm"])
        log(f"llm: {shares}")
        for kind, share in shares.items():
            rows.append(_row(f"LLM: answers that parse and pass the checks ({kind})", share, ">= 0.9",
                             share >= 0.9))
    else:
        rows.append(_row("LLM: answers that parse and pass the checks", None, ">= 0.9", None))
    clap = None
    if folders["clap"] is not None:
        from synthio_ray.config import ClapConfig
        from synthio_ray.models.clap import load_clap

        clap = load_clap(ClapConfig(path=str(folders["clap"]), device="cpu"))
        acc = clap_zero_shot(clap, clips)
        log(f"clap zero-shot: {acc:.3f}")
        rows.append(_row("CLAP zero-shot accuracy on target test clips", round(acc, 4), ">= 0.7", acc >= 0.7))
    else:
        rows.append(_row("CLAP zero-shot accuracy on target test clips", None, ">= 0.7", None))
    if folders["t2a"] is not None:
        from synthio_ray.config import T2AConfig
        from synthio_ray.models.t2a import load_t2a

        t2a = load_t2a(T2AConfig(path=str(folders["t2a"]), device="cpu", dtype="float32", steps=steps,
                                 cfg_scale=cfg_scale))
        waves, _, labels = generate_for_labels(t2a, judge_model.labels, generated_per_label, steps=steps,
                                               cfg_scale=cfg_scale)
        acc = judge_model.accuracy(waves, labels)
        log(f"t2a label consistency: {acc:.3f}")
        rows.append(_row("un-aligned T2A: generated clips recognised as their label", round(acc, 4), ">= 0.6",
                         acc >= 0.6))
        if clap is not None:
            gap = clap_filter_gap(clap, judge_model, waves, labels, threshold)
            log(f"clap filter at p={threshold}: {gap}")
            rows.append(_row(f"CLAP filter (p={threshold}): judge consistency of accepted minus rejected",
                             gap["gap"], ">= +0.2", gap["gap"] >= 0.2 if gap["gap"] == gap["gap"] else False))
    else:
        rows.append(_row("un-aligned T2A: generated clips recognised as their label", None, ">= 0.6", None))
    return rows


def markdown(rows: list[dict]) -> str:
    """The rows as a markdown table (measure | value | target | met)."""
    lines = ["| measure | value | target | met |", "|---|---|---|---|"]
    for r in rows:
        value = "not trained" if r["value"] is None else r["value"]
        met = "" if r["met"] is None else ("yes" if r["met"] else "no")
        lines.append(f"| {r['measure']} | {value} | {r['target']} | {met} |")
    return "\n".join(lines)
