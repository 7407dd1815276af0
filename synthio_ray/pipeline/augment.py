"""The augmentation job as a library call: ``run_augment(cfg, out) -> AugmentReport``.

Phases (each resumable; see ``store.py``):
1. plan: caption the gold clips and extract their events/scenes (LLM), pool them per label. This is
   the only barrier, over the n gold clips' text, because MixCap pools over all clips of a label.
2. round 0, streaming on Ray Data: MixCap captions (LLM actor pool) -> synthesis (T2A actor pool)
   -> CLAP scoring (CLAP actor pool) -> rows written by the driver as they arrive.
3. rounds 1..i, streaming: the previous round's rejected rows -> reflection (LLM) -> synthesis ->
   scoring. Each round starts when the previous one is complete, because reflection uses the
   events/scenes of the captions accepted so far.
4. manifest.parquet, metadata.csv, dataset card.

Each model loads once per job (``synthio_ray.serving``): the T2A, CLAP and (transformers) LLM servers start
before the plan, load while it runs, and serve every round's Ray Data actors, which only move rows; the
report and the card list every load. The stages of served models run as Ray Data tasks on worker processes
that stay warm from round to round (``forward.py``). A ``ray.data.llm`` processor (vLLM) still starts per
stream.

Before round 0, ``augment.threshold=auto`` is calibrated on the gold clips with the CLAP that scores
(``threshold.py``; ``OUT/clap_threshold.json``, in ``report.json`` and the card).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from synthio_ray.config import Config, build_config, config_to_dict
from synthio_ray.data.labels import label_slugs
from synthio_ray.data.manifest import PreparedDataset, load_prepared
from synthio_ray.ids import clip_id
from synthio_ray.lognoise import quiet_python
from synthio_ray.pipeline.clap_adapt import adapt_clap
from synthio_ray.pipeline.forward import FORWARDER_CPUS, ready, served_map, served_options, warm_workers
from synthio_ray.pipeline.progress import Progress
from synthio_ray.pipeline.llm_stages import CaptionWriter, ComponentExtractor, Reflector, pool_components
from synthio_ray.pipeline.stages import GoldCaptioner, Scorer, Synthesizer, label_text
from synthio_ray.pipeline.store import RunStore
from synthio_ray.pipeline.threshold import resolve_threshold
from synthio_ray.placement import captioner_gpus, in_driver, run_placed
from synthio_ray.serving import ModelServers, ServedModel

__all__ = ["AugmentReport", "run_augment", "gold_rows", "ensure_ray", "local_ray"]

log = logging.getLogger("synthio_ray")


@dataclass
class AugmentReport:
    out: Path
    rows: int
    accepted: int
    per_round: dict[int, dict[str, int]] = field(default_factory=dict)
    skipped_done: int = 0
    kept_best: int = 0             # chains still rejected after the last round, kept by their best clip
    stream_rows: int = 0           # rows that arrived in this run
    stream_seconds: float = 0.0    # first to last arrival, summed over rounds (pipeline full)
    stream_steady_rows: int = 0    # rows that arrived after each round's first batch
    wait_seconds: float = 0.0      # round start to first arrival, summed (actor start-up, pipeline fill)
    model_loads: list[dict] = field(default_factory=list)   # every model load of this run (serving.loads)
    round_timing: dict[int, dict[str, float]] = field(default_factory=dict)  # per round: rows, seconds (start to last)

    def summary(self) -> str:
        kept = f", {self.kept_best} kept as the best clip of a chain still rejected" if self.kept_best else ""
        lines = [f"{self.rows} clips generated, {self.accepted} accepted{kept} ({self.skipped_done} already done "
                 f"before this run)"]
        for r, c in sorted(self.per_round.items()):
            n = sum(c.values())
            lines.append(f"  round {r}: {n} clips, {c.get('accepted', 0)} accepted, "
                         f"{c.get('rejected', 0) + c.get('kept_best', 0)} rejected, {c.get('failed', 0)} failed")
        for kind, loads in _loads_by_kind(self.model_loads).items():
            lines.append(f"  {kind}: loaded {len(loads)}x ({', '.join(f'{x:.1f} s' for x in loads)})")
        lines.append(f"written to {self.out}")
        return "\n".join(lines)


def _loads_by_kind(loads: list[dict]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for x in loads:
        out.setdefault(x["kind"], []).append(float(x["load_seconds"]))
    return out


def local_ray(cfg: Config) -> bool:
    """Does (did) this job start its own Ray, with no autoscaler to add nodes?"""
    return not cfg.ray.address and os.environ.get("RAY_ADDRESS") is None


def ensure_ray(cfg: Config) -> None:
    """Join the configured cluster, or start a quiet local one; keep Ray Data's own bars off in logs. Every
    worker gets the repo on its path and this process's hub token and cache settings (``ray_hooks``)."""
    import ray
    from ray.data import DataContext

    from synthio_ray.ray_hooks import worker_runtime_env

    if not ray.is_initialized():
        kwargs: dict[str, Any] = dict(include_dashboard=False, ignore_reinit_error=True,
                                      log_to_driver=True, logging_level=logging.WARNING)
        local = local_ray(cfg)
        if cfg.ray.address:
            kwargs["address"] = cfg.ray.address
        elif local and cfg.ray.num_cpus:
            kwargs["num_cpus"] = cfg.ray.num_cpus
        kwargs["runtime_env"] = worker_runtime_env(str(Path(__file__).resolve().parents[2]), local)
        ray.init(**kwargs)
    if cfg.ray.progress != "on":  # our own progress line replaces Ray Data's bars and stage logs
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = cfg.ray.progress == "on"
    ctx.print_on_execution_start = False
    ctx.verbose_stats_logs = False
    quiet_python()


