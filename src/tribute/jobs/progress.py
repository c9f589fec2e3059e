"""One progress bar across a job's shards: rows done, rows/s and ETA (stderr, no dependency)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["JobProgress"]


class JobProgress:
    """``desc [#####.....] 1,024/4,096 rows  310 rows/s  ETA 0:10``.

    Args:
        total: rows of the job.
        done: rows already finished (a resumed job); they do not count towards the rate.
        enabled: True always draws, False never, None only when ``stream`` is a terminal.
    """

    def __init__(self, total: int, done: int = 0, desc: str = "explain", enabled: bool | None = None,
                 stream: TextIO | None = None) -> None:
        self.total = max(int(total), 1)
        self.start_done = self.done = int(done)
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)()) if enabled is None else enabled
        self.t0 = time.perf_counter()
        if self.enabled:
            self._draw()

    @property
    def rate(self) -> float:
        """Rows per second finished by this run."""
        return (self.done - self.start_done) / max(time.perf_counter() - self.t0, 1e-9)

    def update(self, rows: int) -> None:
        self.done += int(rows)
        if self.enabled:
            self._draw()

    def line(self) -> str:
        frac = min(self.done / self.total, 1.0)
        width = 24
        filled = int(frac * width)
        rate = self.rate
        left = self.total - self.done
        eta = _clock(left / rate) if rate > 0 and left > 0 else ("0:00" if left <= 0 else "?")
        return (f"{self.desc} [{'#' * filled}{'.' * (width - filled)}] {self.done:,}/{self.total:,} rows"
                f"  {rate:,.1f} rows/s  ETA {eta}")

    def _draw(self) -> None:
        self.stream.write("\r" + self.line())
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
