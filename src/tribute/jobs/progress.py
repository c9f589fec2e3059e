"""One progress bar across a job's shards: rows done, rows/s and ETA.

Drawn by tqdm (a dependency already; the engine's bars use it too): a text bar on a terminal
and, through ``tqdm.auto``, a widget in a Jupyter notebook, where a job's bar used to be
hidden (stderr is no terminal there).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ..engine.progress import check_progress

__all__ = ["JobProgress"]

#: ``explain  40%|#####      | 1,200/3,000 rows  310.2 rows/s  ETA 00:05``
_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n:,}/{total:,} rows  {rate_fmt}  ETA {remaining}"


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class JobProgress:
    """A tqdm bar over the rows of a job.

    Args:
        total: rows of the job.
        done: rows already finished (a resumed job); they do not count towards the rate.
        desc: label. default="explain".
        enabled: True always draws, False never, None on a terminal or in a notebook.
        stream: where a text bar is written. default=None (``sys.stderr``; a widget in a
            notebook).
    """

    def __init__(self, total: int, done: int = 0, desc: str = "explain", enabled: bool | None = None,
                 stream: TextIO | None = None) -> None:
        check_progress(enabled)
        self.total = max(int(total), 1)
        self.start_done = self.done = int(done)
        self.desc = desc
        out = stream if stream is not None else sys.stderr
        notebook = stream is None and _in_notebook()
        if enabled is None:
            enabled = bool(getattr(out, "isatty", lambda: False)()) or notebook
        self.enabled = bool(enabled)
        self.t0 = time.perf_counter()
        self._bar: Any = None
        if self.enabled:
            if notebook:  # pragma: no cover - needs a notebook
                from tqdm.auto import tqdm
            else:
                from tqdm.std import tqdm
            self._bar = tqdm(total=self.total, initial=self.done, desc=desc, file=out,
                             unit="rows", bar_format=_FORMAT, dynamic_ncols=True,
                             mininterval=0.2, leave=True)

    @property
    def rate(self) -> float:
        """Rows per second finished by this run."""
        return (self.done - self.start_done) / max(time.perf_counter() - self.t0, 1e-9)

    def update(self, rows: int) -> None:
        self.done += int(rows)
        if self._bar is not None:
            self._bar.update(int(rows))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
