"""Known-harmless library lines kept out of a job's log; everything else passes through unchanged.

Two kinds of noise, two places:

- Python loggers and detectors (``quiet_python()``): set once per process, in code, each with its reason.
- Lines Ray's C++ core worker writes straight to file descriptor 2, in the driver or forwarded from its
  workers, which no Python logger sees (``filter_stderr()``): fd 2 is routed through a small filter process
  (``python -m synthio_ray.lognoise``) that drops the lines of ``HARMLESS`` and copies every other byte.
  Being a separate process, it outlives a crashing job and still prints its last words (a segfault's trace,
  an OOM kill notice). Jobs install it when run from a command line; ``SYNTHIO_RAW_LOGS=1`` turns it off.
"""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import warnings

__all__ = ["HARMLESS", "filter_stderr", "quiet_python", "stderr_isatty", "is_harmless"]

# (pattern, why it is harmless for us)
HARMLESS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"core_worker\.cc:\d+: Actor with class name: .* has constructor arguments in the object store "
                r"and max_restarts > 0"),
     "Ray Data's map actors and Ray Train's controller actors are restartable and get their constructor "
     "arguments through the object store; the operator (trainer) that created them holds those references for "
     "the actors' whole life, so the restart this warns about cannot lose them (ray-project/ray#53727). Our "
     "model servers avoid the case altogether (they get the load log's name, not its handle)."),
]

_TTY: bool | None = None   # whether fd 2 was a terminal before filter_stderr() replaced it with a pipe


def is_harmless(line: str) -> bool:
    """Whether ``line`` is one of the known-harmless lines."""
    return any(p.search(line) for p, _ in HARMLESS)


def stderr_isatty(stream=None) -> bool:
    """Whether ``stream`` (default ``sys.stderr``) is a terminal, as it was before the filter went in."""
    stream = sys.stderr if stream is None else stream
    if _TTY is not None and stream is sys.stderr:
        return _TTY
    return bool(getattr(stream, "isatty", lambda: False)())


def quiet_python() -> None:
    """Quiet the known-harmless Python-side notices of Ray Data."""
    # We turn Ray Data's bars off on purpose (our own progress line replaces them); its notice says so once.
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    # A round with fewer blocks than forwarding tasks (a resumed run's last rows, a small reflection round)
    # runs fewer tasks than its limit: nothing is waiting, so the advice to repartition has nothing to gain.
    warnings.filterwarnings("ignore", message=r"The maximum number of concurrent tasks for .* but the operator "
                            r"only received", category=UserWarning)
    try:
        from ray.data import DataContext
    except ImportError:
        return
    # The high-memory detector compares each map worker's memory with its request (none). Our forwarding
    # tasks hold no model (the weights live in the model servers, which request their resources) and do not
    # import torch; their memory is the interpreter with pandas and Ray, flat over the run. It printed that
    # figure every 30 s. The hanging detector stays on.
    DataContext.get_current().issue_detectors_config.high_memory_detector_config.detection_time_interval_s = -1


def filter_stderr() -> bool:
    """Route this process's fd 2 through the filter process; returns whether it was installed (not when
    ``SYNTHIO_RAW_LOGS`` is set, or already installed)."""
    global _TTY
    if _TTY is not None or os.environ.get("SYNTHIO_RAW_LOGS"):
        return False
    sys.stderr.flush()
    tty = os.isatty(2)
    read_end, write_end = os.pipe()
    subprocess.Popen([sys.executable, "-u", "-m", "synthio_ray.lognoise"], stdin=read_end, stdout=2,
                     stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True)
    os.close(read_end)
    os.dup2(write_end, 2)          # the filter sees EOF once this process and its children have exited
    os.close(write_end)
    _TTY = tty
    return True


def _filter(fd_in: int, out) -> None:
    """Copy ``fd_in`` to ``out`` line by line, minus the harmless lines. A line still open that redraws
    (``\r``, a progress line on a terminal) goes out at once instead of waiting for its newline."""
    pending = b""
    while chunk := os.read(fd_in, 1 << 16):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if not is_harmless(line.decode("utf-8", "replace")):
                out.write(line + b"\n")
        if b"\r" in pending:
            out.write(pending)
            pending = b""
        out.flush()
    out.write(pending)
    out.flush()


if __name__ == "__main__":
    _filter(sys.stdin.fileno(), sys.stdout.buffer)
