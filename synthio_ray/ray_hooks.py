"""The runtime environment our jobs give Ray's workers, and a setup hook for local clusters.

``worker_runtime_env(repo, local)``: what ``ensure_ray`` passes to ``ray.init``: ``PYTHONPATH`` (the repo),
the hub settings of this process that workers need (``FORWARDED_ENV``: ``HF_TOKEN`` for gated checkpoints
such as Stable Audio Open, and where the hub cache is), and on a local cluster the setup hook below. A
variable the submitted job's own runtime env already sets (``ray job submit --runtime-env-json``) is left
to it: Ray refuses to merge two values of one variable.

The local cluster runs without the dashboard, so Ray's state API is absent. Ray Train's
placement-group cleaner polls that API every few seconds and logs a warning each time; on a local
cluster the placement groups die with the driver anyway, so that one warning is dropped.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Mapping

__all__ = ["FORWARDED_ENV", "worker_runtime_env", "quiet_local_worker"]

_CLEANER_LOGGER = "ray.train.v2._internal.execution.controller.placement_group_cleaner"
FORWARDED_ENV = ("HF_TOKEN", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE")
_JOB_CONFIG = "RAY_JOB_CONFIG_JSON_ENV_VAR"   # set by Ray's job supervisor for a submitted job's driver


def _job_env_vars(environ: Mapping[str, str]) -> set[str]:
    """Names of the env vars the submitted job's runtime env sets (empty outside ``ray job submit``)."""
    try:
        job = json.loads(environ.get(_JOB_CONFIG) or "{}")
    except json.JSONDecodeError:
        return set()
    return set(((job.get("runtime_env") or {}).get("env_vars") or {}))


def worker_runtime_env(repo: str, local: bool, environ: Mapping[str, str] | None = None) -> dict:
    """The ``runtime_env`` for ``ray.init``: env vars for every worker (``PYTHONPATH``, ``FORWARDED_ENV``
    when set here) minus those the job's runtime env sets, and the quiet setup hook on a local cluster."""
    environ = os.environ if environ is None else environ
    env = {"PYTHONPATH": os.pathsep.join([repo] + ([environ["PYTHONPATH"]] if environ.get("PYTHONPATH") else []))}
    env.update({k: environ[k] for k in FORWARDED_ENV if environ.get(k)})
    taken = _job_env_vars(environ)
    out: dict = {"env_vars": {k: v for k, v in env.items() if k not in taken}}
    if local:  # no dashboard here, so no state API: drop Ray Train's warning about it
        out["worker_process_setup_hook"] = "synthio_ray.ray_hooks.quiet_local_worker"
    return out


class _DropStateApiWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "State API may be temporarily unavailable" not in record.getMessage()


def quiet_local_worker() -> None:
    """Installed as ``worker_process_setup_hook``: filter the state-API warning in this worker."""
    logging.getLogger(_CLEANER_LOGGER).addFilter(_DropStateApiWarning())
