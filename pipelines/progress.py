"""Progress of a long run: records read and staged, rate, elapsed time.

The stages add to the counters of the process they run in. On a terminal the line is redrawn
in place; elsewhere (cron, Airflow, a remote worker's log) a plain log line is written every
`log_every_s` seconds. Counts are per process: with several local worker processes each one
reports its own share.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

__all__ = ["Progress", "progress"]

_LOG = logging.getLogger("pipelines.progress")


class Progress:
    """Counters with a throttled reporter; cheap enough to call once per chunk."""

    def __init__(self) -> None:
        self.enabled = False
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._last = 0.0
        self._every = 1.0
        self._stream: TextIO = sys.stderr
        self._drawn = False

    def configure(self, enabled: bool, *, stream: TextIO | None = None) -> None:
        """Start counting from zero; on a terminal redraw each second, else log every 30 s."""
        self._stream = stream or sys.stderr
        self.enabled = enabled
        self.counts = {}
        self._started = time.monotonic()
        self._last = self._started
        self._every = 1.0 if self._is_terminal() else 30.0
        self._drawn = False

    def add(self, name: str, n: int) -> None:
        if not self.enabled or n == 0:
            return
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + n
            now = time.monotonic()
            if now - self._last >= self._every:
                self._last = now
                self._show(now)

    def line(self, now: float | None = None) -> str:
        elapsed = (time.monotonic() if now is None else now) - self._started
        read = self.counts.get("read", 0)
        parts = [f"{name} {n:,}" for name, n in self.counts.items()]
        rate = read / elapsed if elapsed > 0 else 0.0
        minutes, seconds = divmod(int(elapsed), 60)
        return f"{' · '.join(parts)} records · {rate:,.0f} read/s · {minutes}:{seconds:02d}"

    def finish(self) -> None:
        """End the redrawn line so later messages start on a fresh one."""
        if self.enabled and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
        self.enabled = False

    def _is_terminal(self) -> bool:
        isatty = getattr(self._stream, "isatty", None)
        return bool(isatty and isatty())

    def _show(self, now: float) -> None:
        if self._is_terminal():
            self._stream.write("\r\x1b[K" + self.line(now))
            self._stream.flush()
            self._drawn = True
        else:
            _LOG.info("progress: %s", self.line(now))


# One per process: the in-process runner's stages and the command line share it.
progress = Progress()
