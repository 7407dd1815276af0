"""The augmentation pipeline, streaming (jobs/augment.py) vs the authors' way, same workload, one run.

    python benchmarks/bench_pipeline.py [--n 16] [--k 2] [--steps 8] [--seconds 2] [--batch 8] [--rounds 0]
                                        [--threshold P] [--skip-4n] [key=value ...]

(a) streaming: ``run_augment`` on Ray Data (one model server each for LLM, T2A and CLAP, fed by forwarding
    tasks; rows written as they finish), ``--rounds`` reflection rounds (default none);
(b) the authors' way: each stage over all rows before the next starts, one clip per T2A call, in one
    process (the same plain stage classes, so only the execution differs).
Prints clips/s of each and their ratio; the shared-core limit (every stage competes for the same cores,
so the best end-to-end rate is C / the sum of each stage's seconds per clip, measured alone on one thread,
for C cores running single-threaded stages: ``resources.torch_threads=1``) and each
result's ratio to it; how many times each model was loaded; with ``--rounds R`` each reflection round's
clips/s next to round 0's; and the peak resident memory of the whole process tree (driver and Ray workers)
for N and for 4N gold clips.

(a) and (b) run in this process after a warm-up job, so (b) pays no imports and no model loads from disk
caches it has not already read. ``--cold`` also times each way as a user runs it, a fresh process from
start to exit (interpreter, imports, Ray's start for (a), model loads): ``python jobs/augment.py`` with the
same settings against this script's ``--authors-only`` mode.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import pandas as pd  # noqa: E402
import psutil  # noqa: E402

from synthio_ray.config import load_config  # noqa: E402
from synthio_ray.data.labels import label_slugs  # noqa: E402
from synthio_ray.data.manifest import load_prepared  # noqa: E402
from synthio_ray.data.prepare import prepare_dataset  # noqa: E402
from synthio_ray.pipeline.augment import _loads_by_kind, _plan, gold_rows, run_augment  # noqa: E402
from synthio_ray.pipeline.llm_stages import CaptionWriter, pool_components  # noqa: E402
from synthio_ray.pipeline.stages import Scorer, Synthesizer, label_text  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class PeakRSS:
    """Samples the summed RSS of this process and all its descendants (Ray workers included)."""

    def __init__(self, every: float = 0.2):
        self.every, self.peak, self._stop = every, 0, threading.Event()

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me] + me.children(recursive=True):
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.every)

    def __enter__(self):
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def overrides(args, prepared: Path, n: int) -> list[str]:
    """The workload's ``key=value`` settings over ``configs/tiny.yaml`` (the user's overrides last)."""
    return [f"augment.data={prepared}", f"augment.k={args.k}", f"augment.rounds={args.rounds}",
            f"augment.threshold={args.threshold}", f"models.t2a.steps={args.steps}",
            f"models.t2a.batch_size={args.batch}", "models.llm.max_tokens=32", "ray.progress=off",
            f"data.n={n}", *args.overrides]


def make_cfg(args, prepared: Path, n: int, extra=()):
    return load_config(REPO / "configs" / "tiny.yaml", [*overrides(args, prepared, n), *extra])


def prepare(tmp: Path, n: int, seconds: float) -> Path:
    per_class = max(4, (n * 10) // 8 // 7 + 2)
    cfg = load_config(REPO / "configs" / "tiny.yaml", [f"data.n={n}", f"data.embedded_clips_per_class={per_class}",
                                                          f"data.embedded_seconds={seconds}"])
    out = tmp / f"prepared-{n}"
    prepare_dataset(cfg, out)
    return out


def authors_way(cfg, prepared: Path, out: Path) -> tuple[float, dict[str, float]]:
    """Stage by stage over all rows, batch 1 for T2A; returns (clips/s, per-stage seconds)."""
    ds = load_prepared(prepared)
    gold = gold_rows(ds, None)
    slugs = label_slugs({label_text(x) for x in gold["labels"]})
    t0 = time.perf_counter()
    times = {}
    plan = _plan(cfg, gold, out)
    rows = CaptionWriter(cfg, out / "llm_cache", pool_components(plan), slugs, ds.domain)(plan)
    times["captions"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    synth = Synthesizer(cfg, out)
    rows = pd.concat([synth(rows.iloc[i:i + 1]) for i in range(len(rows))], ignore_index=True)  # one per call
    times["t2a"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    rows = Scorer(cfg, out)(rows)
    times["clap"] = time.perf_counter() - t2
    rows.to_parquet(out / "manifest.parquet")
    return len(rows) / (time.perf_counter() - t0), times


def stage_alone(cfg, prepared: Path, out: Path) -> dict[str, float]:
    """clips/s of each stage on its own (batched as in the streaming job), one process."""
    ds = load_prepared(prepared)
    gold = gold_rows(ds, None)
    slugs = label_slugs({label_text(x) for x in gold["labels"]})
    plan = _plan(cfg, gold, out)
    rates = {}
    t = time.perf_counter()
    rows = CaptionWriter(cfg, out / "llm_cache_alone", pool_components(plan), slugs, ds.domain)(plan)
    rates["llm"] = len(rows) / (time.perf_counter() - t)
    synth = Synthesizer(cfg, out)
    t = time.perf_counter()
    rows = synth(rows)
    rates["t2a"] = len(rows) / (time.perf_counter() - t)
    scorer = Scorer(cfg, out)
    t = time.perf_counter()
    scorer(rows)
    rates["clap"] = len(rows) / (time.perf_counter() - t)
    return rates


def streaming(cfg, out: Path):
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        report = run_augment(cfg, out)
        dt = time.perf_counter() - t0
    steady = report.stream_steady_rows / report.stream_seconds if report.stream_seconds > 0 else float("nan")
    return report.rows / dt, mem.peak, steady, report.wait_seconds, report


def cold(args, prep: Path, out: Path) -> tuple[float, float]:
    """Seconds from process start to exit of (a) ``jobs/augment.py`` and (b) ``--authors-only``, same settings."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}
    runs = {"ours": [sys.executable, str(REPO / "jobs" / "augment.py"), "--config", str(REPO / "configs" / "tiny.yaml"),
                     "--out", str(out / "cold-ours"), *overrides(args, prep, args.n)],
            "authors": [sys.executable, __file__, "--authors-only", str(prep), str(out / "cold-authors"),
                        *_flags(args), *args.overrides]}
    seconds = {}
    for name, cmd in runs.items():
        t = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        seconds[name] = time.perf_counter() - t
        if done.returncode:
            raise SystemExit(f"cold {name} run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds["ours"], seconds["authors"]


def _flags(args) -> list[str]:
    return [f"--n={args.n}", f"--k={args.k}", f"--steps={args.steps}", f"--seconds={args.seconds}",
            f"--batch={args.batch}", f"--rounds={args.rounds}", f"--threshold={args.threshold}"]


def _loads(report) -> str:
    return ", ".join(f"{k} {len(v)}x ({sum(v):.1f} s)" for k, v in _loads_by_kind(report.model_loads).items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=0, help="reflection rounds (each round's clips/s is printed)")
    ap.add_argument("--threshold", type=float, default=0.129,
                    help="CLAP threshold; the tiny CLAP scores near 0.13, so 0.129 rejects about half")
    ap.add_argument("--skip-4n", action="store_true")
    ap.add_argument("--cold", action="store_true", help="also time each way in a fresh process, start to exit")
    ap.add_argument("--authors-only", nargs=2, metavar=("PREPARED", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*", metavar="key=value",
                    help="config overrides of the streaming run and the baselines (e.g. resources.t2a_actors=2)")
    args = ap.parse_args()
    if args.authors_only:   # the cold (b): this process does nothing else
        prep, out = map(Path, args.authors_only)
        authors_way(make_cfg(args, prep, args.n), prep, out)
        return
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prep = prepare(tmp, args.n, args.seconds)
        cfg = make_cfg(args, prep, args.n)
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        run_augment(make_cfg(args, prep, args.n, ["augment.k=1"]), tmp / "warmup")  # zoo build, imports, caches
        rate_stream, peak_n, steady, wait, rep_n = streaming(cfg, tmp / "stream")
        rate_auth, times = authors_way(cfg, prep, tmp / "authors")
        alone = stage_alone(cfg, prep, tmp / "alone")
        clips = rep_n.rows
        print(f"workload: {args.n} gold clips x k={args.k} = {args.n * args.k} clips of {args.seconds:g} s "
              f"(+ {clips - args.n * args.k} in {args.rounds} reflection round(s)), tiny zoo, {args.steps} steps, "
              f"T2A batch {args.batch}, {os.cpu_count()} CPUs")
        print(f"(a) streaming     : {rate_stream:6.2f} clips/s end to end; {steady:.2f} clips/s once rows flow "
              f"(first row after {wait:.1f} s: actor start-up and pipeline fill)")
        print(f"(b) authors' way  : {rate_auth:6.2f} clips/s  (stage seconds: "
              + ", ".join(f"{k} {v:.1f}" for k, v in times.items()) + ")")
        print(f"ratio (a)/(b)     : {rate_stream / rate_auth:6.2f}x")
        slow = min(alone, key=alone.get)
        print("stages alone      : " + ", ".join(f"{k} {v:.2f} clips/s" for k, v in alone.items()))
        print(f"streaming efficiency = {rate_stream:.2f} / {alone[slow]:.2f} ({slow}) = {rate_stream / alone[slow]:.2f} "
              f"end to end; {steady / alone[slow]:.2f} once rows flow")
        # each stage alone ran on torch_threads threads; with one thread each, C cores run C of them at once
        par = os.cpu_count() if cfg.resources.torch_threads == 1 else 1
        limit = par / sum(1.0 / v for v in alone.values())
        print(f"shared-core limit : {limit:6.2f} clips/s ({par} / sum of the stages' s/clip, single-threaded "
              f"stages on {os.cpu_count()} cores); streaming at N: "
              f"{rate_stream / limit:.2f} of it end to end, {steady / limit:.2f} once rows flow")
        print(f"model loads, N    : {_loads(rep_n)}")
        for r, t in sorted(rep_n.round_timing.items()):
            print(f"round {r}           : {t['rows']} clips in {t['seconds']:.1f} s = {t['rows'] / t['seconds']:.2f} "
                  f"clips/s (round start to last row)")
        print(f"peak RSS, N={args.n}   : {peak_n / 2**20:8.0f} MiB")
        if args.cold:
            ours, theirs = cold(args, prep, tmp)
            print(f"cold, start to exit: (a) {ours:.1f} s = {clips / ours:.2f} clips/s, (b) {theirs:.1f} s = "
                  f"{args.n * args.k / theirs:.2f} clips/s; ratio {theirs / ours:.2f}x (a fresh process each: "
                  f"interpreter, imports, Ray's start for (a), model loads)")
        if not args.skip_4n:
            prep4 = prepare(tmp, 4 * args.n, args.seconds)
            rate_4n, peak_4n, steady_4n, _, _ = streaming(make_cfg(args, prep4, 4 * args.n), tmp / "stream4")
            print(f"peak RSS, 4N={4 * args.n}  : {peak_4n / 2**20:8.0f} MiB  ({peak_4n / peak_n:.2f}x of N); "
                  f"streaming at 4N: {rate_4n:.2f} clips/s end to end ({rate_4n / rate_auth:.2f}x the authors' "
                  f"way at N, {rate_4n / limit:.2f} of the limit), {steady_4n:.2f} once rows flow "
                  f"({steady_4n / limit:.2f} of the limit)")
        ray.shutdown()


if __name__ == "__main__":
    main()
