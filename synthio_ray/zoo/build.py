"""Building the zoo: each entry written to a temporary folder, marked complete and swapped into place;
the CLI that builds it."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

from synthio_ray.zoo.clap import build_clap
from synthio_ray.zoo.classifier import build_classifier
from synthio_ray.zoo.common import MARKER, ZOO_VERSION, default_zoo_dir, is_complete
from synthio_ray.zoo.language import build_captioner, build_llm
from synthio_ray.zoo.t2a import build_t2a, build_t2a3

ENTRIES: dict[str, Callable[[str | Path], Path]] = {
    "t2a": build_t2a,
    "t2a3": build_t2a3,
    "clap": build_clap,
    "llm": build_llm,
    "classifier": build_classifier,
    "captioner": build_captioner,
}


def _build_one(name: str, final: Path) -> None:
    """Build entry ``name`` into a temp folder beside ``final``, mark it complete, then swap it into place."""
    from synthio_ray.models.paths import quiet_hub_progress

    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=final.parent))
    try:
        quiet_hub_progress(diffusers=True)   # no "Writing model shards" bar per save of the build
        with warnings.catch_warnings():   # diffusers' Oobleck VAE still builds with torch's old weight_norm
            warnings.filterwarnings("ignore", message=".*weight_norm.*is deprecated", category=FutureWarning)
            ENTRIES[name](tmp)
        (tmp / MARKER).write_text(ZOO_VERSION + "\n")
        if final.exists():  # stale, incomplete or forced: move aside first (a folder cannot be replaced)
            trash = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=final.parent))
            try:
                os.replace(final, trash / name)
            except FileNotFoundError:
                pass
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:
            if not is_complete(final):  # a concurrent builder may have finished the same entry first: keep it
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def build_zoo(root: str | Path | None = None, only: list[str] | None = None, force: bool = False) -> dict[str, Path]:
    """Build the zoo under ``root`` (default: :func:`default_zoo_dir`); returns ``{entry name: folder}``.

    ``only`` restricts to some entries (default: all of ``ENTRIES``). Entries already complete for this
    ZOO_VERSION are left untouched unless ``force``; incomplete or stale ones are rebuilt from scratch.
    """
    root = Path(root) if root is not None else default_zoo_dir()
    names = list(ENTRIES) if only is None else list(dict.fromkeys(only))
    unknown = [n for n in names if n not in ENTRIES]
    if unknown:
        raise ValueError(f"unknown zoo entries {unknown}; choose from {sorted(ENTRIES)}")
    root.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in names:
        final = root / name
        if force or not is_complete(final):
            _build_one(name, final)
        paths[name] = final
    return paths


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _param_count(path: Path) -> int:
    """Parameters in all ``*.safetensors`` files under ``path`` (read from headers, no tensors loaded)."""
    from safetensors import safe_open

    total = 0
    for f in path.rglob("*.safetensors"):
        with safe_open(str(f), framework="np") as st:
            for key in st.keys():
                n = 1
                for d in st.get_slice(key).get_shape():
                    n *= d
                total += n
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synthio_ray.zoo", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default=None, help="zoo folder (default: $SYNTHIO_ZOO or the cache)")
    parser.add_argument("--only", nargs="+", choices=sorted(ENTRIES), help="entries to build (default: all)")
    parser.add_argument("--force", action="store_true", help="rebuild entries that are already complete")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    paths = build_zoo(args.root, only=args.only, force=args.force)
    for name, path in paths.items():
        print(f"{name:<11} {path}  {_dir_size(path) / 1e6:6.2f} MB  {_param_count(path) / 1e6:6.3f} M params")
    print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0
