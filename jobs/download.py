"""Download every hub model a config names, once, into a folder every node sees.

    python jobs/download.py [--config FILE] --out /mnt/shared/models [key=value ...]

Each model (models.t2a, clap, llm, captioner, classifier: hub ids only; zoo models and local paths are
skipped) goes to OUT/<org>/<name> with huggingface_hub's snapshot_download (resumable; set HF_TOKEN for gated
models such as Stable Audio Open). Prints, and writes to OUT/overrides.txt, the key=folder overrides that point
any job at the downloaded folders. Offline (HF_HUB_OFFLINE=1) a folder already there is used as it is, and a
missing one is an error naming its key. Exit status 1 when any model could not be fetched.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout

from synthio_ray.cli import fail, parse_job_args  # noqa: E402
from synthio_ray.models.download import download_models, overrides  # noqa: E402

FLAGS = {"--out": ("out", "folder the models are downloaded into (default: runs/models)")}


def main(argv: list[str] | None = None) -> int:
    cfg = parse_job_args(argv, "jobs/download.py", __doc__.splitlines()[0], FLAGS)
    out = Path(cfg.out or "runs/models")
    fetched = download_models(cfg, out)
    for f in fetched:
        note = "see below" if f.status == "failed" else f.note
        print(f"  {f.key:<24} {f.status:<10} {f.folder or f.source}" + (f"  ({note})" if note else ""))
    keys = overrides(fetched)
    if keys:
        out.mkdir(parents=True, exist_ok=True)
        (out / "overrides.txt").write_text(" ".join(keys) + "\n")
        print(f"use them: add these overrides to a job (also in {out / 'overrides.txt'}):\n  " + " ".join(keys))
    failed = [f for f in fetched if f.status == "failed"]
    if failed:
        fail("\n".join(f"{f.key}: {f.note}" for f in failed), code=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
