"""One progress line for the whole job: rows per stage, clips/s, accepted so far.

On a terminal it redraws a single line; in a log (no TTY) it prints a line at most every
``log_every`` seconds, so job logs stay short.
"""
from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """``update(stage, rows, accepted)`` as results arrive; ``close()`` prints the final line."""

    def __init__(self, mode: str = "auto", stream=None, log_every: float = 30.0):
        self.stream = stream or sys.stderr
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = mode == "on" or (mode == "auto" and tty)
        self.redraw = tty and self.enabled
        self.quiet_log = mode == "auto" and not tty
        self.log_every = log_every
        self.t0 = time.monotonic()
        self.last = 0.0
        self.counts: dict[str, int] = {}
        self.accepted = 0
        self.failed = 0

    def update(self, stage: str, rows: int, accepted: int = 0, failed: int = 0) -> None:
        self.counts[stage] = self.counts.get(stage, 0) + rows
        self.accepted += accepted
        self.failed += failed
        now = time.monotonic()
        if self.redraw or (self.enabled and now - self.last >= self.log_every) or \
                (self.quiet_log and now - self.last >= self.log_every * 4):
            self._emit(final=False)
            self.last = now

    def line(self) -> str:
        dt = max(time.monotonic() - self.t0, 1e-9)
        done = sum(self.counts.values())
        stages = "  ".join(f"{k} {v}" for k, v in self.counts.items())
        return (f"[{dt:6.0f}s] {stages}  | {done / dt:.2f} clips/s  accepted {self.accepted}"
                + (f"  failed {self.failed}" if self.failed else ""))

    def _emit(self, final: bool) -> None:
        end = "\n" if (final or not self.redraw) else ""
        prefix = "\r" if self.redraw else ""
        self.stream.write(prefix + self.line() + end)
        self.stream.flush()

    def close(self) -> None:
        if self.counts:
            self._emit(final=True)
