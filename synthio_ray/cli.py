"""Command-line handling shared by every job: named flags, ``--config FILE`` and ``key=value`` overrides.

A job declares its flags as ``{"--n": "data.n", ...}``: each flag is sugar for a dotted override, so
``--n 100`` and ``data.n=100`` mean the same. ``--help`` lists the flags and every config key.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from synthio_ray.config import ConfigError, describe_options, load_config

__all__ = ["parse_job_args", "fail", "DEFAULT_CONFIG"]

# The config a job reads without --config: $SYNTHIO_CONFIG when set (the tests point it at configs/tiny.yaml),
# else the embedded default run (the world dataset with the trained world zoo).
DEFAULT_CONFIG = Path(os.environ.get("SYNTHIO_CONFIG")
                      or Path(__file__).resolve().parents[1] / "configs" / "default.yaml")


def _parser(prog: str, description: str, flags: dict[str, tuple[str, str]],
            default_config: Path | None) -> argparse.ArgumentParser:
    epilog = ("config keys (set with key=value, or in the YAML file given to --config):\n"
              + "\n".join(describe_options()))
    p = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", default=str(default_config) if default_config else None,
                   help=f"YAML config (default: {default_config or 'built-in defaults'})")
    for flag, (key, help_text) in flags.items():
        p.add_argument(flag, dest=key.replace(".", "__"), metavar="VALUE",
                       help=f"{help_text} (same as {key}=VALUE)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotted config overrides, e.g. data.n=100 seed=1")
    return p


def parse_job_args(argv: list[str] | None, prog: str, description: str,
                   flags: dict[str, tuple[str, str]], default_config: Path | None = None) -> Any:
    """Parse a job's command line into a checked Config; exit with status 2 and every problem on error.

    ``flags`` maps a flag (``--n``) to ``(dotted key, help)``; without ``--config`` the YAML file
    ``default_config`` is read (None: the built-in defaults).
    """
    parser = _parser(prog, description, flags, default_config)
    args = parser.parse_args(argv)
    if Path(sys.argv[0]).name == Path(prog).name:   # this process is the job (not a test calling main([...])):
        from synthio_ray.lognoise import filter_stderr  # keep known library noise out of its log

        filter_stderr()
    overrides = list(args.overrides)
    for flag, (key, _) in flags.items():
        value = getattr(args, key.replace(".", "__"))
        if value is not None:
            overrides.append(f"{key}={value}")
    try:
        return load_config(args.config, overrides)
    except ConfigError as e:
        fail(str(e) + f"\n(run `{prog} --help` for every key)")


def fail(message: str, code: int = 2) -> None:
    """Print a clear error for the user and exit (no traceback)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)
