"""The paper's Table 1 as a library call: ``run_grid(cfg, out) -> GridReport``.

Rows (``grid.methods``):

- classifier baselines: ``gold``, ``noise``, ``pitch``, ``specaugment``, ``audiomentations``, ``retrieval``
  (from ``train_classifier.retrieval_pool``, an outside pool as the paper's AudioSet; required) and
  ``retrieval_in_domain`` (from the dataset's own undrawn clips: in-domain pseudo-labelling, not the paper's row);
- synthesis variants (``SYNTH_VARIANTS``: the augment job's switches and the align objective; the README's
  grid section lists each one's): ``synthio`` (DPO-aligned T2A), ``vanilla_syn`` (template captions) and
  ``vanilla_llm`` (LLM captions): plain generation with the un-aligned T2A, no reflection, no CLAP filter;
  and the ablations ``w_template`` (template captions, no reflection), ``w_erm``, ``wo_reflection``,
  ``wo_mixcap``, ``wo_dpo``, ``wo_clap``;
- ``<variant>+<noise|pitch|specaugment|audiomentations|retrieval>`` (combinations, paper A.4.6) and
  ``<variant>_only`` (training on the synthetic clips alone, Table 3).

Plan: every (dataset, n) is prepared once (``OUT/prepared/<dataset>-n<n>``, drawn with the top-level seed);
every synthesis variant a row needs is aligned (``align_fn``, once per dataset, n and objective) and
generated (``run_augment``) once per (dataset, n) in ``OUT/synthetic/...``; AST features are computed once
(``OUT/features``). Then every cell (dataset, n, row, training seed) is one Ray Tune trial
(``trials.py``). Variants whose alignment or generation fails are skipped with the reason in the table.

Outputs: ``OUT/results.csv`` (one row per run; ``augmentation``: the candidate a classic method ran, chosen
on validation among ``aug_candidates`` when more than one, e.g. the noise kind), ``OUT/table.csv`` (per
cell: mean, std over seeds, relative gain over gold-only, a searched row's chosen candidates with their
counts over seeds), ``OUT/table.md`` (the paper's layout, the zero-shot CLAP row, the section-6
analyses), ``OUT/grid.png``, ``OUT/analysis/<set>/`` (diversity, FAD, spectral-feature plots).
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import yaml

from synthio_ray.augment import CLASSIC_METHODS
from synthio_ray.config import Config, build_config, config_to_dict

__all__ = ["run_grid", "GridReport", "SYNTH_VARIANTS", "BASELINES", "parse_row", "default_align", "AlignUnavailable",
           "plan_cells", "dataset_entries"]

RETRIEVAL_ROWS = ("retrieval", "retrieval_in_domain")
BASELINES = ("gold",) + CLASSIC_METHODS + RETRIEVAL_ROWS
# variant -> (align objective or None, augment switches). Every variant pins the switches it is about, on
# top of SYNTHIO (Synthio's own: MixCap captions and the CLAP filter; the rounds i, k and p come from the
# config), so each row names one configuration whatever the config says. The paper's generative
# baselines are plain generation: Vanilla Syn. Aug. (template captions) and + LLM Caps run no
# self-reflection and no CLAP filter (every clip made is used); "w/ Template Captions" removes MixCap and
# self-reflection and keeps DPO and the CLAP filter.
SYNTHIO = {"augment.captions": "mixcap", "augment.clap_filter": True}
PLAIN = {"augment.rounds": 0, "augment.clap_filter": False}
# Filtered once, no reflection (paper: "iterate and filter only once"): the rejected clips leave the set. Under
# augment.exhausted=best a chain with no reflection round would keep its only clip, rejected or not, and the
# filter would change nothing (the row would be w/o CLAP filter under another name).
ONCE = {"augment.rounds": 0, "augment.exhausted": "drop"}
SYNTH_VARIANTS: dict[str, tuple[str | None, dict]] = {
    "synthio": ("dpo", SYNTHIO),
    "vanilla_syn": (None, {**SYNTHIO, "augment.captions": "template", **PLAIN}),
    "vanilla_llm": (None, {**SYNTHIO, "augment.captions": "llm", **PLAIN}),
    "w_template": ("dpo", {**SYNTHIO, "augment.captions": "template", **ONCE}),
    "w_erm": ("erm", SYNTHIO),
    "wo_reflection": ("dpo", {**SYNTHIO, **ONCE}),
    "wo_mixcap": ("dpo", {**SYNTHIO, "augment.captions": "llm"}),
    "wo_dpo": (None, SYNTHIO),
    "wo_clap": ("dpo", {**SYNTHIO, "augment.clap_filter": False}),
}
RETIRED = {"synthetic": "it was the same configuration as wo_dpo (Synthio's augmentation with the un-aligned "
                        "model): use wo_dpo, or synthio for the DPO-aligned model"}
ZERO_SHOT = "zero-shot CLAP"
LEAKAGE_NOTE = ("Leakage: Stable Audio Open was trained on Freesound audio, where ESC-50, UrbanSound8K and FSD50K "
                "come from, so its clips of these datasets may echo their test clips; the paper trained its own "
                "text-to-audio model to avoid this. Read the synthetic rows made with Stable Audio Open on these "
                "datasets as optimistic.")

AlignFn = Callable[[Config, Path, str], Path]


class AlignUnavailable(RuntimeError):
    """The align step cannot run here (the message says why); rows that need it are skipped."""


def parse_row(row: str) -> tuple[str | None, str]:
    """A grid row -> (synthesis variant or None, classifier method). ValueError listing the valid forms."""
    base = row.split("+")[0].removesuffix("_only")
    if base in RETIRED:
        raise ValueError(f"grid row {row!r}: {base!r} is not a row any more: {RETIRED[base]}")
    if row in BASELINES:
        return None, row
    if row.endswith("_only") and row[:-5] in SYNTH_VARIANTS:
        return row[:-5], "synthetic_only"
    variant, _, extra = row.partition("+")
    if variant in SYNTH_VARIANTS and (not extra or extra in CLASSIC_METHODS + RETRIEVAL_ROWS):
        return variant, "synthetic" + (f"+{extra}" if extra else "")
    raise ValueError(f"unknown grid row {row!r}: one of {', '.join(BASELINES)}, a synthesis variant "
                     f"({', '.join(SYNTH_VARIANTS)}), <variant>+<{'|'.join(CLASSIC_METHODS + RETRIEVAL_ROWS)}> "
                     f"or <variant>_only")


def default_align(cfg: Config, out: Path, objective: str) -> Path:
    """The align job (``synthio_ray.train.align.run_align``) with ``align.objective`` -> its checkpoint folder.
    A finished run in ``out`` is reused."""
    try:
        from synthio_ray.train.align import run_align
    except ImportError as e:
        raise AlignUnavailable(f"the align job is not available: {e}") from e
    if (out / "metrics.json").is_file() and (out / "checkpoint").is_dir():
        return out / "checkpoint"
    tree = config_to_dict(cfg)
    tree["align"]["objective"] = objective
    return Path(run_align(build_config(tree), out, log=lambda s: None).checkpoint)


def dataset_entries(entries: list[str]) -> list[tuple[str, dict]]:
    """``grid.datasets`` -> (name, data-section overrides). Each entry is ``[name=]VALUE`` with VALUE
    ``embedded``; ``CONFIG.yaml`` (its ``data`` section, which sets ``source``); ``SOURCE`` (a dataset folder
    or manifest: ``data.source``, layout auto-detected); or ``SOURCE@CONFIG.yaml`` (both: e.g.
    ``fsd50k=/data/fsd50k/manifest.csv@configs/fsd50k.yaml``). The name defaults to the file or folder name."""
    out = []
    for e in entries:
        name, _, value = e.partition("=") if "=" in e else ("", "", e)
        with_conf = value.endswith((".yaml", ".yml")) and "@" in value
        source, _, conf = value.rpartition("@") if with_conf else (value, "", "")
        data: dict = {}
        if source.endswith((".yaml", ".yml")):
            source, conf = "", source
        if conf:
            data.update((yaml.safe_load(Path(conf).read_text()) or {}).get("data") or {})
        if source == "embedded":
            data["source"] = None
        elif source:
            data["source"] = source
        default = "embedded" if source == "embedded" else Path((source or conf).rstrip("/")).stem
        out.append((name or default, data))
    return out


@dataclass
class GridReport:
    out: Path
    results: pd.DataFrame
    cells: pd.DataFrame
    markdown: str


def _cfg_for(cfg: Config, data: dict, n: int) -> Config:
    tree = config_to_dict(cfg)
    tree["data"].update(data)
    tree["data"]["n"] = n
    return build_config(tree)


def plan_cells(methods: list[str], datasets: list[tuple[str, dict]], ns: list[int], seeds: list[int],
               ks: list[int] | None = None) -> list[dict]:
    """Every (dataset, n, row, [k,] seed) run with its variant and classifier method; synthesis rows get
    one run per k in ``ks`` (``k`` None for the baselines)."""
    cells = []
    for name, _ in datasets:
        for n in ns:
            for row in methods:
                variant, method = parse_row(row)
                for k in (ks or [None]) if variant else [None]:
                    for seed in seeds:
                        tag = f"-k{k}" if k is not None else ""
                        cells.append({"dataset": name, "n": n, "row": row, "variant": variant, "method": method,
                                      "k": k, "seed": seed, "id": f"{name}-n{n}-{row}{tag}-s{seed}"})
    return cells


def select_k(results: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, n, row) of a synthesis row: the k whose ok runs have the best mean validation score
    (ties: the smaller k; no ok run: the smallest k, so the cell shows its reason). Adds ``k_selected``."""
    results = results.copy()
    results["k_selected"] = results["k"].isna()
    for _, g in results[results["k"].notna()].groupby(["dataset", "n", "method"], sort=False):
        ok = g[(g["status"] == "ok") & g["val"].notna()]
        if len(ok):
            means = ok.groupby("k")["val"].mean()
            best = min(means.index, key=lambda k: (-means[k], k))
        else:
            best = g["k"].min()
        results.loc[g.index[g["k"] == best], "k_selected"] = True
    return results