def gold_rows(ds: PreparedDataset, max_seconds: float | None) -> pd.DataFrame:
    """The small training set as the pipeline's gold rows (source id, path, labels, caption, seconds)."""
    train = ds.split("train")
    return pd.DataFrame({
        "id": train["id"], "source_id": train["id"], "source_path": train["path"], "path": train["path"],
        "label": train["label"], "labels": [list(x) for x in train["labels"]],
        "caption": train["caption"],
        "seconds": [min(d, max_seconds) if max_seconds else d for d in train["duration"]],
    })


def _pool(cfg: Config, gpus: float, actors: int) -> dict[str, Any]:
    """map_batches options of a stage's actor pool (a stage that loads its own model)."""
    from ray.data import ActorPoolStrategy

    return dict(compute=ActorPoolStrategy(size=actors), num_gpus=gpus or None,
                num_cpus=cfg.resources.cpus_per_actor, batch_format="pandas")


def _forwarders(cfg: Config, kind: str | None = None) -> int:
    """Forwarding tasks at once for one stage (``kind``) or the whole stream: two per model server (one batch
    computing, one queued)."""
    r = cfg.resources
    actors = {"llm": r.llm_actors, "t2a": r.t2a_actors, "clap": r.clap_actors}
    return 2 * (actors[kind] if kind else sum(actors.values()))


def _dataset(df: pd.DataFrame, rows_per_block: int = 4) -> Any:
    """A Ray dataset of small blocks, so the first clips stream out while later rows are planned. Built in
    the driver (``from_blocks``: no task), since the model servers may hold every CPU a task would need."""
    import ray

    df = df.reset_index(drop=True)
    parts = [df.iloc[i:i + rows_per_block].reset_index(drop=True) for i in range(0, len(df), rows_per_block)]
    return ray.data.from_blocks(parts)


