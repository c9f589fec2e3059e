"""Backends decide where shards run — never what they compute.

* ``local``: in this process, one shard after another.
* ``processes``: ``concurrent.futures.ProcessPoolExecutor`` with the *spawn* start method;
  each worker receives the :class:`~tribute.jobs.shards.JobSpec` once (its initializer) and
  rebuilds the model from factory + weights (or unpickles the model object).
* ``ray``: Ray tasks on an existing cluster (``address``) or a local Ray instance; at most
  ``workers`` tasks in flight, each retried up to ``max_retries`` times if its worker dies.

Every backend hands finished shards, as ``(index, npz_bytes)``, to the driver's callback,
which alone writes files. Scheduling, retries and process management are the executor's or
Ray's; nothing here re-implements them.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import InputError, TributeError
from ..ray_tasks import run_ray_tasks
from .shards import JobSpec, run_shard

__all__ = ["BACKENDS", "run_shards"]

BACKENDS = ("local", "processes", "ray")

OnDone = Callable[[int, bytes], None]


def run_shards(spec: JobSpec, pending: Sequence[int], on_done: OnDone, *, backend: str = "local",
               workers: int = 1, address: str | None = None, max_retries: int = 3,
               model: Any = None) -> None:
    """Compute the ``pending`` shards on ``backend`` and pass each result to ``on_done``."""
    if not pending:
        return
    if backend == "local":
        for index in pending:
            on_done(index, run_shard(spec, index, model=model))
    elif backend == "processes":
        _run_processes(spec, pending, on_done, workers)
    elif backend == "ray":
        _run_ray(spec, pending, on_done, workers, address, max_retries)
    else:  # validated by the caller; kept for direct use
        raise InputError(f"backend={backend!r} is not one of {list(BACKENDS)}.")


# ------------------------------------------------------------------ processes
_WORKER_SPEC: JobSpec | None = None


def _init_worker(spec: JobSpec, parent: int) -> None:
    global _WORKER_SPEC
    _WORKER_SPEC = spec
    _exit_with_parent(parent)


def _exit_with_parent(parent: int, interval: float = 0.5) -> None:
    """End this worker process once its parent (the job's driver) is gone.

    A driver killed with ``kill -9`` cannot shut its pool down, and the executor's workers
    would then wait for work forever (each holding its model). A daemon thread polls the
    parent's pid (portable; the worker is re-parented when the driver dies) and exits."""

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="tribute-exit-with-parent", daemon=True).start()


def _worker_shard(index: int) -> bytes:
    assert _WORKER_SPEC is not None, "worker not initialised"
    return run_shard(_WORKER_SPEC, index)


def _run_processes(spec: JobSpec, pending: Sequence[int], on_done: OnDone, workers: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    # Same machine: a memory-mapped .npy travels as its path, not as a copy of the rows.
    shared = dataclasses.replace(spec, data=spec.data.shared())
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(shared, os.getpid()))
    finished = False
    try:
        futures: dict[Future[bytes], int] = {pool.submit(_worker_shard, i): i for i in pending}
        remaining = set(futures)
        while remaining:
            done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
            failed = sorted((f for f in done if f.exception() is not None), key=futures.__getitem__)
            # every finished shard of this round is saved before an error is raised
            for fut in sorted(set(done) - set(failed), key=futures.__getitem__):
                on_done(futures[fut], fut.result())
            broken = [f for f in failed if isinstance(f.exception(), BrokenProcessPool)]
            if broken:
                # the executor fails every unfinished shard at once, not only the dead worker's
                lost = sorted(futures[f] for f in broken) + sorted(futures[f] for f in remaining)
                raise TributeError(
                    f"a worker process died (killed, or out of memory; or a script that starts the "
                    "job at import time, without an `if __name__ == \"__main__\":` guard, which "
                    f"spawned workers re-run) while {_shard_list(lost)} "
                    f"{'was' if len(lost) == 1 else 'were'} not finished, and the "
                    "process pool stopped; finished shards are saved: rerun with resume=True / "
                    "--resume.") from broken[0].exception()
            if failed:
                failed[0].result()  # the first failed shard's own error (names the shard)
        finished = True
    finally:
        # After an error, queued shards are cancelled and running ones (at most one per worker)
        # finish before we return. After success the workers exit while the driver merges.
        pool.shutdown(wait=not finished, cancel_futures=True)


def _shard_list(indices: Sequence[int]) -> str:
    """``"shards 0, 3, 4 (3 of them)"`` or ``"shards 0, 1, 2, ... 9 (10 of them)"``."""
    shown = ", ".join(map(str, indices[:3])) + (f", ... {indices[-1]}" if len(indices) > 3 else "")
    return f"shard {shown}" if len(indices) == 1 else f"shards {shown} ({len(indices)} of them)"


# ------------------------------------------------------------------------ ray
def _ray_shard(spec: JobSpec, index: int) -> bytes:
    return run_shard(spec, index)


def _run_ray(spec: JobSpec, pending: Sequence[int], on_done: OnDone, workers: int,
             address: str | None, max_retries: int) -> None:
    # the Ray plumbing is shared with the retrain bank's subsets (tribute.ray_tasks)
    run_ray_tasks(_ray_shard, spec, list(pending), on_done, workers=workers, address=address,
                  max_retries=max_retries, name=lambda index: f"shard {index}")
