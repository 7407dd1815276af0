"""The augmentation job on a simulated multi-node cluster (``ray.cluster_utils.Cluster``: a head and worker
nodes on this machine, each declaring its own resources; a declared GPU is only a scheduling resource here):
the model servers land on the nodes their requests fit, a request no node can meet fails fast saying
which key, and losing the node that serves the text-to-audio model mid-round still ends with the same
clips as an undisturbed run, none twice. The alignment job loses the node of its Ray Train worker
mid-training and ends with the same trained adapters as an undisturbed run."""
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


ALIGN = ["data.embedded_clips_per_class=4", "data.embedded_seconds=1.0", "data.n=8", "models.t2a.steps=4",
         "models.t2a.crop_latents=true", "ray.progress=off", "align.losers=1", "align.batch_size=4",
         "align.epochs=8", "align.max_failures=2", "align.keep_checkpoints=8"]


@pytest.fixture()
def cluster(request):
    import ray
    from ray.cluster_utils import Cluster

    head_cpus = getattr(request, "param", 1)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": head_cpus, "include_dashboard": False})
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


def _lose_a_node_midway(run, ready, swap, poll: float = 0.1):
    """``run()`` in a thread (Cluster.add_node installs signal handlers, which only the main thread may
    do); as soon as ``ready()`` holds, ``swap()`` (add a node, remove another). Returns (run's result,
    whether the swap happened); re-raises run's error here."""
    state: dict = {}

    def job():
        try:
            state["result"] = run()
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread below
            state["error"] = e

    runner = threading.Thread(target=job, daemon=True)
    runner.start()
    deadline, swapped = time.monotonic() + 300, False
    while runner.is_alive() and time.monotonic() < deadline:
        if ready():
            swap()
            swapped = True
            break
        time.sleep(poll)
    runner.join(timeout=600)
    if "error" in state:
        raise state["error"]
    return state.get("result"), swapped


@pytest.mark.slow
def test_servers_land_on_the_nodes_that_offer_their_resources_and_survive_losing_one(cluster, tmp_path):
    import ray

    from synthio_ray.pipeline.augment import run_augment

    prepared = _prepared(tmp_path)
    cpu_node = cluster.add_node(num_cpus=2)
    gpu_a = cluster.add_node(num_cpus=2, num_gpus=1)
    cluster.wait_for_nodes()
    # k=4: 32 clips in round 0, so T2A work is left when its first part file lands (a round's clips arrive
    # in a few bursts; with k=2 the whole job could finish before the node was gone)
    cfg = _cfg(prepared, cluster, "augment.k=4")
    ref = tmp_path / "undisturbed"
    run_augment(cfg, ref)
    t2a = [x for x in _loads(ref) if x["kind"] == "t2a"]
    assert [x["node_id"] for x in t2a] == [gpu_a.node_id]          # the only node with a GPU
    assert {x["node_id"] for x in _loads(ref) if x["kind"] != "t2a"} <= {cpu_node.node_id, gpu_a.node_id,
                                                                        cluster.head_node.node_id}

    # the same run again; once round 0 has written clips, a second GPU node joins and the first is lost
    out = tmp_path / "disturbed"
    state: dict = {}

    def swap():
        state["gpu_b"] = cluster.add_node(num_cpus=2, num_gpus=1)
        cluster.remove_node(gpu_a)

    report, swapped = _lose_a_node_midway(lambda: run_augment(cfg, out),
                                          lambda: any((out / "rounds" / "round_0").glob("part-*.parquet")),
                                          swap, poll=0.2)
    assert swapped, "round 0 never wrote a part file before the job ended"
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


@pytest.mark.slow
@pytest.mark.parametrize("cluster", [0], indirect=True)   # a head with no CPU: the train worker is elsewhere
def test_alignment_survives_losing_its_train_worker_node(cluster, tmp_path):
    import torch

    from synthio_ray.train.align import run_align
    from synthio_ray.train.align_loop import STATE_FILE

    prepared = _prepared(tmp_path)
    worker_node = cluster.add_node(num_cpus=2)   # the only node with CPUs: the train worker runs there
    cluster.wait_for_nodes()
    cfg = load_config(TINY, ALIGN + [f"align.data={prepared}", f"ray.address={cluster.address}"])
    ref = run_align(cfg, tmp_path / "undisturbed", log=lambda _: None)

    out = tmp_path / "disturbed"

    def swap():
        cluster.add_node(num_cpus=2)
        cluster.remove_node(worker_node)

    _, swapped = _lose_a_node_midway(       # once epoch 1's checkpoint is written
        lambda: run_align(cfg, out, log=lambda _: None),
        lambda: any(p.is_dir() for p in (out / "ray_train" / "align").glob("checkpoint_*")), swap, poll=0.05)
    assert swapped, "training ended before its worker's node could be removed"

    def final(run: Path) -> dict:
        kept = [p for p in (run / "ray_train" / "align").glob("checkpoint_*") if p.is_dir()]
        last = max(kept, key=lambda p: p.name)    # checkpoint_<timestamp>
        return torch.load(last / STATE_FILE, map_location="cpu", weights_only=False)

    a, b = final(ref.out), final(out)
    assert a["starts"] == [0] and len(b["starts"]) >= 2 and 0 < b["starts"][1] < 8, b["starts"]   # resumed
    assert b["epoch"] == a["epoch"] == 8
    drop = ("seconds", "step_s")
    assert [{k: v for k, v in e.items() if k not in drop} for e in b["history"]] == \
        [{k: v for k, v in e.items() if k not in drop} for e in a["history"]]
    for name, tensor in a["trainable"].items():      # the same training as without the loss, bit for bit
        torch.testing.assert_close(b["trainable"][name], tensor, rtol=0, atol=0, msg=name)
    assert (out / "checkpoint").is_dir() and (out / "metrics.json").is_file()
