"""A job's model servers: each model loaded once per job, in its own Ray actors, and called by every round.

``ModelServers(cfg).start(["t2a", "clap", "llm"])`` creates the actors (``resources.<kind>_actors`` of them,
with that kind's GPUs and ``resources.cpus_per_actor``) without waiting, so the models load while the job
plans; ``model(kind)`` waits until they are up and returns a :class:`ServedModel`, a picklable stand-in for
the model that the pipeline's stages take as their ``model=`` / ``chat_model=`` and that every round's Ray
Data actors share. ``use(cfg, t2a_path)`` points the same servers at the next run's config (a grid's next
cell): a kind whose model or resources changed is stopped and loads the new one on demand; the others
keep serving. ``loads()`` lists every load (kind, model, seconds, node), restarts included, for the
job's report and dataset card; ``shutdown()`` ends the actors.

A server restarts after its node is lost (``max_restarts=-1``) and calls in flight are retried on it
(``max_task_retries=-1``): the calls are deterministic per row (seeded), so a retry writes the same clip.
"""
from __future__ import annotations

import functools
import json
import random
import time
import uuid
from typing import Any

from synthio_ray.config import Config, config_to_dict
from synthio_ray.serving.server import KINDS, ModelServer

__all__ = ["ModelServers", "ServedModel", "LoadLog", "ServerStartError"]


class ServerStartError(RuntimeError):
    """A model server could not start: no node offers what it asks for, or it failed to load its model."""


class LoadLog:
    """Driver-node actor: every server's loads (``record``), and a slot per calling process (``lease``) so the
    stages' actors spread over a kind's servers one each instead of piling onto one."""

    def __init__(self):
        self._loads: list[dict] = []
        self._next: dict[str, int] = {}

    def record(self, info: dict) -> None:
        self._loads.append(info)

    def loads(self) -> list[dict]:
        return list(self._loads)

    def lease(self, kind: str) -> int:
        i = self._next.get(kind, 0)
        self._next[kind] = i + 1
        return i