def _collect(ds: Any) -> pd.DataFrame:
    """A small dataset's rows as one DataFrame in id order (lists back as Python lists)."""
    g = pd.concat(list(ds.iter_batches(batch_format="pandas", batch_size=None)), ignore_index=True)
    for col in ("labels", "events", "scenes"):
        if col in g:
            g[col] = [list(x) if x is not None else [] for x in g[col]]
    return g.sort_values("id").reset_index(drop=True)


def _plan(cfg: Config, gold: pd.DataFrame, out: Path, chat_model: Any = None) -> pd.DataFrame:
    """Gold captions and events/scenes, cached in OUT/plan/gold.parquet (re-used on resume)."""
    plan = out / "plan" / "gold.parquet"
    if plan.is_file():
        saved = pd.read_parquet(plan)
        if set(saved["id"]) == set(gold["id"]):
            saved["labels"] = [list(x) for x in saved["labels"]]
            saved["events"] = [list(x) for x in saved["events"]]
            saved["scenes"] = [list(x) for x in saved["scenes"]]
            return saved
    gpus = captioner_gpus(cfg)
    if cfg.models.captioner.backend == "transformers" and not in_driver(cfg.models.captioner.path, gpus):
        # an audio LLM: on its own actor (with its GPU), never in the driver
        g = _collect(_dataset(gold).map_batches(GoldCaptioner, fn_constructor_kwargs=dict(cfg=cfg),
                                                batch_size=cfg.models.llm.batch_size, **_pool(cfg, gpus, 1)))
    else:
        g = GoldCaptioner(cfg)(gold)
    if cfg.augment.captions == "mixcap":
        g = _extract_components(cfg, g, out, chat_model)
    else:
        g["events"], g["scenes"], g["components_error"] = [[]] * len(g), [[]] * len(g), None
    plan.parent.mkdir(parents=True, exist_ok=True)
    tmp = plan.with_name(".gold.parquet.tmp")
    g.to_parquet(tmp, index=False)
    os.replace(tmp, plan)
    return g


def _extract_components(cfg: Config, df: pd.DataFrame, out: Path, chat_model: Any = None) -> pd.DataFrame:
    """Rows with ``id``, ``labels``, ``gold_caption`` -> + ``events``, ``scenes`` (prompt 1; answers cached in
    OUT/llm_cache), on an LLM actor or processor, or in the driver for a small LLM on CPU (or an http one)."""
    from synthio_ray.pipeline.llm_processor import uses_processor

    kwargs = dict(cfg=cfg, cache_dir=str(out / "llm_cache"), chat_model=chat_model)
    llm = cfg.models.llm
    small = chat_model is not None or llm.backend == "http" or in_driver(llm.path, cfg.resources.llm_gpus)
    if uses_processor(cfg) or not small:   # large and GPU models never load in the driver
        return _collect(_llm_rows(cfg, df, ComponentExtractor, kwargs))
    return ComponentExtractor(**kwargs)(df)  # small on CPU: the driver is as good as an actor


def _accepted_components(cfg: Config, rows: pd.DataFrame, out: Path, chat_model: Any = None) -> dict:
    """Per label key: the events and scenes of the accepted captions so far, extracted from each caption
    by prompt 1 (so paraphrases count, in every caption mode), pooled in id order."""
    acc = rows[rows["status"] == "accepted"]
    if not len(acc):
        return {}
    df = pd.DataFrame({"id": list(acc["id"]), "labels": [list(x) for x in acc["labels"]],
                       "gold_caption": list(acc["caption"])})
    return pool_components(_extract_components(cfg, df, out, chat_model))