def _align(cfg: Config, out: Path, key: str, objective: str, prepared: Path, align_fn: AlignFn, aligned: dict,
           log: Callable, servers: Any = None) -> None:
    """``aligned[(key, objective)]``: the checkpoint aligned on ``prepared`` (once), or the exception."""
    if (key, objective) in aligned:
        return
    try:
        acfg = config_to_dict(cfg)
        acfg["align"]["data"] = str(prepared)
        if cfg.grid.align_epochs:
            acfg["align"]["epochs"] = cfg.grid.align_epochs
        log(f"[grid] aligning ({objective}) for {key}")
        if servers is not None:   # training needs the CPUs and GPUs the servers hold
            servers.pause()
        folder = out / "align" / f"{key}-{objective}"
        aligned[(key, objective)] = Path(align_fn(build_config(acfg), folder, objective))
    except Exception as e:  # noqa: BLE001 - the reason goes into the table
        aligned[(key, objective)] = e


def _synthesize(cfg: Config, out: Path, key: str, variant: str, prepared: Path, align_fn: AlignFn,
                aligned: dict, log: Callable, servers: Any = None) -> Path:
    from synthio_ray.pipeline.augment import run_augment
    from synthio_ray.pipeline.card import write_card

    objective, overrides = SYNTH_VARIANTS[variant]
    tree = config_to_dict(cfg)
    tree["augment"]["data"] = str(prepared)
    tree["augment"]["k"] = max(cfg.grid.ks)       # generated once at the largest k; each k trains on a subset
    for dotted, value in overrides.items():
        sec, leaf = dotted.split(".")
        tree[sec][leaf] = value
    if objective:
        _align(cfg, out, key, objective, prepared, align_fn, aligned, log, servers)
        ckpt = aligned[(key, objective)]
        if isinstance(ckpt, Exception):
            raise RuntimeError(f"align ({objective}) unavailable: {ckpt}") from ckpt
        tree["models"]["t2a"]["path"] = str(ckpt)
    gen = build_config(tree)
    folder = out / "synthetic" / f"{key}-{variant}"
    log(f"[grid] generating {variant} for {key} -> {folder}")
    run_augment(gen, folder, servers=servers)
    write_card(gen, folder)
    return folder


