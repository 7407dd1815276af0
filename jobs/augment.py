"""Grow a small labelled audio set with synthetic clips (Synthio) on Ray Data.

    python jobs/augment.py [--config FILE] [--out DIR] [--t2a PATH] [--k K] [--threshold P] [--rounds I]
                           [key=value ...]

Reads D_small (augment.data, or the embedded default prepared into OUT/__prepared__), captions the gold
clips, writes MixCap captions with the LLM, synthesises with the T2A model, scores with CLAP, and sends
rejected clips back through LLM self-reflection for I rounds. Writes OUT/manifest.parquet (every clip
with its provenance), OUT/metadata.csv (accepted clips), OUT/audio/, OUT/config.yaml and OUT/README.md.
Re-running the same command resumes: nothing done is done twice.

Baselines and ablations are switches: augment.captions=template (Vanilla Syn. Aug.), augment.captions=llm
(+LLM Caps / w/o MixCap), --rounds 0 (w/o self-reflection), augment.clap_filter=false (w/o CLAP filter),
--t2a PATH (e.g. the aligned checkpoint from jobs/align.py; the un-aligned model is w/o DPO).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout

from synthio_ray.cli import DEFAULT_CONFIG, fail, parse_job_args  # noqa: E402
from synthio_ray.config import load_config, save_config  # noqa: E402
from synthio_ray.placement import print_placement_warnings  # noqa: E402

FLAGS = {
    "--out": ("out", "output folder (default: runs/augment)"),
    "--t2a": ("models.t2a.path", "text-to-audio checkpoint (folder, hub id or zoo:t2a)"),
    "--k": ("augment.k", "captions (clips) per gold clip"),
    "--threshold": ("augment.threshold", "CLAP acceptance threshold p: a number, or auto (calibrated on D_small)"),
    "--rounds": ("augment.rounds", "self-reflection rounds i"),
    "--data": ("augment.data", "prepared dataset folder (jobs/prepare.py output)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_job_args(argv, "jobs/augment.py", __doc__.splitlines()[0], FLAGS, DEFAULT_CONFIG)
    out = Path(cfg.out or "runs/augment")
    saved = out / "config.yaml"
    if saved.is_file():
        previous = load_config(saved)
        if previous.seed != cfg.seed or previous.augment.k != cfg.augment.k:
            fail(f"{out} holds a run with seed={previous.seed}, k={previous.augment.k}; resuming it with "
                 f"seed={cfg.seed}, k={cfg.augment.k} would mix two runs. Use another --out.")
    from synthio_ray.pipeline.augment import run_augment
    from synthio_ray.pipeline.card import write_card

    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, saved)
    print_placement_warnings(cfg, "augment")
    report = run_augment(cfg, out)
    write_card(cfg, out)
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
