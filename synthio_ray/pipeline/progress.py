"""One progress line for the whole job: rows per stage, clips/s, accepted so far, and the running stage's
ETA once its expected row count is known (``expect``).

On a terminal it redraws a single line; in a log (no TTY) it prints a line at most every
``log_every`` seconds, so job logs stay short.
"""
from __future__ import annotations

import sys
import time

from synthio_ray.lognoise import stderr_isatty

__all__ = ["Progress"]


class Progress:
    """``expect(stage, total)`` when a stage starts (rows it will produce); ``update(stage, rows, accepted)``
    as results arrive; ``close()`` prints the final line."""

    def __init__(self, mode: str = "auto", stream=None, log_every: float = 30.0):
        self.stream = stream or sys.stderr
        tty = stderr_isatty(self.stream)
        self.enabled = mode == "on" or (mode == "auto" and tty)
        self.redraw = tty and self.enabled
        self.quiet_log = mode == "auto" and not tty
        self.log_every = log_every
        self.t0 = time.monotonic()
        self.last = 0.0
        self.counts: dict[str, int] = {}
        self.accepted = 0
        self.failed = 0
        self.expected: dict[str, tuple[int, float, int]] = {}   # stage -> (rows expected, start time, rows before)
        self.current: str | None = None

    def expect(self, stage: str, total: int) -> None:
        """``stage`` starts now and will produce ``total`` more rows: the line shows its done/total and an ETA
        from its own rate so far (a round's first rows wait for the models, so early ETAs run long)."""
        self.expected[stage] = (int(total), time.monotonic(), self.counts.get(stage, 0))
        self.current = stage

    def update(self, stage: str, rows: int, accepted: int = 0, failed: int = 0) -> None:
        self.counts[stage] = self.counts.get(stage, 0) + rows
        self.current = stage
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
                + (f"  failed {self.failed}" if self.failed else "") + self._eta())

    def _eta(self) -> str:
        if self.current not in self.expected:
            return ""
        total, start, before = self.expected[self.current]
        got = self.counts.get(self.current, 0) - before
        if got <= 0 or total <= 0:
            return f"  | {self.current} 0/{total}"
        left = max(total - got, 0)
        eta = left * (time.monotonic() - start) / got
        return f"  | {self.current} {got}/{total} eta {_clock(eta)}"


    def _emit(self, final: bool) -> None:
        end = "\n" if (final or not self.redraw) else ""
        prefix = "\r" if self.redraw else ""
        self.stream.write(prefix + self.line() + end)
        self.stream.flush()

    def close(self) -> None:
        if self.counts:
            self._emit(final=True)


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
