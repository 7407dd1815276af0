"""The committed trained world zoo: export trained models into the package, and load them back.

``export_world(work)`` copies the models that ``python -m synthio_ray.trained_zoo train --work WORK`` wrote
into :data:`WEIGHTS` (``synthio_ray/trained_zoo/weights/<name>/``), weights cast to fp16 to keep the
repository small, with ``manifest.json``: how each was trained (command, seed, steps, time, figures).
``world_model(name)`` is what ``world:<name>`` resolves to: an fp32 copy of the committed folder in a
cache (made once per content digest), so every backend loads it as an ordinary checkpoint folder.
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import torch

__all__ = ["WEIGHTS", "WORLD_NAMES", "TRAINED_FROM", "world_model", "export_world", "cast_folder"]

WEIGHTS = Path(__file__).resolve().parent / "weights"
# world:<name> -> the trainer whose output it is (``work/<trainer>/``)
TRAINED_FROM = {"t2a": "t2a", "clap": "clap", "llm": "llm", "classifier": "ast", "judge": "judge"}
WORLD_NAMES = tuple(TRAINED_FROM)
_MARKER = ".world-complete"


def cast_folder(src: Path, dst: Path, dtype: torch.dtype) -> None:
    """Copy folder ``src`` to ``dst`` with every floating tensor of its ``.safetensors`` files cast to
    ``dtype`` (metadata kept); other files are copied as they are."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    for f in sorted(src.rglob("*")):
        out = dst / f.relative_to(src)
        if f.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        if f.suffix != ".safetensors":
            shutil.copy2(f, out)
            continue
        with safe_open(str(f), framework="pt") as st:
            meta = st.metadata()
            tensors = {k: st.get_tensor(k) for k in st.keys()}
        tensors = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
        save_file(tensors, str(out), metadata=meta)


@functools.lru_cache(maxsize=None)
def _digest(folder: Path) -> str:
    h = hashlib.sha1()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode())
        h.update(hashlib.sha1(f.read_bytes()).digest())
    return h.hexdigest()[:12]


def _cache_root() -> Path:
    env = os.environ.get("SYNTHIO_WORLD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "synthio_ray" / "world"


def world_model(name: str) -> Path:
    """``world:<name>`` -> a folder holding the committed model in fp32 (made on first use, atomically)."""
    if name not in WORLD_NAMES:
        raise ValueError(f"world:{name}: no such trained world model; one of "
                         f"{', '.join('world:' + n for n in WORLD_NAMES)}")
    src = WEIGHTS / name
    if not src.is_dir():
        raise FileNotFoundError(
            f"world:{name}: the trained world weights are not in this checkout ({src}); train and export them "
            f"with `python -m synthio_ray.trained_zoo train --work runs/world` then "
            f"`python -m synthio_ray.trained_zoo export --work runs/world`, or use zoo:{name} (random weights)")
    dst = _cache_root() / f"{name}-{_digest(src)}"
    if (dst / _MARKER).exists():
        return dst
    tmp = dst.with_name(f"{dst.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    cast_folder(src, tmp, torch.float32)
    (tmp / _MARKER).write_text(_digest(src) + "\n")
    try:
        os.replace(tmp, dst)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
        if not (dst / _MARKER).exists():
            raise
    return dst


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _record(work: Path, trainer: str) -> dict:
    path = work / trainer / "judge.json" if trainer == "judge" else work / f"{trainer}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def export_world(work: str | Path, to: str | Path = WEIGHTS, dtype: torch.dtype = torch.float16,
                 only: list[str] | None = None) -> Path:
    """Copy the trained models of ``work`` into ``to`` (cast to ``dtype``) and update ``to/manifest.json``.

    ``only``: world names to export (default: all); the manifest keeps its entries for the others, so a
    model committed once is never rewritten by a later export of another. Refuses to start when a selected
    model is not trained, so a half-written zoo is never committed by accident."""
    import diffusers
    import transformers

    work, to = Path(work), Path(to)
    names = list(only or TRAINED_FROM)
    unknown = [n for n in names if n not in TRAINED_FROM]
    if unknown:
        raise ValueError(f"export: no such world model: {', '.join(unknown)} (one of {', '.join(TRAINED_FROM)})")
    missing = [TRAINED_FROM[n] for n in names if not (work / TRAINED_FROM[n]).is_dir()]
    if missing:
        raise FileNotFoundError(f"{work}: not trained yet: {', '.join(missing)} "
                                f"(python -m synthio_ray.trained_zoo train --work {work} --only {' '.join(missing)})")
    path = to / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"models": {}}
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    for name in names:
        trainer = TRAINED_FROM[name]
        shutil.rmtree(to / name, ignore_errors=True)
        cast_folder(work / trainer, to / name, dtype)
        record = _record(work, trainer)
        steps = record.get("steps")
        command = (f"python -m synthio_ray.trained_zoo train --work WORK --only {trainer}"
                   + (f" --steps {steps}" if steps else ""))
        entry = {"trained_by": command, "record": record, "exported": now, "git_commit": _git_commit(),
                 "dtype": str(dtype).replace("torch.", ""),
                 "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                              "transformers": transformers.__version__},
                 "machine": f"{os.cpu_count()} CPU cores, no GPU"}
        if name == "t2a":
            vae = _record(work, "vae")
            entry["vae"] = {"trained_by": f"python -m synthio_ray.trained_zoo train --work WORK --only vae "
                                          f"--steps {vae.get('steps')}", "record": vae}
        manifest["models"][name] = entry
    manifest["models"] = {n: manifest["models"][n] for n in TRAINED_FROM if n in manifest["models"]}
    to.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return to
