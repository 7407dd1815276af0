"""One loaded model behind a Ray actor: ``ModelServer(kind, cfg_tree, path)`` loads it once; ``call(method,
args, kwargs)`` runs one of its methods. A plain class (``ModelServer(...).call(...)`` works without Ray);
``synthio_ray.serving.servers`` runs it as an actor and hands the stages a proxy.

``kind``: ``t2a`` (``load_t2a``), ``clap`` (``load_clap``) or ``llm`` (``load_chat_model``). ``cfg_tree``: the
job's config as a dict (``config_to_dict``), so an actor rebuilt after its node died loads the same model.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any

__all__ = ["ModelServer", "KINDS", "public_attributes", "public_methods"]

KINDS = ("t2a", "clap", "llm")
_SIMPLE = (str, int, float, bool, type(None))


def _load(kind: str, cfg: Any, path: str | None) -> Any:
    if kind == "t2a":
        from synthio_ray.models.t2a import load_t2a

        return load_t2a(cfg.models.t2a, path)
    if kind == "clap":
        from synthio_ray.models.clap import load_clap

        return load_clap(cfg.models.clap)
    if kind == "llm":
        from synthio_ray.models.llm import load_chat_model

        return load_chat_model(cfg.models.llm)
    raise ValueError(f"unknown model kind {kind!r}: one of {', '.join(KINDS)}")


def public_attributes(model: Any) -> dict[str, Any]:
    """The model's public plain-valued attributes and properties (``model_id``, ``sample_rate``, ``steps``,
    ...): what a proxy answers locally, without a call to the actor."""
    out = {}
    for name in dir(model):
        if name.startswith("_"):
            continue
        try:
            value = getattr(model, name)
        except Exception:  # noqa: BLE001 - a property that cannot be read here is simply not mirrored
            continue
        if isinstance(value, _SIMPLE):
            out[name] = value
    return out


def public_methods(model: Any) -> list[str]:
    """The model's public methods: what a proxy forwards to the server."""
    return sorted(n for n in dir(type(model)) if not n.startswith("_") and callable(getattr(type(model), n, None)))


class ModelServer:
    """Loads one model at construction and serves its methods; ``info()`` says what was loaded, where, and how
    long the load took. ``log``: an optional actor with ``record.remote(dict)``, or the name of a named one, told
    of every load (a server restarted after its node died loads again, and that load is counted too). The
    servers get the name, not the handle: a handle among a restartable actor's constructor arguments makes
    Ray keep the arguments in the object store and print a warning per actor (ray-project/ray#53727)."""

    def __init__(self, kind: str, cfg_tree: dict, path: str | None = None, log: Any = None):
        from synthio_ray.config import build_config

        cfg = build_config(cfg_tree)
        threads = cfg.resources.torch_threads
        if threads > 0:
            import torch

            torch.set_num_threads(threads)
        t0 = time.monotonic()
        self.model = _load(kind, cfg, path)
        self.kind, self.calls = kind, 0
        self._info = {"kind": kind, "model_id": getattr(self.model, "model_id", kind),
                      "load_seconds": round(time.monotonic() - t0, 3), "host": socket.gethostname(),
                      "pid": os.getpid(), "node_id": _node_id(), "loaded_at": time.time()}
        if isinstance(log, str):
            import ray

            log = ray.get_actor(log)
        if log is not None:
            log.record.remote(dict(self._info))

    def info(self) -> dict[str, Any]:
        return {**self._info, "calls": self.calls, "attributes": public_attributes(self.model),
                "methods": public_methods(self.model)}

    def call(self, method: str, args: tuple = (), kwargs: dict | None = None) -> Any:
        if method not in public_methods(self.model):
            raise AttributeError(f"{self.kind} server: {type(self.model).__name__} has no public method {method!r}")
        self.calls += 1
        return getattr(self.model, method)(*args, **(kwargs or {}))


def _node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - informational only
        return None
