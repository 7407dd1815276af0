"""cluster.yaml against Ray's autoscaler schema, and a real `ray start --head` + `ray job submit`."""
from __future__ import annotations

import copy
import os
import shutil
import socket
import subprocess
import sys
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


@pytest.mark.skipif(shutil.which("ray", path=str(Path(sys.executable).parent)) is None,
                    reason="the ray CLI is not installed next to this python")
def test_ray_job_submit_to_a_local_head(tmp_path):
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", RAY_AUTH_MODE="disabled",
               HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0")
    port, dash = _free_port(), _free_port()
    temp = Path("/tmp") / f"ray-job-{os.getpid()}"   # Ray's socket paths must stay short
    start = [str(bindir / "ray"), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=true",
             f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1", f"--temp-dir={temp}", "--disable-usage-stats"]
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=180)
    try:
        out = tmp_path / "job-out"
        submit = [str(bindir / "ray"), "job", "submit", f"--address=http://127.0.0.1:{dash}", "--working-dir", ".",
                  "--", "python", "jobs/augment.py", "--out", str(out), "data.embedded_clips_per_class=3",
                  "data.embedded_seconds=1.0", "data.n=8", "augment.k=1", "augment.rounds=0",
                  "models.t2a.steps=4", "models.llm.max_tokens=16"]
        res = subprocess.run(submit, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        assert "succeeded" in res.stdout
        m = pd.read_parquet(out / "manifest.parquet")
        assert len(m) == 8 and (out / "metadata.csv").is_file() and (out / "README.md").is_file()
    finally:
        subprocess.run([str(bindir / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)
