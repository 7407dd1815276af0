"""The augmentation job on a simulated multi-node cluster (``ray.cluster_utils.Cluster``: a head and worker
nodes on this machine, each declaring its own resources; a declared GPU is only a scheduling resource here):
the model servers land on the nodes their requests fit, a request no node can meet fails fast saying
which key, and losing the node that serves the text-to-audio model mid-round still ends with the same
clips as an undisturbed run, none twice."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from synthio_ray.config import load_config
from synthio_ray.data.prepare import prepare_dataset

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"
SMALL = ["data.embedded_clips_per_class=4", "data.embedded_seconds=1.0", "data.n=8", "augment.k=2",
         "augment.rounds=1", "models.t2a.steps=4", "models.llm.max_tokens=24", "ray.progress=off",
         "models.clap.finetune=none", "augment.threshold=0.131", "models.t2a.batch_size=2",
         "resources.t2a_gpus=1", "resources.wait_for_nodes=120"]


@pytest.fixture()
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    ray.init(address=c.address, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def _cfg(prepared: Path, cluster, *extra: str):
    return load_config(TINY, SMALL + [f"augment.data={prepared}", f"ray.address={cluster.address}", *extra])


def _prepared(tmp_path: Path) -> Path:
    out = tmp_path / "prepared"
    prepare_dataset(load_config(TINY, SMALL), out)
    return out


def _loads(out: Path) -> list[dict]:
    import json

    return json.loads((out / "report.json").read_text())["model_loads"]


@pytest.mark.slow
def test_servers_land_on_the_nodes_that_offer_their_resources_and_survive_losing_one(cluster, tmp_path):
    import ray

    from synthio_ray.pipeline.augment import run_augment

    prepared = _prepared(tmp_path)
    cpu_node = cluster.add_node(num_cpus=2)
    gpu_a = cluster.add_node(num_cpus=2, num_gpus=1)
    cluster.wait_for_nodes()
    ref = tmp_path / "undisturbed"
    run_augment(_cfg(prepared, cluster), ref)
    t2a = [x for x in _loads(ref) if x["kind"] == "t2a"]
    assert [x["node_id"] for x in t2a] == [gpu_a.node_id]          # the only node with a GPU
    assert {x["node_id"] for x in _loads(ref) if x["kind"] != "t2a"} <= {cpu_node.node_id, gpu_a.node_id,
                                                                        cluster.head_node.node_id}

    # the same run again; once round 0 has written clips, a second GPU node joins and the first is lost.
    # The job runs in a thread: Cluster.add_node installs signal handlers, which only the main thread may do.
    out = tmp_path / "disturbed"
    state: dict = {}

    def job():
        try:
            state["report"] = run_augment(_cfg(prepared, cluster), out)
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread below
            state["error"] = e

    runner = threading.Thread(target=job, daemon=True)
    runner.start()
    deadline = time.monotonic() + 300
    while runner.is_alive() and time.monotonic() < deadline:
        if len(list((out / "rounds" / "round_0").glob("part-*.parquet"))) >= 1:
            state["gpu_b"] = cluster.add_node(num_cpus=2, num_gpus=1)
            cluster.remove_node(gpu_a)
            break
        time.sleep(0.2)
    runner.join(timeout=600)
    if "error" in state:
        raise state["error"]
    assert "gpu_b" in state, "round 0 never wrote a part file before the job ended"
    report = state["report"]
    a = pd.read_parquet(ref / "manifest.parquet").set_index("id").sort_index()
    b = pd.read_parquet(out / "manifest.parquet").set_index("id").sort_index()
    assert b.index.is_unique and list(a.index) == list(b.index)
    assert list(a["caption"]) == list(b["caption"]) and list(a["path"]) == list(b["path"])
    assert (b["status"] != "failed").all(), b[b["status"] == "failed"]["error"].tolist()
    t2a = [x for x in _loads(out) if x["kind"] == "t2a"]
    assert len(t2a) == 2 and t2a[-1]["node_id"] == state["gpu_b"].node_id, t2a   # reloaded once, on the new node
    assert report.rows == len(a)
    assert ray.is_initialized()


@pytest.mark.slow
def test_a_pool_no_node_can_hold_fails_fast_naming_the_key(cluster, tmp_path):
    from synthio_ray.pipeline.augment import run_augment
    from synthio_ray.serving import ServerStartError

    prepared = _prepared(tmp_path)
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    t0 = time.monotonic()
    with pytest.raises(ServerStartError, match=r"resources\.t2a_gpus.*no node"):
        run_augment(_cfg(prepared, cluster, "resources.wait_for_nodes=5"), tmp_path / "out")
    assert time.monotonic() - t0 < 120
