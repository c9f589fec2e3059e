"""Background jobs: a small thread pool, live progress, cooperative cancellation, an LRU cache.

A job runs one computation (an explanation, a comparison, ...) in a worker thread. Its progress
comes from :func:`tribute.engine.observe_progress`, which the engine calls after every chunk of
model rows; the same callback raises :class:`Cancelled` once the job's cancel flag is set, so a
cancelled job stops at the next chunk boundary (the model is restored by ``explain``'s session
as after any exception). Finished results are cached by the job's key — (subject, input,
kind, method(s), parameters, seed) — in a bounded LRU, so asking again is instant.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..engine.progress import observe_progress
from ..errors import TributeError

__all__ = ["Cancelled", "Job", "JobManager", "LRUCache"]

log = logging.getLogger("tribute.explorer")

#: Finished jobs kept for status queries (the oldest are forgotten first).
MAX_JOBS = 256


class Cancelled(Exception):
    """Raised inside a job's computation when its cancel flag is set."""


class LRUCache:
    """A thread-safe least-recently-used map of at most ``max_items`` entries."""

    def __init__(self, max_items: int = 128) -> None:
        if max_items < 1:
            raise ValueError(f"max_items={max_items} must be >= 1")
        self.max_items = max_items
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return None

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.max_items:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data


@dataclass
class Job:
    """One background computation and what the page may ask about it."""

    id: str
    kind: str
    key: str
    status: str = "queued"  # queued | running | done | error | cancelled
    done: int = 0
    total: int = 0
    step: str = ""
    steps_done: int = 0
    steps_total: int = 1
    result: Any = None
    error: str | None = None
    cached: bool = False
    created: float = field(default_factory=time.time)
    finished: float | None = None
    cancel_flag: threading.Event = field(default_factory=threading.Event, repr=False)
    seq: int = 0  # bumped on every change (the event stream sends changes only)
    _shown: float = field(default=0.0, repr=False)  # the most progress public() reported

    @property
    def terminal(self) -> bool:
        return self.status in ("done", "error", "cancelled")

    @property
    def fraction(self) -> float:
        # one read of each field: the worker thread may zero ``total`` (begin_step) between a
        # check and the division (a ZeroDivisionError here ended the event stream mid-job)
        done, total, steps_done = self.done, self.total, self.steps_done
        inner = done / total if total else 0.0
        return min(1.0, (steps_done + min(inner, 1.0)) / max(self.steps_total, 1))

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job was cancelled (call between steps)."""
        if self.cancel_flag.is_set():
            raise Cancelled(f"job {self.id} was cancelled")

    def begin_step(self, text: str) -> None:
        self.check()
        self.step = text
        self.done = self.total = 0
        self.seq += 1

    def end_step(self) -> None:
        # the finished step now counts in ``steps_done``: its rows must not count a second
        # time (they read 50% after the first of two steps, then 25% once the next began)
        self.done = self.total = 0
        self.steps_done += 1
        self.seq += 1

    def public(self, with_result: bool = True) -> dict[str, Any]:
        # never less than a reader was shown before: an engine call whose plan grows its
        # total mid-step would otherwise move the bar back
        shown = self._shown = max(self._shown, round(self.fraction, 4))
        out: dict[str, Any] = {
            "id": self.id, "kind": self.kind, "status": self.status, "step": self.step,
            "progress": shown, "rows_done": self.done,
            "rows_total": self.total, "error": self.error, "cached": self.cached,
            "seconds": (self.finished or time.time()) - self.created}
        if with_result and self.status == "done":
            out["result"] = self.result
        return out


class JobManager:
    """Runs jobs on ``workers`` threads; caches results; cancels cooperatively."""

    def __init__(self, workers: int = 1, cache_items: int = 128) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tribute-explorer")
        self.cache = LRUCache(cache_items)
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._counter = itertools.count()

    def submit(self, kind: str, key: str, fn: Callable[[Job], Any], steps: int = 1) -> Job:
        """Start ``fn(job)`` in the background (or answer from the cache at once)."""
        job = Job(id=f"{next(self._counter)}-{secrets.token_hex(6)}", kind=kind, key=key,
                  steps_total=max(steps, 1))
        hit = self.cache.get(key)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > MAX_JOBS:
                old_id, old = next(iter(self._jobs.items()))
                if not old.terminal:
                    break
                self._jobs.pop(old_id)
        if hit is not None:
            job.result, job.cached, job.status = hit, True, "done"
            job.steps_done = job.steps_total
            job.finished = time.time()
            job.seq += 1
            return job
        self._pool.submit(self._run, job, fn)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        job = self.get(job_id)
        if job is not None and not job.terminal:
            job.cancel_flag.set()
            if job.status == "queued":  # never started: nothing to interrupt
                job.status, job.finished = "cancelled", time.time()
            job.seq += 1
        return job

    def shutdown(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel_flag.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, job: Job, fn: Callable[[Job], Any]) -> None:
        if job.cancel_flag.is_set():
            job.status, job.finished = "cancelled", time.time()
            job.seq += 1
            return
        job.status = "running"
        job.seq += 1

        def on_progress(done: int, total: int) -> None:
            job.done, job.total = int(done), int(total)
            job.seq += 1
            if job.cancel_flag.is_set():
                raise Cancelled(f"job {job.id} was cancelled")

        try:
            with observe_progress(on_progress):
                result = fn(job)
            job.check()
        except Cancelled:
            job.status = "cancelled"
        except TributeError as exc:  # bad settings: the library's message says how to fix them
            job.status, job.error = "error", str(exc)
        except Exception as exc:  # a failing method must leave the server working
            log.exception("explorer job %s (%s) failed", job.id, job.kind)
            job.status, job.error = "error", f"{type(exc).__name__}: {exc}"
        else:
            # complete before terminal: a reader that sees "done" sees progress 1.0 and the result
            job.steps_done = job.steps_total
            job.result = result
            job.status = "done"
            self.cache.put(job.key, result)
        finally:
            job.finished = time.time()
            job.seq += 1