def _llm_rows(cfg: Config, df: pd.DataFrame, stage_cls: type, stage_kwargs: dict) -> Any:
    """A dataset of the LLM stage's output rows for ``df``: an actor pool around a ChatModel, or, for
    processor backends (vLLM), the rows that need asking through the ``ray.data.llm`` processor and the
    rest (answers cached, nothing to ask) straight through the stage."""
    from synthio_ray.pipeline.llm_processor import AnswerRows, PromptRows, llm_processor, uses_processor

    res = cfg.resources
    if not uses_processor(cfg):
        if isinstance(stage_kwargs.get("chat_model"), ServedModel):
            # not an operator of its own: the light filter of done rows after it fuses into its tasks
            return served_map(_dataset(df), stage_cls, stage_kwargs, cfg.models.llm.batch_size,
                              _forwarders(cfg, "llm"), own_operator=False)
        return _dataset(df).map_batches(stage_cls, fn_constructor_kwargs=stage_kwargs, batch_size=cfg.models.llm.batch_size,
                                        **_pool(cfg, res.llm_gpus, res.llm_actors))
    probe = stage_cls(**{**stage_kwargs, "chat_model": None})
    cached = probe.cached(df) if len(df) else []
    ready, ask = df[[c for c in cached]], df[[not c for c in cached]]
    parts = []
    light = {**_pool(cfg, 0, 1), "num_cpus": cfg.resources.cpus_per_actor / 4}   # no model: no GPU, little CPU
    if len(ready):   # answers cached: the stage finishes them without a model
        parts.append(_dataset(ready).map_batches(stage_cls, fn_constructor_kwargs=stage_kwargs,
                                                 batch_size=cfg.models.llm.batch_size, **light))
    if len(ask):
        kw = dict(fn_constructor_kwargs=dict(stage_cls=stage_cls, stage_kwargs=stage_kwargs),
                  batch_size=cfg.models.llm.batch_size, **light)
        ds = _dataset(ask).map_batches(PromptRows, **kw)
        ds = llm_processor(cfg, stage_cls.schema)(ds)
        parts.append(ds.map_batches(AnswerRows, **kw))
    return parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])


def _drop_done(df: pd.DataFrame, done: frozenset) -> pd.DataFrame:
    return df[~df["id"].isin(done)]


def _stream(cfg: Config, store: RunStore, r: int, df: pd.DataFrame, llm_stage: tuple, out: Path,
            models: dict[str, Any], progress: Progress, report: AugmentReport, expected: int) -> dict[str, int]:
    """Run one round's stream: LLM stage -> synthesis -> scoring -> part files. ``models``: the served
    ``t2a`` and ``clap``; ``expected``: the clips this stream will write (for the progress ETA). Returns
    status counts."""
    stage_cls, stage_kwargs, done = llm_stage
    ds = _llm_rows(cfg, df, stage_cls, stage_kwargs)
    if done:   # with the served stages' options, so it fuses into the LLM stage's tasks
        ds = ds.map_batches(_drop_done, fn_kwargs=dict(done=frozenset(done)), **served_options(_forwarders(cfg, "llm")))
    ds = served_map(ds, Synthesizer, dict(cfg=cfg, out_dir=str(out), model=models["t2a"]), cfg.models.t2a.batch_size,
                    _forwarders(cfg, "t2a"))
    ds = served_map(ds, Scorer, dict(cfg=cfg, out_dir=str(out), model=models["clap"]), cfg.models.clap.batch_size,
                    _forwarders(cfg, "clap"))
    counts: dict[str, int] = {}
    progress.expect(f"round {r}", expected)
    t0 = time.monotonic()
    first = last = None
    for batch in ds.iter_batches(batch_format="pandas", batch_size=None, prefetch_batches=0):
        if not len(batch):
            continue
        now = time.monotonic()
        if first is None:
            first = now
        else:
            report.stream_steady_rows += len(batch)
        last = now
        report.stream_rows += len(batch)
        store.append(r, batch)
        for st, n in batch["status"].value_counts().items():
            counts[st] = counts.get(st, 0) + int(n)
        progress.update(f"round {r}", len(batch), int((batch["status"] == "accepted").sum()),
                        int((batch["status"] == "failed").sum()))
    if first is not None:
        report.wait_seconds += first - t0
        report.stream_seconds += last - first
        timing = report.round_timing.setdefault(r, {"rows": 0, "seconds": 0.0})
        timing["rows"] += sum(counts.values())
        timing["seconds"] += last - t0
    return counts


