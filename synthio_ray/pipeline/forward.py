"""Stages whose model is served (``synthio_ray.serving``) run as Ray Data *tasks*, not actor pools.

Such a stage only moves rows: it sends a batch to its model server and writes the clips. As an actor pool
it cost every round a pool start (new worker processes importing the stage modules: 15-30 s per round on 2
cores); as tasks it runs on Ray's pooled worker processes, which stay warm from one round to the next, so
a round after the first starts in well under a second. Each served stage (LLM -> T2A -> CLAP) is an
operator of its own (below); ``size`` tasks at once keep a stage's servers fed.

``served_map(ds, stage_cls, stage_kwargs, batch_size, size)`` -> the dataset mapped through the stage.
A worker builds each stage once per stream (keyed by a fresh token) and reuses it for the stream's
batches, as an actor would; it keeps the last few streams' stages only. ``warm_workers(size)`` starts
that many worker processes and imports the stage modules in them (while the models load and the plan
runs), so round 0's first tasks find them ready; ``ready(refs)`` waits for them.

Each served stage is its own Ray Data operator (``own_operator=True``, the default): fused into one task,
the stages ran one after the other over a whole input bundle (Ray Data buffers a fused task's rows between
its functions until the block is full, which small rows never fill), so the T2A server idled while the
LLM answered and CLAP idled until every clip of the task was made. As separate operators each stage's
tasks take the previous one's batches as they come, and the three servers compute at the same time.
"""
from __future__ import annotations

import os
import uuid
from collections import OrderedDict
from typing import Any

import pandas as pd

__all__ = ["served_map", "served_options", "warm_workers", "ready", "FORWARDER_CPUS"]

# CPUs of one forwarding task: it moves rows, reads and writes files; the model server computes
FORWARDER_CPUS = 0.05
_KEEP = 8                                   # stages kept per worker process (a few streams' worth)
_BUILT: "OrderedDict[str, Any]" = OrderedDict()


def served_options(size: int) -> dict[str, Any]:
    """Ray Data options of a forwarding task: ``size`` at once, a sliver of a CPU, pandas batches."""
    from ray.data import TaskPoolStrategy

    return dict(compute=TaskPoolStrategy(size=size), num_cpus=FORWARDER_CPUS, batch_format="pandas")


def _warm(hold_s: float) -> int:
    import time

    import ray.data  # noqa: F401  (what a Ray Data task imports first)

    import synthio_ray.pipeline.llm_stages  # noqa: F401  (and the stages: pandas, numpy, config)
    time.sleep(hold_s)   # held, so that ``size`` tasks occupy ``size`` distinct worker processes
    return os.getpid()


def warm_workers(size: int, hold_s: float = 2.0) -> list:
    """Start ``size`` worker processes with the stage modules imported; -> refs for ``ready``."""
    import ray

    task = ray.remote(num_cpus=FORWARDER_CPUS, max_retries=0)(_warm)
    return [task.remote(hold_s) for _ in range(size)]


def ready(refs: list, timeout_s: float = 60.0) -> int:
    """Wait (at most ``timeout_s``) for ``warm_workers``; -> how many distinct worker processes started.
    A warm-up that fails or is slow costs nothing but the start-up it was meant to save."""
    import ray

    done, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    pids = set()
    for ref in done:
        try:
            pids.add(ray.get(ref))
        except Exception:  # noqa: BLE001  (see the docstring)
            pass
    return len(pids)


def _forward(df: pd.DataFrame, stage_cls: type, stage_kwargs: dict, key: str) -> pd.DataFrame:
    stage = _BUILT.get(key)
    if stage is None:
        stage = _BUILT[key] = stage_cls(**stage_kwargs)
        while len(_BUILT) > _KEEP:
            _BUILT.popitem(last=False)
    else:
        _BUILT.move_to_end(key)
    return stage(df)


def served_map(ds: Any, stage_cls: type, stage_kwargs: dict, batch_size: int, size: int,
               own_operator: bool = True) -> Any:
    """``ds`` mapped through ``stage_cls(**stage_kwargs)`` (whose model is served) on ``size`` tasks at once.
    ``own_operator=False`` lets Ray Data fuse it with the map before it or the light map after it; otherwise
    its tasks are named after the stage (in Ray's dashboard and state API), and operators whose remote
    arguments differ are never fused."""
    extra = dict(name=f"synthio.{stage_cls.__name__}") if own_operator else {}
    return ds.map_batches(_forward, fn_kwargs=dict(stage_cls=stage_cls, stage_kwargs=stage_kwargs,
                                                   key=uuid.uuid4().hex),
                          batch_size=batch_size, **served_options(size), **extra)
