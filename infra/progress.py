"""A one-line progress bar on stderr: position/total, events per second, time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30
INTERVAL = 0.2  # seconds between redraws on a terminal
LINE_INTERVAL = 5.0  # seconds between lines when stderr is not a terminal


class ProgressBar:
    def __init__(self, label: str, total: int, start: int = 0, stream: TextIO = sys.stderr) -> None:
        self._label = label
        self._total = max(total, 1)
        self._stream = stream
        self._tty = stream.isatty()
        self._started = self._drawn = time.monotonic()
        self._first = self._last = start

    def __call__(self, position: int) -> None:
        """Records that the log is applied up to `position`; redraws now and then."""
        self._last = position
        now = time.monotonic()
        if now - self._drawn >= (INTERVAL if self._tty else LINE_INTERVAL):
            self._drawn = now
            self._draw(now)

    def done(self) -> None:
        self._draw(time.monotonic())
        if self._tty:
            self._stream.write("\n")
        self._stream.flush()

    def rate(self, now: float | None = None) -> float:
        elapsed = (now or time.monotonic()) - self._started
        done = self._last - self._first
        return done / elapsed if elapsed > 0 else 0.0

    def _draw(self, now: float) -> None:
        share = min(self._last / self._total, 1.0)
        filled = int(share * WIDTH)
        rate = self.rate(now)
        left = (self._total - self._last) / rate if rate > 0 else 0.0
        text = (
            f"{self._label} [{'#' * filled}{'.' * (WIDTH - filled)}] {self._last}/{self._total}"
            f" {rate:,.0f} events/s ETA {_clock(left)}"
        )
        self._stream.write(f"\r{text}" if self._tty else f"{text}\n")
        self._stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(max(seconds, 0)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
