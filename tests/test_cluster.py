"""cluster.yaml against Ray's autoscaler schema, and a real `ray start --head` with token authentication (as
Ray 2.60 heads run) + `ray job submit`, hub settings forwarded to the workers."""
from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _validate(cfg: dict) -> dict:
    from ray.autoscaler._private.commands import prepare_config
    from ray.autoscaler._private.util import validate_config

    full = prepare_config(copy.deepcopy(cfg))
    validate_config(full)
    return full


def test_cluster_yaml_matches_ray_schema():
    cfg = yaml.safe_load((REPO / "cluster.yaml").read_text())
    full = _validate(cfg)
    gpu = [n for n in full["available_node_types"] if n != full["head_node_type"]]
    assert gpu and all(full["available_node_types"][n]["min_workers"] == 0 for n in gpu)
    assert full["available_node_types"]["head"]["resources"] == {"CPU": 0}
    assert "ray-ml" not in cfg["docker"]["image"] and cfg["docker"]["image"].startswith("rayproject/ray:2.60")
    assert any("constraints.txt" in c for c in cfg["setup_commands"])


def test_schema_check_can_fail():
    import jsonschema

    cfg = yaml.safe_load((REPO / "cluster.yaml").read_text())
    cfg["available_node_types"]["gpu_a10g"]["min_wrkers"] = 0
    with pytest.raises(jsonschema.ValidationError):
        _validate(cfg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_vllm_accelerator_type_names_the_node_type_that_installs_vllm():
    from synthio_ray.config import load_config

    cfg = yaml.safe_load((REPO / "cluster.yaml").read_text())
    acc = load_config(REPO / "configs" / "production.yaml").models.llm.accelerator_type
    assert acc, "configs/production.yaml must pin models.llm.accelerator_type"
    types = cfg["available_node_types"]
    with_acc = [n for n, t in types.items() if f"accelerator_type:{acc}" in (t.get("resources") or {})]
    assert len(with_acc) == 1, f"one node type must declare accelerator_type:{acc}, got {with_acc}"
    assert any("vllm" in c for c in types[with_acc[0]].get("worker_setup_commands", [])), with_acc
    others = [n for n, t in types.items() if n not in with_acc and any("vllm" in c for c in t.get(
        "worker_setup_commands", []))]
    assert not others, f"vLLM installed on node types the engine cannot land on: {others}"


def test_cluster_nodes_run_with_token_auth():
    cfg = yaml.safe_load((REPO / "cluster.yaml").read_text())
    assert all(c.startswith("RAY_AUTH_MODE=token ray start") for c in cfg["head_start_ray_commands"]
               + cfg["worker_start_ray_commands"] if "ray start" in c)
    assert "/home/ray/.ray/auth_token" in cfg["file_mounts"]   # the same token on every node


BINDIR = Path(sys.executable).parent
needs_cli = pytest.mark.skipif(shutil.which("ray", path=str(BINDIR)) is None,
                               reason="the ray CLI is not installed next to this python")


@pytest.fixture(scope="module")
def token_head(tmp_path_factory):
    """A `ray start --head` with token authentication on (the token in a file named by RAY_AUTH_TOKEN_PATH, as
    ~/.ray/auth_token would be), started without HF_TOKEN. Yields the client env, the dashboard and GCS
    addresses. Stopped by ending its own `--block` process (never `ray stop`, which stops every Ray here)."""
    token = tmp_path_factory.mktemp("auth") / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "RAY_ADDRESS")}
    env.update(PATH=f"{BINDIR}{os.pathsep}{os.environ.get('PATH', '')}", RAY_AUTH_MODE="token",
               RAY_AUTH_TOKEN_PATH=str(token), HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0")
    port, dash = _free_port(), _free_port()
    temp = Path("/tmp") / f"ray-job-{os.getpid()}"   # Ray's socket paths must stay short
    start = [str(BINDIR / "ray"), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=true",
             f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1", f"--temp-dir={temp}", "--disable-usage-stats",
             "--block"]
    log = open(tmp_path_factory.mktemp("head") / "head.log", "w")
    head = subprocess.Popen(start, env=env, stdout=log, stderr=subprocess.STDOUT)
    address = f"http://127.0.0.1:{dash}"
    try:
        for _ in range(90):
            if head.poll() is not None:
                raise RuntimeError(f"ray start exited with {head.returncode}: {Path(log.name).read_text()[-2000:]}")
            ok = subprocess.run([str(BINDIR / "ray"), "job", "list", f"--address={address}"], env=env,
                                capture_output=True, timeout=60)
            if ok.returncode == 0:
                break
            time.sleep(2)
        else:
            raise RuntimeError("the head's job API did not come up in 3 minutes")
        yield {"env": env, "address": address, "gcs": f"127.0.0.1:{port}"}
    finally:
        head.terminate()
        try:
            head.wait(timeout=120)
        except subprocess.TimeoutExpired:
            head.kill()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


@needs_cli
def test_a_client_without_token_auth_is_refused(token_head):
    env = {k: v for k, v in token_head["env"].items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}
    res = subprocess.run([str(BINDIR / "ray"), "job", "list", f"--address={token_head['address']}"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "Unauthorized" in res.stdout + res.stderr, res.stdout[-500:] + res.stderr[-500:]


@needs_cli
def test_the_driver_forwards_hf_token_to_every_worker(token_head, tmp_path):
    """The head has no HF_TOKEN; a driver that has one joins with ensure_ray, and its tasks see it."""
    code = ("import json, os, ray\n"
            "from synthio_ray.config import load_config\n"
            "from synthio_ray.pipeline.augment import ensure_ray\n"
            f"ensure_ray(load_config(None, ['ray.address={token_head['gcs']}']))\n"
            "env = lambda: {k: os.environ.get(k) for k in ('HF_TOKEN', 'HF_HOME')}\n"
            "print('ENV=' + json.dumps(ray.get([ray.remote(num_cpus=0.5)(env).remote() for _ in range(2)])))\n")
    env = dict(token_head["env"], HF_TOKEN="hf_test_token", HF_HOME=str(tmp_path / "hf"))
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    seen = json.loads(next(x for x in res.stdout.splitlines() if x.startswith("ENV="))[4:])
    assert seen == [{"HF_TOKEN": "hf_test_token", "HF_HOME": str(tmp_path / "hf")}] * 2


@needs_cli
def test_ray_job_submit_to_a_token_auth_head(token_head, tmp_path):
    """What a user runs: RAY_AUTH_MODE=token on the client (with the cluster's token), the job's HF_TOKEN in its
    runtime env (the driver must not set it a second time: Ray refuses to merge two values)."""
    out = tmp_path / "job-out"
    submit = [str(BINDIR / "ray"), "job", "submit", f"--address={token_head['address']}", "--working-dir", ".",
              "--runtime-env-json", json.dumps({"env_vars": {"HF_TOKEN": "hf_job_token"}}),
              "--", "python", "jobs/augment.py", "--out", str(out), "data.embedded_clips_per_class=3",
              "data.embedded_seconds=1.0", "data.n=8", "augment.k=1", "augment.rounds=0",
              "models.t2a.steps=4", "models.llm.max_tokens=16"]
    res = subprocess.run(submit, cwd=REPO, env=token_head["env"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "succeeded" in res.stdout
    m = pd.read_parquet(out / "manifest.parquet")
    assert len(m) == 8 and (out / "metadata.csv").is_file() and (out / "README.md").is_file()