def run_augment(cfg: Config, out: str | Path, t2a_path: str | None = None, chat_model: Any = None,
                servers: ModelServers | None = None) -> AugmentReport:
    """Run (or resume) the augmentation into ``out``. ``chat_model`` overrides the configured LLM
    (plain ChatModel; used in-process by the plan stage and shipped to the actors). ``servers``: model
    servers to use (and leave running) instead of this run's own, e.g. shared by a grid's cells."""
    from synthio_ray.data.prepare import prepare_dataset
    from synthio_ray.pipeline.llm_processor import uses_processor

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    a = cfg.augment
    if a.clap_filter and a.rounds == 0 and a.exhausted == "best":
        print("[augment] warning: augment.rounds=0 with augment.exhausted=best keeps every clip (a chain with no "
              "reflection round keeps its only clip, accepted or not), so the CLAP filter removes nothing; set "
              "augment.exhausted=drop to filter once (the paper's w/o self-reflection)", file=sys.stderr, flush=True)
    # The embedded default is prepared inside OUT under a "__" name: datasets' audiofolder loader skips
    # such folders, so its split-named files (train.parquet, ...) do not confuse load_dataset(data_dir=OUT).
    data_dir = Path(a.data) if a.data else out / "__prepared__"
    if not a.data and not (data_dir / "labels.json").is_file():
        prepare_dataset(cfg, data_dir)
    prepared = load_prepared(data_dir)
    clap_here = cfg.models.clap.finetune == "none" or in_driver(cfg.models.clap.path, cfg.resources.clap_gpus)
    if not clap_here:
        ensure_ray(cfg)
    # fine-tuned on its own task (with the scoring actors' GPU share) unless a small CLAP on CPU
    clap_dir = run_placed(adapt_clap, cfg, prepared, out, log=print if cfg.ray.progress != "off" else lambda s: None,
                          gpus=cfg.resources.clap_gpus, cpus=cfg.resources.cpus_per_actor, driver=clap_here)
    if clap_dir is not None:     # the scoring pool loads the adapted CLAP (named in each row's clap_model)
        tree = config_to_dict(cfg)
        tree["models"]["clap"].update(path=str(clap_dir), finetune="none")
        cfg = build_config(tree)
    gold = gold_rows(prepared, a.max_seconds)
    slugs = label_slugs({label_text(x) for x in gold["labels"]})
    store = RunStore(out)
    progress = Progress(cfg.ray.progress)
    ensure_ray(cfg)
    own = servers is None
    if own:
        servers = ModelServers(cfg, t2a_path, wait_for_nodes=0.0 if local_ray(cfg) else cfg.resources.wait_for_nodes)
    else:
        servers.use(cfg, t2a_path)
    serve_llm = chat_model is None and cfg.models.llm.backend == "transformers" and not uses_processor(cfg)
    try:
        servers.start(["llm", "t2a", "clap"] if serve_llm else ["t2a", "clap"])   # they load while we plan
        servers.check_room(_forwarders(cfg) * FORWARDER_CPUS)
        warm = warm_workers(_forwarders(cfg))   # and the forwarding tasks' worker processes start
        return _run(cfg, out, prepared, clap_dir, gold, slugs, store, progress, servers,
                    servers.model("llm") if serve_llm else chat_model, warm)
    finally:
        if own:
            servers.shutdown()


