"""Self-tuning rows per forward pass.

A model's throughput depends on its batch size in ways no byte count predicts: a small CNN on
32x32 images runs fastest at ~64 rows and loses half its speed at 4096, a numpy model wants
thousands of rows to amortise its per-call cost. So the engine *measures*: the first chunks of
a call are sent at geometric sizes (16, 32, 64, ... up to the memory cap), two chunks per
size (the faster counts: a chunk preempted by another process must not end the search), each
timed end to end (composing the rows, the forward pass, target selection and storing the values);
the growth stops once two sizes in a row were clearly (15%) slower than the best one, and the fastest size
is used for the rest of the call and cached per (model, row size, gradients) for later calls
in the process. Tuning chunks are real work: their rows are the call's rows, nothing is run
twice, and the tuning cost is part of every timing.

Cheap models skip the small sizes: a chunk that took less than ``min_seconds`` (2 ms) is
dominated by the fixed cost of a pass (Python, module calls, tribute's own bookkeeping), so a
bigger one is surely faster; the next size tried is then the first candidate expected to take
``min_seconds`` at the rate just measured (the warm-up chunk counts for this), without a
second measurement. A 13-feature MLP at ~0.2 us/row thus goes 16 -> 256 -> 4096 -> 8192
instead of spending a whole call on sixteen-row chunks.

Chunks are timed by :class:`SchedulerFreeClock`: wall time minus the time the thread waited
for a CPU (Linux schedstat). On a shared machine wall time mostly measures the scheduler (at a
load average of 12 on 2 cores a 13-feature MLP's 8192-row chunk measured 20x slower than its
2048-row one by wall clock, 1.5x without the run-queue wait); time the model spends blocked
(sleeping, I/O, waiting for an accelerator) still counts.

Results do not depend on the sizes chosen: every row is composed and evaluated on its own.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any

__all__ = ["BatchTuner", "SchedulerFreeClock", "tuner_for"]

_SCHEDSTAT = "/proc/thread-self/schedstat"


class SchedulerFreeClock:
    """Seconds on the calling thread's clock that exclude its waits for a CPU.

    ``now()`` is ``perf_counter()`` minus the thread's run-queue delay (the second field of
    ``/proc/thread-self/schedstat``, ns): preemption by other processes does not count, while
    sleeping, I/O and device synchronisation do. Falls back to ``perf_counter`` where the file
    is missing (not Linux, no schedstats). One ``pread`` per reading (~3 us). Use it from the
    thread that made it; ``close()`` releases the file.
    """

    def __init__(self) -> None:
        self._fd: int | None = None
        try:
            fd = os.open(_SCHEDSTAT, os.O_RDONLY)
        except OSError:
            return
        try:
            int(os.pread(fd, 128, 0).split()[1])
        except (OSError, IndexError, ValueError):
            os.close(fd)
            return
        self._fd = fd

    def now(self) -> float:
        t = time.perf_counter()
        if self._fd is None:
            return t
        try:
            return t - int(os.pread(self._fd, 128, 0).split()[1]) * 1e-9
        except (OSError, IndexError, ValueError):  # pragma: no cover - file vanished
            return t

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

_FIRST = 16
#: A chunk faster than this is dominated by per-pass costs: grow past it without repeating.
_MIN_SECONDS = 2e-3


class BatchTuner:
    """Finds the rows per pass with the highest measured throughput.

    Args:
        cap: the largest size tried (from the memory cap and the model's size).
        first: the smallest size tried. default=16.
        patience: stop growing after this many sizes in a row clearly slower than the best
            (below ``1 - tolerance`` of its rate). default=2.
        tolerance: how much slower than the best a size must be to count as slower (timings
            on a shared machine are noisy). default=0.15.
        repeats: chunks timed at each size; the best counts, so one chunk slowed down by
            another process on a shared machine does not end the search. default=2.
        min_seconds: a chunk faster than this (per-pass costs dominate) is timed once and the
            search jumps to the first size expected to take this long. default=0.002.

    Attributes:
        rates: rows per second measured at each size (best of its measurements).
        best: the chosen size once tuning is done (None before).
    """

    def __init__(self, cap: int, first: int = _FIRST, patience: int = 2,
                 tolerance: float = 0.15, repeats: int = 2,
                 min_seconds: float = _MIN_SECONDS) -> None:
        cap = max(1, int(cap))
        sizes = []
        s = min(first, cap)
        while s < cap:
            sizes.append(s)
            s *= 2
        sizes.append(cap)
        self.cap = cap
        self.candidates = sizes
        self.patience = patience
        self.tolerance = tolerance
        self.repeats = max(1, int(repeats))
        self.min_seconds = float(min_seconds)
        self._seen = 0  # chunks timed at the current candidate
        self.rates: dict[int, float] = {}
        self.best: int | None = None
        self._i = 0
        self._warm = False
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        return self.best is not None

    def propose(self, cap: int | None = None) -> int:
        """The size of the next chunk (the best one once tuned), at most ``cap``."""
        size = self.best if self.best is not None else (
            self.candidates[0] if not self._warm else self.candidates[self._i])
        return size if cap is None else max(1, min(size, cap))

    def rate(self) -> float | None:
        """The best throughput measured so far (rows/s), None before any measurement."""
        return max(self.rates.values()) if self.rates else None

    def record(self, size: int, rows: int, seconds: float) -> None:
        """Report a chunk of ``rows`` rows sent as size ``size`` that took ``seconds``.

        Partial chunks (the tail of a call) and the very first chunk (warm-up: lazy
        initialisation, caches) inform nothing and are ignored.
        """
        with self._lock:
            if rows != size or seconds <= 0:
                return
            rate = rows / seconds
            if not self._warm:
                self._warm = True
                if seconds < self.min_seconds and self.best is None:
                    self._i = self._jump(self._i - 1, rate)
                return
            self.rates[size] = max(self.rates.get(size, 0.0), rate)
            if self.best is not None or size != self.candidates[self._i]:
                return
            self._seen += 1
            quick = seconds < self.min_seconds
            if self._seen < self.repeats and not quick:
                return
            self._seen = 0
            self._i = self._jump(self._i, rate) if quick else self._i + 1
            best = max(self.rates, key=lambda k: self.rates[k])
            floor = (1.0 - self.tolerance) * self.rates[best]
            tried = [c for c in self.candidates[: self._i] if c in self.rates]  # some skipped
            recent = tried[-self.patience :]
            slower = len(recent) == self.patience and all(
                self.rates[c] < floor and c > best for c in recent)
            if self._i >= len(self.candidates) or slower:
                self.best = best

    def _jump(self, i: int, rate: float) -> int:
        """Index of the next candidate after ``i``: the first expected to take ``min_seconds``
        at ``rate`` rows/s (at least ``i + 1``; the last candidate at most)."""
        want = rate * self.min_seconds
        j = i + 1
        while j < len(self.candidates) - 1 and self.candidates[j] < want:
            j += 1
        return min(j, len(self.candidates))


# One tuner per (model, row bytes, gradients), kept as long as the model lives.
_TUNERS: weakref.WeakKeyDictionary[Any, dict[tuple[int, bool], BatchTuner]] = weakref.WeakKeyDictionary()
_TUNERS_BY_ID: dict[tuple[int, int, bool], BatchTuner] = {}
_LOCK = threading.Lock()


def tuner_for(model_key: Any, row_bytes: int, grad: bool, cap: int) -> BatchTuner:
    """The process-wide tuner of ``model_key`` for rows of ``row_bytes`` bytes.

    A cached tuner whose cap differs (another memory cap) is replaced by a fresh one.
    """
    key = (int(row_bytes), bool(grad))
    with _LOCK:
        try:
            per_model = _TUNERS.setdefault(model_key, {})
        except TypeError:  # not weak-referenceable: fall back to its id
            t = _TUNERS_BY_ID.get((id(model_key), *key))
            if t is None or t.cap != cap:
                t = _TUNERS_BY_ID[(id(model_key), *key)] = BatchTuner(cap)
            return t
        t = per_model.get(key)
        if t is None or t.cap != cap:
            t = per_model[key] = BatchTuner(cap)
        return t


def clear_tuners() -> None:
    """Forget every tuned size (tests, benchmarks)."""
    with _LOCK:
        _TUNERS.clear()
        _TUNERS_BY_ID.clear()
