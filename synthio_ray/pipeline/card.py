"""The dataset card (OUT/README.md) and its plots, from OUT/manifest.parquet."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from synthio_ray.config import Config
from synthio_ray.placement import placement_warnings

__all__ = ["write_card"]


def _plots(df: pd.DataFrame, out: Path, threshold: float) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    scores = df["clap_score"].dropna()
    if len(scores):
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.hist(scores, bins=30, color="#4c72b0")
        ax.axvline(threshold, color="#c44e52", linestyle="--", label=f"threshold p = {threshold:g}")
        ax.set_xlabel("CLAP score")
        ax.set_ylabel("clips")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "clap_scores.png", dpi=100)
        plt.close(fig)
        names.append("clap_scores.png")
    acc = df[df["status"] == "accepted"].groupby("label_slug").size()
    if len(acc):
        fig, ax = plt.subplots(figsize=(6, max(2.0, 0.3 * len(acc) + 1)))
        acc.sort_values().plot.barh(ax=ax, color="#55a868")
        ax.set_xlabel("accepted clips")
        ax.set_ylabel("")
        fig.tight_layout()
        fig.savefig(out / "per_label.png", dpi=100)
        plt.close(fig)
        names.append("per_label.png")
    return names


def _adapted(out: Path) -> str:
    """The card's note on the CLAP fine-tuned on D_small, if this run made one."""
    f = out / "clap_finetuned" / "metrics.json"
    if not f.is_file():
        return ""
    m = json.loads(f.read_text())
    return (f"; scored by that CLAP with its last layer fine-tuned on the {m['n']} gold clips "
            f"(`clap_finetuned/`; zero-shot accuracy on them {m['accuracy_before']:.2f} -> {m['accuracy_after']:.2f})")


def _calibration(out: Path) -> dict | None:
    from synthio_ray.pipeline.threshold import FILE

    f = out / FILE
    return json.loads(f.read_text()) if f.is_file() else None