def _run(cfg: Config, out: Path, prepared: PreparedDataset, clap_dir: Path | None, gold: pd.DataFrame,
         slugs: dict, store: RunStore, progress: Progress, servers: ModelServers, chat_model: Any,
         warm: list) -> AugmentReport:
    """run_augment once Ray and the model servers are up: calibrate p, plan, stream the rounds, write."""
    from synthio_ray.pipeline.llm_processor import uses_processor

    a = cfg.augment
    models = {"clap": servers.model("clap")}
    p, calibration = resolve_threshold(cfg, prepared, out, fine_tuned=clap_dir is not None, clap=models["clap"],
                                       log=print if cfg.ray.progress != "off" else lambda s: None)
    if calibration is not None:  # auto: the scoring pool gets the calibrated number
        tree = config_to_dict(cfg)
        tree["augment"]["threshold"] = p
        cfg = build_config(tree)

    plan = _plan(cfg, gold, out, chat_model)
    pools = pool_components(plan)
    report = AugmentReport(out=out, rows=0, accepted=0)
    cache = str(out / "llm_cache")

    done0 = store.done_ids(0)
    expected = {sid: [clip_id(slugs[label_text(labs)], sid, j, 0) for j in range(a.k)]
                for sid, labs in zip(plan["source_id"], plan["labels"])}
    report.skipped_done += len(done0)
    models["t2a"] = servers.model("t2a")
    ready(warm)
    asks = 1 if a.captions == "template" else a.caption_asks
    # a ChatModel answers inside the stage: one stream runs every ask; a processor (vLLM) needs a pass per ask
    per_pass = 1 if uses_processor(cfg) else asks
    for ask in range(0, asks, per_pass):
        # every gold clip with a slot not done; the writer replays the earlier asks from the LLM cache and
        # asks only for the slots they left empty (rows already done are filtered out of the stream)
        done = store.done_ids(0) if ask else done0
        todo = plan[[any(i not in done for i in expected[s]) for s in plan["source_id"]]]
        if not len(todo):
            break
        writer = (CaptionWriter, dict(cfg=cfg, cache_dir=cache, pools=pools, slugs=slugs, domain=prepared.domain,
                                      chat_model=chat_model, ask=ask, final=ask + per_pass == asks,
                                      asks=per_pass), done)
        left = sum(i not in done for s in todo["source_id"] for i in expected[s])
        _stream(cfg, store, 0, todo.drop(columns=["path"]), writer, out, models, progress, report, left)

    for r in range(1, a.rounds + 1):
        previous = pd.concat([store.read_round(q) for q in range(r)], ignore_index=True)
        rejected = store.read_round(r - 1)
        rejected = rejected[rejected["status"] == "rejected"]
        done_r = store.done_ids(r)
        report.skipped_done += len(done_r)
        rejected = rejected[[clip_id(s, src, int(j), r) not in done_r for s, src, j in
                             zip(rejected["label_slug"], rejected["source_id"], rejected["caption_index"])]]
        if not len(rejected):
            continue
        rejected = rejected.assign(labels=[list(x) for x in rejected["labels"]])
        accepted = _accepted_components(cfg, previous, out, chat_model)
        reflector = (Reflector, dict(cfg=cfg, cache_dir=cache, round_=r, accepted=accepted,
                                     domain=prepared.domain, chat_model=chat_model), set())
        _stream(cfg, store, r, rejected, reflector, out, models, progress, report, len(rejected))
    progress.close()

    manifest = store.write_manifest(a.exhausted)
    report.rows = len(manifest)
    report.accepted = int((manifest["status"] == "accepted").sum()) if len(manifest) else 0
    report.kept_best = int((manifest["status"] == "kept_best").sum()) if len(manifest) else 0
    for r, grp in manifest.groupby("round"):
        report.per_round[int(r)] = {str(k): int(v) for k, v in grp["status"].value_counts().items()}
    report.model_loads = servers.loads()
    (out / "report.json").write_text(json.dumps({"rows": report.rows, "accepted": report.accepted,
                                                 "kept_best": report.kept_best,
                                                 "per_round": report.per_round,
                                                 "model_loads": report.model_loads,
                                                 "clap_threshold": {"p": p, "auto": calibration is not None,
                                                                    "calibration": calibration}}, indent=2))
    return report
