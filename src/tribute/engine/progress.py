"""A minimal progress bar on stderr (no dependency); silent unless asked or on a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Counts rows; draws ``desc [####....] rows/total  rate`` on a terminal.

    Args:
        total: rows expected.
        desc: label.
        enabled: ``True`` always draws, ``False`` never, ``None`` draws only when stderr is a
            terminal and the run is long enough to matter (more than 2 seconds).
    """

    def __init__(self, total: int, desc: str = "", enabled: bool | None = None,
                 stream: TextIO | None = None) -> None:
        self.total = max(int(total), 1)
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.auto = enabled is None
        if enabled is None:
            self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self.t0 = time.perf_counter()
        self._last = 0.0
        self._drawn = False

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.auto and now - self.t0 < 2.0:
            return
        if now - self._last < 0.1 and self.done < self.total:
            return
        self._last = now
        self._draw(now)

    def _draw(self, now: float) -> None:
        frac = min(self.done / self.total, 1.0)
        width = 24
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        rate = self.done / max(now - self.t0, 1e-9)
        self.stream.write(f"\r{self.desc} [{bar}] {self.done}/{self.total} rows  {rate:,.0f} rows/s")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()