def _threshold_section(c: dict, out: Path) -> list[str]:
    """The card's account of ``augment.threshold=auto``: the rule, p, both distributions and their plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = c["histogram_edges"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, color in (("on", "#55a868"), ("off", "#8172b2")):
        counts = c[name]["histogram"]
        ax.stairs([n / max(1, sum(counts)) for n in counts], edges, fill=True, alpha=0.5, color=color,
                  label=f"{name}-label (n={c[name]['n']})")
    ax.axvline(c["p"], color="#c44e52", linestyle="--", label=f"p = {c['p']:.4g}")
    ax.set_xlabel(f"CLAP score ({c['score']})")
    ax.set_ylabel("share of scores")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "clap_threshold.png", dpi=100)
    plt.close(fig)
    qs = list(c["on"]["quantiles"])
    lines = ["## CLAP threshold (augment.threshold=auto)", "",
             f"p = {c['p']:.4g}, calibrated on the {c['on']['n']} gold clips of the `{c['split']}` split: each "
             f"scored against its own label's text (on-label) and against the texts of the labels it does not "
             f"have (off-label, {c['off']['n']} scores), with `{c['clap_model']}` (score `{c['score']}`, text "
             f"`{c['text_template']}`). "
             f"Rule: {c['rule']} (decided by the {c['limited_by']}-label quantile); p accepts "
             f"{c['accepts']['on']:.0%} of the on-label and {c['accepts']['off']:.0%} of the off-label scores. "
             "Both distributions (with their histograms) are in `clap_threshold.json`."
             + (f" The two overlap: at this p the filter also passes {c['accepts']['off']:.0%} of mismatched "
                "(clip, label) pairs, so it keeps out little; a CLAP that tells these labels apart would."
                if c["limited_by"] == "on" else "")
             + (f" Note: {c['note']}." if c.get("note") else ""), "",
             "| scores | n | mean | " + " | ".join(f"q{q}" for q in qs) + " |",
             "|---|---|---|" + "---|" * len(qs)]
    for name in ("on", "off"):
        d = c[name]
        lines.append(f"| {name}-label | {d['n']} | {d['mean']:.4g} | "
                     + " | ".join(f"{d['quantiles'][q]:.4g}" for q in qs) + " |")
    return lines + ["", "![clap_threshold.png](clap_threshold.png)", ""]


def _used(df: pd.DataFrame, col: str, configured) -> str:
    """The values of a provenance column (what the clips were made with), else the configured one."""
    vals = sorted(set(df[col].dropna())) if col in df and len(df) else []
    if not vals:
        return "backend default" if configured is None else f"{configured:g}"
    return ", ".join(f"{v:g}" for v in vals)


def _loads_section(out: Path) -> list[str]:
    """How many times each model was loaded by the run that wrote ``report.json`` (once per job, unless a
    server was restarted after its node was lost), and how long each load took."""
    f = out / "report.json"
    loads = json.loads(f.read_text()).get("model_loads") if f.is_file() else None
    if not loads:
        return []
    lines = ["## Model loads (the last run)", "", "| model | loads | seconds each | where |", "|---|---|---|---|"]
    kinds: dict[str, list[dict]] = {}
    for x in loads:
        kinds.setdefault(x["kind"], []).append(x)
    for kind, xs in kinds.items():
        lines.append(f"| {kind}: `{xs[0]['model_id']}` | {len(xs)} | "
                     f"{', '.join(format(x['load_seconds'], '.1f') for x in xs)} | "
                     f"{', '.join(sorted({x['host'] for x in xs}))} |")
    return lines + [""]


def write_card(cfg: Config, out: str | Path) -> Path:
    """Write OUT/README.md: counts per label and round, acceptance per round, plots, models, prompts, and
    for ``augment.threshold=auto`` the calibration (p, on-/off-label score distributions)."""
    out = Path(out)
    df = pd.read_parquet(out / "manifest.parquet")
    calib = _calibration(out) if cfg.augment.threshold == "auto" else None
    if cfg.augment.threshold == "auto" and calib is None:
        raise FileNotFoundError(f"{out / 'clap_threshold.json'} is missing: run_augment calibrates "
                                "augment.threshold=auto before the card is written")
    threshold = float(calib["p"]) if calib else float(cfg.augment.threshold)
    plots = _plots(df, out, threshold) if len(df) else []
    n_acc = int((df["status"] == "accepted").sum()) if len(df) else 0
    n_kept = int((df["status"] == "kept_best").sum()) if len(df) else 0
    kept = (f" and {n_kept} kept as the best-scoring clip of a caption chain still rejected after the last "
            f"round (augment.exhausted={cfg.augment.exhausted})" if n_kept else "")
    lines = ["# Synthetic augmentation set", "",
             f"Generated by synthio_ray `jobs/augment.py`: {len(df)} clips, {n_acc} accepted{kept}: the final set "
             f"of {n_acc + n_kept} clips (`metadata.csv` lists them; `manifest.parquet` has every clip with its "
             "provenance, `final` marks the set).", ""]
    warnings = placement_warnings(cfg, "augment")
    if warnings:   # a real model made these clips on CPU: say so where the set is read
        lines += ["## Placement warnings", "", *[f"- {w}" for w in warnings], ""]
    if len(df):
        lines += ["## Acceptance per round", "", "| round | clips | accepted | rejected | failed | rate |",
                  "|---|---|---|---|---|---|"]
        for r, g in df.groupby("round"):
            c = g["status"].value_counts()
            ok = int(c.get("accepted", 0))
            lines.append(f"| {r} | {len(g)} | {ok} | {int(c.get('rejected', 0) + c.get('kept_best', 0))} | "
                         f"{int(c.get('failed', 0))} | "
                         f"{ok / len(g):.0%} |")
        lines += ["", "## Clips per label and round (accepted / generated)", ""]
        rounds = sorted(df["round"].unique())
        lines += ["| label | " + " | ".join(f"round {r}" for r in rounds) + " |",
                  "|---|" + "---|" * len(rounds)]
        for lab, g in df.groupby("label_slug"):
            cells = []
            for r in rounds:
                gr = g[g["round"] == r]
                cells.append(f"{int((gr['status'] == 'accepted').sum())} / {len(gr)}")
            lines.append(f"| {lab} | " + " | ".join(cells) + " |")
        src = df["caption_source"].value_counts()
        lines += ["", "## Caption sources", ""] + [f"- {k}: {int(v)}" for k, v in src.items()]
    lines += ["", *[f"![{name}]({name})" for name in plots], ""]
    if calib:
        lines += _threshold_section(calib, out)
    t = cfg.models.t2a
    lines += ["## Models and prompts", "",
              f"- text-to-audio: `{t.backend}` `{t.path}` (steps {_used(df, 't2a_steps', t.steps)}, "
              f"CFG {_used(df, 't2a_cfg_scale', t.cfg_scale)})",
              f"- CLAP: `{cfg.models.clap.path}`, score `{cfg.models.clap.score}`, threshold p = "
              f"{threshold:.4g}{' (auto, see above)' if calib else ''}, filter "
              f"{'on' if cfg.augment.clap_filter else 'off'}{_adapted(out)}",
              f"- LLM: `{cfg.models.llm.backend}` `{cfg.models.llm.path}` (temperature {cfg.models.llm.temperature}, "
              f"top-p {cfg.models.llm.top_p})",
              f"- captions: `{cfg.augment.captions}`, k = {cfg.augment.k}, reflection rounds = {cfg.augment.rounds}",
              f"- prompt version: `{df['prompt_version'].iloc[0] if len(df) else 'n/a'}`",
              "- full resolved config: `config.yaml`", ""]
    lines += _loads_section(out)
    p = out / "README.md"
    p.write_text("\n".join(lines))
    return p
