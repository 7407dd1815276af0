"""CLI: ``python -m synthio_ray.trained_zoo train --work DIR [--only vae ...] [--minutes M]``.

Each trainer resumes from its state in ``--work`` until its total wall-time budget is spent.
"""
from __future__ import annotations

import argparse
import importlib
import sys

import torch

# Default wall-time budgets on 2 CPU cores, in training order (t2a needs the trained vae/).
BUDGETS_MIN = {"vae": 60.0, "clap": 3.0, "llm": 12.0, "ast": 8.0, "t2a": 30.0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m synthio_ray.trained_zoo")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (or resume) the world's models")
    t.add_argument("--work", required=True, help="folder for states, caches and exported models")
    t.add_argument("--only", nargs="+", choices=list(BUDGETS_MIN), default=list(BUDGETS_MIN))
    t.add_argument("--minutes", type=float, default=None, help="total budget per model (default: its own)")
    t.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in [n for n in BUDGETS_MIN if n in args.only]:
        minutes = args.minutes or BUDGETS_MIN[name]
        module = importlib.import_module(f"synthio_ray.trained_zoo.{name}")
        train = getattr(module, f"train_{name}")
        print(train(args.work, minutes * 60, log=lambda s: print(s, flush=True)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