def _generate_all(cfg: Config, out: Path, datasets: list, cells: list[dict], align_fn: AlignFn, servers: Any,
                  log: Callable) -> tuple[dict, dict, dict, dict]:
    """Prepare each (dataset, n), align and generate each synthetic variant, prefetch the AST features ->
    (prepared folders, synthetic folders, skipped variants' reasons, each dataset's metric)."""
    from synthio_ray.data.manifest import load_prepared
    from synthio_ray.data.prepare import prepare_dataset
    from synthio_ray.evaluate.metrics import primary_metric
    from synthio_ray.experiments.trials import prefetch_features
    from synthio_ray.train.classifier_run import check_prepared
    from synthio_ray.train.synthetic import load_synthetic, select_synthetic

    g = cfg.grid
    prepared, synthetic, skipped, aligned, metrics_of = {}, {}, {}, {}, {}
    for name, data in datasets:
        for n in g.ns:
            key = f"{name}-n{n}"
            dcfg = _cfg_for(cfg, data, n)
            folder = out / "prepared" / key
            if not (folder / "labels.json").is_file():
                prepare_dataset(dcfg, folder)
            check_prepared(folder)
            prepared[key] = folder
            metrics_of[name] = primary_metric(load_prepared(folder).multilabel)
            variants = list(dict.fromkeys(c["variant"] for c in cells if c["variant"] and c["dataset"] == name))
            # every alignment first, then the variants grouped by their T2A model, so each model loads once
            for objective in dict.fromkeys(SYNTH_VARIANTS[v][0] for v in variants if SYNTH_VARIANTS[v][0]):
                _align(dcfg, out, key, objective, folder, align_fn, aligned, log, servers)
            for variant in sorted(variants, key=lambda v: SYNTH_VARIANTS[v][0] or ""):
                try:
                    synthetic[(key, variant)] = _synthesize(dcfg, out, key, variant, folder, align_fn, aligned, log,
                                                            servers)
                except Exception as e:  # noqa: BLE001 - recorded, the grid goes on
                    skipped[(key, variant)] = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                    log(f"[grid] skipping {variant} for {key}: {skipped[(key, variant)]}")
                    if not isinstance(e, RuntimeError) or "align" not in str(e):
                        log(traceback.format_exc(limit=3))
            paths = []
            for (k2, _), sdir in synthetic.items():
                if k2 == key:
                    m = load_synthetic(sdir)
                    paths += list(select_synthetic(m)["path"])
            servers.pause()   # the feature pass needs the CPUs and GPUs the servers hold
            prefetch_features(cfg, folder, paths, out / "features")
    return prepared, synthetic, skipped, metrics_of


