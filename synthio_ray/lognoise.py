"""Known-harmless library lines kept out of a job's log; everything else passes through unchanged.

Two kinds of noise, two places:

- Python loggers and detectors (``quiet_python()``): set once per process, in code, each with its reason.
- Lines Ray's C++ core worker writes straight to file descriptor 2, in the driver or forwarded from its
  workers, which no Python logger sees (``filter_stderr()``): fd 2 is routed through a small filter process
  (``python -m synthio_ray.lognoise``) that drops the lines of ``HARMLESS`` and copies every other byte.
  Being a separate process, it outlives a crashing job and still prints its last words (a segfault's trace,
  an OOM kill notice). Jobs install it when run from a command line; ``SYNTHIO_RAW_LOGS=1`` turns it off.
  Besides single lines it drops whole tracebacks that ``HARMLESS_TRACEBACKS`` names: the traceback of one
  worker (its ``(name pid=N)`` prefix) is held until its last line, then dropped or copied whole.
"""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import warnings

__all__ = ["HARMLESS", "HARMLESS_TRACEBACKS", "filter_stderr", "quiet_python", "stderr_isatty", "is_harmless",
           "LineFilter"]

# (pattern, why it is harmless for us)
HARMLESS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"core_worker\.cc:\d+: Actor with class name: .* has constructor arguments in the object store "
                r"and max_restarts > 0"),
     "Ray Data's map actors and Ray Train's controller actors are restartable and get their constructor "
     "arguments through the object store; the operator (trainer) that created them holds those references for "
     "the actors' whole life, so the restart this warns about cannot lose them (ray-project/ray#53727). Our "
     "model servers avoid the case altogether (they get the load log's name, not its handle)."),
]

# (pattern a held traceback must match, why it is harmless); a traceback is the text from an "Exception
# ignored in" or "Traceback" line to the exception line that ends it, with the worker prefixes taken off.
HARMLESS_TRACEBACKS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"\A(?:\s*\n)*Exception ignored in: .*\n(?:.*\n)*.*, in sigterm_handler\n(?:.*\n)*SystemExit: 1\Z"),
     "Ray Tune stops a trial's actor with SIGTERM once the trial has reported its result; Ray's handler "
     "raises SystemExit, and when the signal lands while the garbage collector runs a weakref callback, "
     "Python prints that exit as an ignored exception. The trial's result and checkpoint are already "
     "saved, and the actor is killed right after (2 of 45 trials in the world grid printed it)."),
]
_PREFIX = re.compile(r"^(?:\x1b\[[0-9;]*m)?\((?P<who>[^()]*pid=\d+[^()]*)\)(?:\x1b\[[0-9;]*m)? ?")
_HOLD_LINES = 64     # a held traceback longer than this is copied out as it is
_OPENERS = ("Exception ignored in", "Traceback (most recent call last)")

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


class LineFilter:
    """Complete lines in, the lines to print out (``feed``; ``flush`` at the end): drops ``HARMLESS``
    lines and the ``HARMLESS_TRACEBACKS``, holding each worker's traceback until its last line."""

    def __init__(self):
        self._held: dict[str, list[tuple[str, str]]] = {}   # who -> [(line, text without prefix)]

    @staticmethod
    def _split(line: str) -> tuple[str, str]:
        m = _PREFIX.match(line)
        return (m["who"], line[m.end():]) if m else ("", line)

    def feed(self, line: str) -> list[str]:
        if is_harmless(line):
            return []
        who, text = self._split(line)
        opens = text.startswith(_OPENERS)
        held = self._held.get(who)
        if held is None or not any(t.strip() for _, t in held):     # nothing held, or only a blank line
            if opens:
                self._held[who] = [*(held or []), (line, text)]
                return []
            before = [ln for ln, _ in held or []]
            if not text.strip():                     # a blank line may come just before a traceback: hold it
                self._held[who] = [(line, text)]
                return before
            self._held.pop(who, None)
            return [*before, line]
        held.append((line, text))
        if not text.strip() or text.startswith((" ", "Traceback")):
            return [ln for ln, _ in self._held.pop(who)] if len(held) > _HOLD_LINES else []
        block = self._held.pop(who)                  # the exception line: the traceback is whole
        body = "\n".join(t for _, t in block)
        if any(p.search(body) for p, _ in HARMLESS_TRACEBACKS):
            return []
        return [ln for ln, _ in block]

    def flush(self) -> list[str]:
        out = [ln for block in self._held.values() for ln, _ in block]
        self._held.clear()
        return out


def _filter(fd_in: int, out) -> None:
    """Copy ``fd_in`` to ``out`` line by line through a :class:`LineFilter`. A line still open that redraws
    (``\r``, a progress line on a terminal) goes out at once instead of waiting for its newline."""
    lines_out, pending = LineFilter(), b""

    def write(lines: list[str]) -> None:
        for line in lines:
            out.write(line.encode("utf-8", "surrogateescape") + b"\n")

    while chunk := os.read(fd_in, 1 << 16):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            write(lines_out.feed(line.decode("utf-8", "surrogateescape")))
        if b"\r" in pending:
            out.write(pending)
            pending = b""
        out.flush()
    write(lines_out.flush())
    out.write(pending)
    out.flush()


if __name__ == "__main__":
    _filter(sys.stdin.fileno(), sys.stdout.buffer)
