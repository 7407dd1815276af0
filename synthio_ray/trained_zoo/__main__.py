"""CLI of the trained world zoo.

    python -m synthio_ray.trained_zoo train --work DIR [--only vae ...] [--minutes M | --steps S]
    python -m synthio_ray.trained_zoo export --work DIR [--to FOLDER] [--only t2a judge ...]

``train``: each trainer resumes from its state in ``--work`` until its total budget is spent: wall time by default,
or optimizer steps with ``--steps`` (what reproduces a manifest's run: the steps it records). ``judge``
trains the report's judge (a fixed number of epochs). ``export``: the trained models, in fp16, into the
package's ``weights/`` folder with ``manifest.json`` (what ``world:<name>`` model paths load).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch

from synthio_ray.trained_zoo.export import TRAINED_FROM

# Default wall-time budgets on 2 CPU cores, in training order (t2a needs the trained vae/).
BUDGETS_MIN = {"vae": 60.0, "clap": 3.0, "llm": 12.0, "ast": 8.0, "t2a": 30.0}
TRAINERS = ["judge", *BUDGETS_MIN]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m synthio_ray.trained_zoo")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (or resume) the world's models")
    t.add_argument("--work", required=True, help="folder for states, caches and exported models")
    t.add_argument("--only", nargs="+", choices=TRAINERS, default=TRAINERS)
    t.add_argument("--minutes", type=float, default=None, help="total budget per model (default: its own)")
    t.add_argument("--steps", type=int, default=None,
                   help="total optimizer steps per model instead of a wall-time budget (minutes become a cap)")
    t.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    e = sub.add_parser("export", help="copy the trained models (fp16) into the package, with a manifest")
    e.add_argument("--work", required=True, help="the folder `train --work` wrote")
    e.add_argument("--to", default=None, help="destination (default: synthio_ray/trained_zoo/weights)")
    e.add_argument("--only", nargs="+", choices=list(TRAINED_FROM), default=None,
                   help="world models to export (default: all); the manifest keeps the others' entries")
    args = p.parse_args(argv)
    if args.cmd == "export":
        from synthio_ray.trained_zoo.export import WEIGHTS, export_world

        print(export_world(args.work, args.to or WEIGHTS, only=args.only))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in [n for n in TRAINERS if n in args.only]:
        if name == "judge":
            from synthio_ray.world.judge import train_judge

            print(train_judge(Path(args.work) / "judge"), flush=True)
            continue
        minutes = args.minutes or (float("inf") if args.steps else BUDGETS_MIN[name])
        module = importlib.import_module(f"synthio_ray.trained_zoo.{name}")
        train = getattr(module, f"train_{name}")
        print(train(args.work, minutes * 60, steps=args.steps, log=lambda s: print(s, flush=True)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