def run_grid(cfg: Config, out: str | Path, log: Callable[[str], None] = print,
             align_fn: AlignFn = default_align) -> GridReport:
    from synthio_ray.data.manifest import load_prepared
    from synthio_ray.evaluate.tables import aggregate, markdown_table, plot_grid
    from synthio_ray.experiments.trials import run_trials, with_overrides
    from synthio_ray.pipeline.augment import ensure_ray, local_ray
    from synthio_ray.serving import ModelServers

    g = cfg.grid
    outside = [m for m in g.methods if set(m.split("+")) & {"retrieval"}]
    if outside and not cfg.train_classifier.retrieval_pool:
        raise ValueError(f"grid rows {', '.join(outside)} retrieve from an outside pool (the paper: AudioSet): set "
                         "train_classifier.retrieval_pool, or use retrieval_in_domain for the dataset's own clips")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    datasets = dataset_entries(g.datasets)
    cells = plan_cells(g.methods, datasets, g.ns, g.seeds, g.ks)
    ensure_ray(cfg)
    # one set of model servers for every cell's generation: a model loads again only when a cell changes it
    # (an aligned T2A, an adapted CLAP); stopped before the trials, which need the CPUs and GPUs
    servers = ModelServers(cfg, wait_for_nodes=0.0 if local_ray(cfg) else cfg.resources.wait_for_nodes)
    try:
        prepared, synthetic, skipped, metrics_of = _generate_all(cfg, out, datasets, cells, align_fn, servers, log)
    finally:
        servers.shutdown()
    specs, rows = {}, []
    for c in cells:
        key = f"{c['dataset']}-n{c['n']}"
        if c["variant"] and (key, c["variant"]) not in synthetic:
            rows.append({**c, "value": float("nan"), "status": "skipped", "reason": skipped.get((key, c["variant"]))})
            continue
        tree = with_overrides(cfg, {
            "train_classifier.data": str(prepared[key]), "train_classifier.method": c["method"],
            "train_classifier.synthetic": [str(synthetic[(key, c["variant"])])] if c["variant"] else [],
            "train_classifier.synthetic_k": c["k"],
            "train_classifier.seed": c["seed"], "train_classifier.backend": g.backend,
            "train_classifier.zero_shot": False, "train_classifier.save_model": False,
            "train_classifier.feature_cache": str(out / "features")})
        run = (f"k{c['k']}-" if c["k"] is not None else "") + f"seed{c['seed']}"
        specs[c["id"]] = {"cfg": tree, "out": str(out / "trials" / key / c["row"] / run),
                          "threads": g.trial_cpus}
    log(f"[grid] {len(specs)} trials ({len(rows)} cells skipped)")
    results = run_trials(specs, out / "tune", "grid", g.trial_cpus, g.max_concurrent,
                         g.trial_gpus if g.backend == "local" else 0.0)
    for c in cells:
        if c["id"] in specs:
            r = results.get(c["id"], {"status": "failed", "error": "trial did not run"})
            m = r.get("metrics")
            rows.append({**c, "value": m["test"][m["metric"]] if m else float("nan"), "status": r["status"],
                         "reason": None if m else r.get("error"), "val": m["val"][m["metric"]] if m else None,
                         "best_epoch": m["best_epoch"] if m else None,
                         "train_clips": m["data"]["train"] if m else None,
                         "augmentation": (m.get("augmentation") or {}).get("chosen") if m else None,
                         "aug_candidates": len((m.get("augmentation") or {}).get("candidates") or []) if m else None})
    clap = None
    if g.zero_shot or g.analyses:
        from synthio_ray.models.clap_remote import load_placed_clap

        clap = load_placed_clap(cfg)   # on its own actor unless small and on CPU
    if g.zero_shot:
        from synthio_ray.evaluate.zeroshot import zero_shot_clap

        for name, _ in datasets:
            ds = load_prepared(prepared[f"{name}-n{g.ns[0]}"])
            z = zero_shot_clap(clap, ds.split("test"), ds.labels, cfg.models.clap.text_template, ds.multilabel)
            for n in g.ns:
                rows.append({"dataset": name, "n": n, "row": ZERO_SHOT, "variant": None, "method": "zero_shot",
                             "seed": 0, "id": f"{name}-n{n}-zeroshot", "value": z[metrics_of[name]], "status": "ok",
                             "reason": None})
    results_df = pd.DataFrame(rows).rename(columns={"row": "method", "method": "classifier_method"})
    for col in ("k", "val", "augmentation", "aug_candidates"):
        if col not in results_df:
            results_df[col] = None
    results_df = select_k(results_df.astype({"k": "float", "val": "float"}))
    results_df.to_csv(out / "results.csv", index=False)
    order = list(g.methods) + [ZERO_SHOT]
    chosen = results_df[results_df["k_selected"]]
    table = aggregate(chosen, order)
    won = chosen.dropna(subset=["k"]).groupby(["dataset", "n", "method"])["k"].first()
    table["k"] = [won.get((d, n, m)) for d, n, m in zip(table["dataset"], table["n"], table["method"])]
    searched = chosen[chosen["augmentation"].notna() & (chosen["aug_candidates"].fillna(0) > 1)]
    picked = searched.groupby(["dataset", "n", "method"])["augmentation"].agg(
        lambda s: ", ".join(f"{name} x{count}" for name, count in sorted(s.value_counts().items())))
    table["augmentation"] = [picked.get((d, n, m)) for d, n, m in zip(table["dataset"], table["n"], table["method"])]
    table.to_csv(out / "table.csv", index=False)
    metric_names = sorted(set(metrics_of.values()))
    md = "# Grid results\n\n" + markdown_table(table, " / ".join(metric_names))
    if any(c["variant"] for c in cells):
        md += f"\n{LEAKAGE_NOTE}\n"
    if g.analyses and synthetic:
        md += "\n" + _analyses(cfg, out, prepared, synthetic, clap)
    (out / "table.md").write_text(md)
    plot_grid(table, out / "grid.png", " / ".join(metric_names))
    return GridReport(out=out, results=results_df, cells=table, markdown=md)