class ServedModel:
    """Stands in for a model served by ``ModelServer`` actors: its plain attributes (``model_id``,
    ``sample_rate``, ``steps``, ...) are answered here, every method call goes to one of the servers (the
    same one for the life of this process) and returns what the model returned. An exception the model
    raised is raised here as itself (``RowErrors``, out-of-memory), so callers' retry rules still apply."""

    def __init__(self, kind: str, handles: list, attributes: dict[str, Any], methods: list[str], log: Any = None):
        self._kind, self._handles, self._attributes, self._log = kind, list(handles), dict(attributes), log
        self._methods = frozenset(methods)
        self._slot: int | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_slot": None}   # each process that unpickles it leases its own server

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        attributes = self.__dict__.get("_attributes", {})
        if name in attributes:
            return attributes[name]
        if name in self.__dict__.get("_methods", ()):
            return functools.partial(self._call, name)
        raise AttributeError(f"served {self.__dict__.get('_kind')} model has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"ServedModel({self._kind}: {self._attributes.get('model_id')}, {len(self._handles)} server(s))"

    def _server(self) -> Any:
        import ray

        if self._slot is None:
            self._slot = (ray.get(self._log.lease.remote(self._kind)) if self._log is not None
                          else random.randrange(len(self._handles)))
        return self._handles[self._slot % len(self._handles)]

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        import ray
        from ray.exceptions import RayTaskError

        try:
            return ray.get(self._server().call.remote(method, args, kwargs))
        except RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise


def _resources(cfg: Config, kind: str) -> tuple[int, float]:
    r = cfg.resources
    return {"t2a": (r.t2a_actors, r.t2a_gpus), "clap": (r.clap_actors, r.clap_gpus),
            "llm": (r.llm_actors, r.llm_gpus)}[kind]


def _feasible(cpus: float, gpus: float) -> bool:
    """Does any live node have the CPUs and GPUs one server asks for (in total, not necessarily free)?"""
    import ray

    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        have = node.get("Resources", {})
        if have.get("CPU", 0.0) >= cpus and have.get("GPU", 0.0) >= gpus:
            return True
    return False


class ModelServers:
    """The model servers of one job. ``t2a_path`` overrides ``models.t2a.path`` (an aligned checkpoint).
    ``wait_for_nodes``: seconds to wait for a node that fits a server to join (an autoscaling cluster adds
    one on demand) before failing with the reason; 0 fails at once (a local Ray has no autoscaler)."""

    def __init__(self, cfg: Config, t2a_path: str | None = None, wait_for_nodes: float = 0.0):
        self.cfg, self.t2a_path, self.wait_for_nodes = cfg, t2a_path, float(wait_for_nodes)
        self._tree = config_to_dict(cfg)
        self._handles: dict[str, list] = {}
        self._keys: dict[str, str] = {}
        self._models: dict[str, ServedModel] = {}
        self._log: Any = None
        self._log_name: str | None = None

    def _key(self, kind: str) -> str:
        """What decides a kind's servers: its model section, the T2A path override, the resources."""
        return json.dumps([self._tree["models"][kind], self.t2a_path if kind == "t2a" else None,
                           self._tree["resources"]], sort_keys=True, default=str)

    def use(self, cfg: Config, t2a_path: str | None = None) -> "ModelServers":
        """Serve ``cfg`` from now on; servers whose model or resources differ under it are stopped."""
        self.cfg, self.t2a_path, self._tree = cfg, t2a_path, config_to_dict(cfg)
        for kind in [k for k in self._handles if self._keys[k] != self._key(k)]:
            self._stop(kind)
        return self

    def _stop(self, kind: str) -> None:
        import ray

        for h in self._handles.pop(kind, []):
            ray.kill(h)
        self._models.pop(kind, None)
        self._keys.pop(kind, None)

    def _load_log(self) -> Any:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if self._log is None:
            here = ray.get_runtime_context().get_node_id()   # on the driver's node: it lives as long as the job
            self._log_name = f"synthio-loads-{uuid.uuid4().hex[:12]}"   # servers look it up by name
            self._log = ray.remote(num_cpus=0)(LoadLog).options(
                name=self._log_name, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False)
            ).remote()
        return self._log

    def start(self, kinds: list[str]) -> "ModelServers":
        """Create the servers of ``kinds`` that are not running yet; returns at once (models load meanwhile)."""
        import ray

        for kind in kinds:
            if kind not in KINDS:
                raise ValueError(f"unknown model kind {kind!r}: one of {', '.join(KINDS)}")
            if kind in self._handles:
                continue
            actors, gpus = _resources(self.cfg, kind)
            cpus = self.cfg.resources.cpus_per_actor
            if not self.wait_for_nodes and not _feasible(cpus, gpus):
                raise ServerStartError(self._infeasible(kind, cpus, gpus))
            cls = ray.remote(ModelServer).options(num_cpus=cpus, num_gpus=gpus or 0, max_restarts=-1,
                                                  max_task_retries=-1)
            path = self.t2a_path if kind == "t2a" else None
            self._load_log()
            self._handles[kind] = [cls.remote(kind, self._tree, path, self._log_name) for _ in range(actors)]
            self._keys[kind] = self._key(kind)
        return self

    def check_room(self, spare_cpus: float) -> None:
        """Fail at once (``ServerStartError``) when the running servers hold so many of the cluster's CPUs
        that ``spare_cpus`` (the forwarding tasks') no longer fit: those tasks would wait forever. Skipped
        when an autoscaler may add nodes (``wait_for_nodes``)."""
        import ray

        if self.wait_for_nodes:
            return
        total = sum(n.get("Resources", {}).get("CPU", 0.0) for n in ray.nodes() if n.get("Alive"))
        count = {kind: len(h) for kind, h in self._handles.items()}
        held = sum(count.values()) * self.cfg.resources.cpus_per_actor
        if held + spare_cpus > total + 1e-9:
            servers = ", ".join(f"{n} {kind}" for kind, n in sorted(count.items()))
            raise ServerStartError(
                f"the model servers ({servers}) hold {held:g} of this cluster's {total:g} CPUs "
                f"(resources.cpus_per_actor = {self.cfg.resources.cpus_per_actor:g} each), which leaves less than "
                f"the {spare_cpus:g} CPU the tasks that feed them need, so the job would wait forever. Lower "
                f"resources.cpus_per_actor or resources.*_actors, or give Ray more CPUs")

    def _infeasible(self, kind: str, cpus: float, gpus: float) -> str:
        import ray

        nodes = [{k: v for k, v in n.get("Resources", {}).items() if k in ("CPU", "GPU")}
                 for n in ray.nodes() if n.get("Alive")]
        key = {"t2a": "t2a_gpus", "clap": "clap_gpus", "llm": "llm_gpus"}[kind]
        return (f"the {kind} model servers ask for {cpus:g} CPU and {gpus:g} GPU each (resources.cpus_per_actor, "
                f"resources.{key}) and no node of this cluster has that much: nodes {nodes}. Lower "
                f"resources.{key} / resources.cpus_per_actor, or add a node type that offers it (cluster.yaml)")

    def model(self, kind: str) -> ServedModel:
        """The served model of ``kind`` (its servers started if they were not), once its first server is up.
        Raises ``ServerStartError`` when none comes up (the load failed, or no node fits it in time)."""
        import ray

        if kind in self._models:
            return self._models[kind]
        self.start([kind])
        handles = self._handles[kind]
        refs = [h.info.remote() for h in handles]
        deadline = time.monotonic() + max(self.wait_for_nodes, 0.0)
        while True:
            ready, _ = ray.wait(refs, num_returns=1, timeout=5.0)
            if ready:
                break
            actors, gpus = _resources(self.cfg, kind)
            if time.monotonic() > deadline and not _feasible(self.cfg.resources.cpus_per_actor, gpus):
                raise ServerStartError(self._infeasible(kind, self.cfg.resources.cpus_per_actor, gpus))
        try:
            info = ray.get(ready[0])
        except Exception as e:  # noqa: BLE001 - the load failed: say which model and why
            cause = getattr(e, "cause", None) or e
            raise ServerStartError(f"the {kind} model server failed to load its model: "
                                   f"{type(cause).__name__}: {cause}") from None
        self._models[kind] = ServedModel(kind, handles, info["attributes"], info["methods"], self._log)
        return self._models[kind]

    def loads(self) -> list[dict]:
        """Every model load so far, in order: ``kind, model_id, load_seconds, host, node_id, pid``."""
        import ray

        if self._log is None:
            return []
        return [{k: v for k, v in x.items() if k != "loaded_at"}
                for x in sorted(ray.get(self._log.loads.remote()), key=lambda x: x["loaded_at"])]

    def pause(self) -> None:
        """Stop every server (freeing their CPUs and GPUs, e.g. for a training job); ``model()`` starts them
        again on demand, and ``loads()`` keeps counting."""
        for kind in list(self._handles):
            self._stop(kind)

    def shutdown(self) -> None:
        import ray

        self.pause()
        if self._log is not None:
            ray.kill(self._log)
        self._log = None
