"""Aligned LoRA adapters for a diffusers Stable Audio pipeline: the folder format, and loading it onto its base.

An adapter folder (``jobs/align.py`` with ``align.export=adapter``, the default under LoRA) holds

- ``adapter_config.json`` + ``adapter_model.safetensors``: the DiT's LoRA adapters in peft's format
  (``PeftModel.from_pretrained(transformer, folder)`` reads them);
- ``alignment.json``: ``format`` (``ADAPTER_FORMAT``), ``base_model`` (the pipeline the adapters go on:
  ``zoo:<name>``, a hub id or an absolute path; itself an adapter folder when an aligned model was aligned
  again), ``base_transformer`` (the DiT config they were trained on) and the alignment's provenance.

A plain peft folder without ``alignment.json`` also loads, onto its ``base_model_name_or_path``.
``load_adapted_transformer`` loads the base DiT in fp32, merges each adapter of the chain in order (the
same arithmetic as a merged export, so both give the same audio) and casts to the requested dtype.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["ADAPTER_FORMAT", "AdapterError", "is_adapter_folder", "adapter_chain", "pipeline_folder",
           "load_adapted_transformer", "save_adapter"]

ADAPTER_FORMAT = "synthio-ray/lora-adapter/1"
INFO_FILE = "alignment.json"
MAX_CHAIN = 8


class AdapterError(ValueError):
    """An adapter folder that cannot be loaded (the message names the folder and why)."""


def is_adapter_folder(path: str | Path) -> bool:
    """True for a local folder holding peft adapters (``adapter_config.json``)."""
    return (Path(path) / "adapter_config.json").is_file()


def _base_of(folder: Path) -> tuple[str, dict]:
    info_file = folder / INFO_FILE
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    base = info.get("base_model")
    if base is None:  # a plain peft folder
        base = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base:
        raise AdapterError(f"adapter folder {folder} does not say which model it goes on: {INFO_FILE} has no "
                           f"base_model and adapter_config.json no base_model_name_or_path")
    return str(base), info


def adapter_chain(path: str | Path) -> tuple[str, list[Path]]:
    """Adapter folder -> (the base pipeline's local folder or hub id, adapter folders base-first)."""
    from synthio_ray.models.paths import resolve_model_path

    chain: list[Path] = []
    where = str(path)
    while is_adapter_folder(where):
        folder = Path(where).resolve()
        if folder in chain or len(chain) >= MAX_CHAIN:
            raise AdapterError(f"adapter folder {chain[0]} has a base chain that loops or is longer than "
                               f"{MAX_CHAIN}: {[str(c) for c in chain]}")
        chain.append(folder)
        base, _ = _base_of(folder)
        where = resolve_model_path(base)
        if base.startswith(("/", ".", "~")) and not Path(where).exists():
            raise AdapterError(f"the base model of adapter folder {folder} is not found: {base}")
    return where, chain[::-1]


def pipeline_folder(path: str) -> str:
    """The diffusers pipeline a model location loads from: an adapter chain's base, else ``path`` itself."""
    return adapter_chain(path)[0] if is_adapter_folder(path) else path


def _public(config: Any) -> dict:
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def load_adapted_transformer(path: str | Path, dtype: Any) -> tuple[str, Any]:
    """Adapter folder -> (base pipeline location, its ``StableAudioDiTModel`` with every adapter of the chain
    merged, in ``dtype``). AdapterError when a folder was trained on a DiT of another shape."""
    import torch
    from diffusers import StableAudioDiTModel
    from peft import PeftModel

    base, chain = adapter_chain(path)
    dit = StableAudioDiTModel.from_pretrained(base, subfolder="transformer", dtype=torch.float32)
    have = _public(dit.config)
    for folder in chain:
        _, info = _base_of(folder)
        want = info.get("base_transformer")
        if want is not None and _public(want) != have:
            diff = {k: (want.get(k), have.get(k)) for k in sorted(set(want) | set(have)) if want.get(k) != have.get(k)}
            raise AdapterError(f"adapter folder {folder} was trained on a DiT with another config than the one "
                               f"at {base} (key: (trained on, found)): {diff}")
        try:
            dit = PeftModel.from_pretrained(dit, str(folder)).merge_and_unload()
        except (RuntimeError, KeyError, ValueError) as e:
            raise AdapterError(f"adapter folder {folder} does not fit the DiT at {base}: {e}") from None
    # nn.Module.to: ModelMixin.to logs a notice about fp32-kept modules on every cast (the DiT keeps none)
    return base, torch.nn.Module.to(dit, dtype)


def save_adapter(module: Any, folder: Path, base: str, base_transformer: Any, info: dict | None = None) -> Path:
    """Write a peft model's adapters and ``alignment.json`` (``base``: the recorded base location) to ``folder``."""
    module.peft_config["default"].base_model_name_or_path = base
    module.save_pretrained(str(folder), save_embedding_layers=False)
    (folder / "README.md").unlink(missing_ok=True)  # peft's blank model card: alignment.json is ours
    record = {"format": ADAPTER_FORMAT, **(info or {}), "base_model": base,
              "base_transformer": _public(base_transformer)}
    (folder / INFO_FILE).write_text(json.dumps(record, indent=2, default=str))
    return folder