def _analyses(cfg: Config, out: Path, prepared: dict, synthetic: dict, clap) -> str:
    from synthio_ray.data.manifest import load_prepared
    from synthio_ray.evaluate.analysis import analyze_synthetic
    from synthio_ray.train.synthetic import load_synthetic, select_synthetic

    lines = ["## Analyses of the synthetic sets (paper section 6)", "",
             "CLAP similarity of each synthetic clip to its own gold clip (lower = more diverse; reference: two gold "
             "clips of the same label), FAD between the gold and synthetic sets on CLAP embeddings, and the mean "
             "spectral features (distributions in analysis/<set>/features.png).", "",
             "| set | clips | sim. to own gold | gold-gold same label | FAD (CLAP) | flatness gold / syn | "
             "flux gold / syn | pitch salience gold / syn |", "|---|---|---|---|---|---|---|---|"]
    for (key, variant), sdir in synthetic.items():
        gold = load_prepared(prepared[key]).split("train")
        syn = select_synthetic(load_synthetic(sdir))
        if not len(syn):
            continue
        a = analyze_synthetic(gold, syn, clap, out / "analysis" / f"{key}-{variant}")
        d, f = a["diversity"], a["features_mean"]

        def pair(feat: str) -> str:
            return f"{f['gold'][feat]:.3f} / {f['synthetic'][feat]:.3f}"
        fad = "" if a["fad_clap"] is None else f"{a['fad_clap']:.4f}"
        lines.append(f"| {key}-{variant} | {a['synthetic_clips']} | {d['gold_to_own_synthetic_mean']:.4f} | "
                     f"{d['gold_same_label_mean']:.4f} | {fad} | {pair('flatness')} | {pair('flux')} | "
                     f"{pair('pitch_salience')} |")
    return "\n".join(lines) + "\n"
