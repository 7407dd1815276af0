"""Every configured hub model downloaded once into a shared folder, so the workers of a cluster read it from
there instead of each downloading it (Stable Audio Open alone is 5 GB; it is gated: set ``HF_TOKEN``).

``hub_models(cfg)`` lists what the config names (key, hub id, file patterns); ``download_models(cfg, dest)``
fetches each into ``dest/<org>/<name>`` with ``huggingface_hub.snapshot_download`` and returns one ``Fetched``
per model: ``downloaded``, ``present`` (the folder was there and the hub could not be asked: offline it is
used as it is), ``local`` (a zoo model or a local path: nothing to fetch) or ``failed`` with the reason (not
on disk while offline, gated without a token, no such repository). ``overrides(fetched)`` gives the
``key=folder`` settings that point a job at the downloaded folders.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from synthio_ray.models.paths import is_builtin

__all__ = ["HubModel", "Fetched", "hub_models", "download_models", "overrides"]

# weights of frameworks we never load
IGNORE = ["*.h5", "*.msgpack", "*.onnx", "*.tflite", "*.ot", "flax_model*", "tf_model*", "rust_model*", "onnx/*",
          "openvino/*", "*.md", ".gitattributes"]
DIFFUSERS_IGNORE = ["*.ckpt", "model.safetensors", "model_config.json"]   # the stable-audio-tools copy at the root


@dataclass(frozen=True)
class HubModel:
    key: str                          # the config key, e.g. "models.t2a.path"
    path: str                         # as configured: a hub id, a local path or zoo:<name>
    allow: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = tuple(IGNORE)

    @property
    def on_hub(self) -> bool:
        return not (is_builtin(self.path) or self.path.startswith(("/", ".", "~")) or os.path.exists(os.path.expanduser(self.path)))


@dataclass(frozen=True)
class Fetched:
    key: str
    source: str
    folder: str | None
    status: str                       # downloaded | present | local | failed
    note: str = ""


def hub_models(cfg) -> list[HubModel]:
    """The model paths ``cfg`` names that jobs load (the http LLM is a server's model name: not included)."""
    m = cfg.models
    t2a = (HubModel("models.t2a.path", m.t2a.path, allow=("model_config.json", "*.safetensors"),
                    ignore=tuple(IGNORE) + ("*/*",))
           if m.t2a.backend == "stable_audio_tools" else
           HubModel("models.t2a.path", m.t2a.path, ignore=tuple(IGNORE + DIFFUSERS_IGNORE)))
    out = [t2a]
    if m.clap.backend == "transformers":     # laion_clap loads a .pt file
        out.append(HubModel("models.clap.path", m.clap.path))
    if m.llm.backend != "http":
        out.append(HubModel("models.llm.path", m.llm.path))
    if m.captioner.backend == "transformers" and m.captioner.path:
        out.append(HubModel("models.captioner.path", m.captioner.path))
    out.append(HubModel("models.classifier.path", m.classifier.path))
    return out


def _reason(e: Exception, model: HubModel, folder: Path) -> str:
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    if isinstance(e, GatedRepoError):
        return (f"{model.path} is gated: accept its licence on https://huggingface.co/{model.path} and set HF_TOKEN "
                f"to a token of that account")
    if isinstance(e, RepositoryNotFoundError):
        return f"no model {model.path} on the hub (or it is private: set HF_TOKEN)"
    if isinstance(e, LocalEntryNotFoundError):
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        why = "the hub is switched off here (HF_HUB_OFFLINE=1)" if offline else "the hub cannot be reached"
        return f"{model.path} is not in {folder} and {why}: run this where the hub is reachable"
    return f"{type(e).__name__}: {e}"


def download_models(cfg, dest: str | Path, log=print) -> list[Fetched]:
    """Fetch every hub model of ``cfg`` into ``dest/<org>/<name>`` (resumable; a finished folder is checked
    against the hub, or taken as it is when the hub cannot be asked). Never raises for one model."""
    from huggingface_hub import constants, snapshot_download

    dest = Path(dest).expanduser().resolve()
    done: dict[str, Fetched] = {}
    out = []
    for model in hub_models(cfg):
        if not model.on_hub:
            out.append(Fetched(model.key, model.path, None, "local", "a zoo model or a local path"))
            continue
        if model.path in done:   # the same repo under two keys
            out.append(Fetched(model.key, model.path, done[model.path].folder, done[model.path].status,
                               done[model.path].note))
            continue
        folder = dest / model.path
        existed = folder.is_dir() and any(folder.iterdir())
        log(f"[download] {model.key}: {model.path} -> {folder}")
        try:
            got = snapshot_download(model.path, local_dir=str(folder), allow_patterns=list(model.allow or []) or None,
                                    ignore_patterns=list(model.ignore))
            status = "present" if constants.HF_HUB_OFFLINE and existed else "downloaded"
            f = Fetched(model.key, model.path, str(Path(got).resolve()), status,
                        "offline: the folder is used as it is" if status == "present" else "")
        except Exception as e:  # noqa: BLE001 - reported per model, the others still run
            f = Fetched(model.key, model.path, None, "failed", _reason(e, model, folder))
        done[model.path] = f
        out.append(f)
    return out


def overrides(fetched: list[Fetched]) -> list[str]:
    """``key=folder`` for every model now on disk under the destination (give them to any job)."""
    return [f"{f.key}={f.folder}" for f in fetched if f.folder and f.status in ("downloaded", "present")]
