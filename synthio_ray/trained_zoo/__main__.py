"""CLI: ``python -m synthio_ray.trained_zoo train --work DIR [--only vae ...] [--minutes M]``.

Each trainer resumes from its state in ``--work`` until its total wall-time budget is spent.
"""
from __future__ import annotations

import argparse
import sys

import torch

BUDGETS_MIN = {"vae": 60.0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m synthio_ray.trained_zoo")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (or resume) the world's models")
    t.add_argument("--work", required=True, help="folder for states, caches and exported models")
    t.add_argument("--only", nargs="+", choices=sorted(BUDGETS_MIN), default=sorted(BUDGETS_MIN))
    t.add_argument("--minutes", type=float, default=None, help="total budget per model (default: its own)")
    t.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.only:
        minutes = args.minutes or BUDGETS_MIN[name]
        if name == "vae":
            from synthio_ray.trained_zoo.vae import train_vae
            print(train_vae(args.work, minutes * 60, log=lambda s: print(s, flush=True)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
