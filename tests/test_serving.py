"""Model servers (synthio_ray.serving): a model loaded once in Ray actors and called through a picklable
stand-in that behaves like the model (same outputs, same exceptions), and servers that cannot start fail
at once with the reason instead of waiting forever."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from synthio_ray.config import config_to_dict, load_config
from synthio_ray.serving import ModelServer, ModelServers, ServedModel, ServerStartError

TINY = ["models.t2a.steps=2", "models.t2a.batch_size=2"]


def test_served_t2a_matches_the_model_and_is_loaded_once(ray_local):
    cfg = load_config(None, TINY)
    local = ModelServer("t2a", config_to_dict(cfg)).model
    servers = ModelServers(cfg)
    try:
        t2a = servers.model("t2a")
        assert t2a.sample_rate == local.sample_rate and t2a.model_id == local.model_id and t2a.steps == 2
        for _ in range(2):   # two calls: one server, one load
            waves = t2a.generate(["a dog barking", "rain on a roof"], [0.5, 0.5], [1, 2])
        ref = local.generate(["a dog barking", "rain on a roof"], [0.5, 0.5], [1, 2])
        assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(waves, ref))
        loads = servers.loads()
        assert [x["kind"] for x in loads] == ["t2a"] and loads[0]["load_seconds"] > 0
        with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
            t2a.nonsense
        # the stand-in travels to other processes (Ray Data actors) and still reaches the same server
        clone = pickle.loads(pickle.dumps(t2a))
        assert clone._slot is None and clone.model_id == t2a.model_id
    finally:
        servers.shutdown()


def test_a_server_no_node_can_hold_fails_at_once_naming_the_key(ray_local):
    servers = ModelServers(load_config(None, ["resources.t2a_gpus=1"]), wait_for_nodes=0)
    with pytest.raises(ServerStartError, match=r"resources\.t2a_gpus.*no node"):
        servers.start(["t2a"])


def test_servers_that_leave_no_cpu_for_their_feeding_tasks_fail_at_once(ray_local):
    """2 CPUs, two T2A servers of 1 CPU each: the forwarding tasks could never start, and the job would hang
    (as `bench_pipeline.py resources.t2a_actors=2` did with 4 servers of 0.5 CPU)."""
    full = ModelServers(load_config(None, ["resources.cpus_per_actor=1", "resources.t2a_actors=2"]), wait_for_nodes=0)
    room = ModelServers(load_config(None, ["resources.cpus_per_actor=0.5"]), wait_for_nodes=0)
    try:
        full.start(["t2a"])
        with pytest.raises(ServerStartError, match=r"\(2 t2a\) hold 2 of this cluster's 2 CPUs.*cpus_per_actor"):
            full.check_room(0.3)
        full.shutdown()
        room.start(["t2a"])
        room.check_room(0.3)                       # 0.5 + 0.3 of 2: room left
        ModelServers(full.cfg, wait_for_nodes=60).check_room(5.0)   # an autoscaler may add nodes: no verdict
    finally:
        full.shutdown()
        room.shutdown()


def test_a_model_that_fails_to_load_is_an_error_with_the_cause(ray_local, tmp_path):
    servers = ModelServers(load_config(None, []), t2a_path=str(tmp_path))   # an empty folder: no pipeline
    try:
        with pytest.raises(ServerStartError, match="t2a model server failed to load"):
            servers.model("t2a")
    finally:
        servers.shutdown()


def test_served_model_pickles_without_ray():
    m = ServedModel("clap", [], {"model_id": "x", "sample_rate": 48000}, ["score"])
    back = pickle.loads(pickle.dumps(m))
    assert back.model_id == "x" and callable(back.score) and "clap" in repr(back)


def test_the_stage_actors_of_served_models_do_not_import_torch():
    """Each round starts its forwarders afresh: with the model served, building the stages must not pay
    for importing torch (seconds of CPU and about 250 MB per actor)."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(repo)!r})
        from synthio_ray.config import load_config
        from synthio_ray.pipeline.llm_stages import Reflector
        from synthio_ray.pipeline.stages import Scorer, Synthesizer
        cfg = load_config({str(repo / "configs" / "tiny.yaml")!r}, ["augment.threshold=0.1"])
        Synthesizer(cfg, "/tmp/unused", model=object())
        Scorer(cfg, "/tmp/unused", model=object())
        Reflector(cfg, "/tmp/unused", round_=1, accepted={{}}, domain="", chat_model=object())
        print("torch" in sys.modules)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "False"


class _Expand:       # a served LLM stage: one gold row in, two caption rows out
    def __call__(self, df):
        return df.loc[df.index.repeat(2)].reset_index(drop=True).assign(j=lambda d: d.groupby("a").cumcount())


class _Synthesize:
    def __call__(self, df):
        return df.assign(clip=True)


class _Score:
    def __call__(self, df):
        return df.assign(score=df["a"] * 0.1)


def _keep(df):
    return df


def test_each_served_stage_is_an_operator_of_its_own(ray_local):
    """Fused into one task, the stages ran one after the other over a task's whole bundle (Ray Data buffers
    rows between fused functions), so the T2A server waited for the LLM and CLAP for every clip; as
    separate operators their servers compute at once. The LLM stage and the light filter after it fuse."""
    import re

    import pandas as pd
    import ray

    from synthio_ray.pipeline.forward import served_map, served_options

    ds = ray.data.from_blocks([pd.DataFrame({"a": [i, i + 1]}) for i in range(0, 8, 2)])
    ds = served_map(ds, _Expand, {}, 2, 2, own_operator=False)
    ds = ds.map_batches(_keep, **served_options(2))
    ds = served_map(ds, _Synthesize, {}, 2, 2)
    ds = served_map(ds, _Score, {}, 4, 2)
    out = ds.materialize()
    ops = re.findall(r"^Operator \d+ (\S+):", out.stats(), flags=re.M)
    assert ops[-3:] == ["MapBatches(_forward)->MapBatches(_keep)", "MapBatches(_forward)", "MapBatches(_forward)"], ops
    rows = out.to_pandas().sort_values(["a", "j"])
    assert list(rows["a"]) == [a for a in range(8) for _ in range(2)] and rows["clip"].all()
    assert list(rows["score"]) == pytest.approx([a * 0.1 for a in range(8) for _ in range(2)])
