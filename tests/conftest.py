"""Shared test setup: offline hub, small audio fixtures, no network."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Jobs run without --config read the tiny random zoo's config (speed; tests that need the trained world
# zoo pass configs/default.yaml themselves).
os.environ.setdefault("SYNTHIO_CONFIG", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                     "configs", "tiny.yaml"))

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from synthio_ray.data.audio import write_audio  # noqa: E402


def tone(seconds: float = 0.5, sr: int = 16000, freq: float = 440.0, channels: int = 1,
         seed: int = 0) -> np.ndarray:
    """A short test signal: a sine plus a little seeded noise (distinct bytes per seed)."""
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    x = x.astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.fixture
def make_wav():
    """make_wav(path, seed=0, **tone_kwargs) writes a valid WAV and returns its path."""
    def _make(path: Path, seed: int = 0, sr: int = 16000, **kw) -> Path:
        return write_audio(path, tone(sr=sr, seed=seed, **kw), sr)
    return _make


@pytest.fixture(scope="session")
def zoo():
    """zoo(name) -> folder of a tiny zoo model, built once into the shared cache ($SYNTHIO_ZOO or
    ~/.cache/synthio_ray/zoo/<version>) and reused across test runs."""
    from synthio_ray.zoo import build_zoo

    def _get(name: str) -> Path:
        return build_zoo(only=[name])[name]
    return _get


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """A quiet 2-CPU local Ray cluster for one test module; actors import the repo and tests/ (test doubles)."""
    import ray
    import ray.data

    path = os.pathsep.join([str(REPO / "tests"), str(REPO)])
    ray.init(num_cpus=2, runtime_env={"env_vars": {"PYTHONPATH": path}}, include_dashboard=False,
             _temp_dir=str(tmp_path_factory.mktemp("ray")), logging_level="ERROR", log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest single-threaded (and are not slowed down by other busy cores)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
