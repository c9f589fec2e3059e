"""Independent tasks as Ray tasks: the one place tribute talks to Ray.

Dataset jobs (:mod:`tribute.jobs.backends`, shards) and the retrain bank
(:mod:`tribute.games.data_bank`, trained subsets) both hand a list of independent work items to
:func:`run_ray_tasks`: one shared object is put in Ray's object store once, each item runs as a
Ray task (at most ``workers`` in flight, each retried up to ``max_retries`` times if its worker
dies), and every result is passed, on the driver, to ``on_done`` — which alone writes files.
Scheduling and retries are Ray's; nothing here re-implements them.

Ray is optional (``pip install "tribute[ray]"``) and imported only when a Ray backend is asked
for. Without ``address`` an existing ``ray.init`` is used, else ``RAY_ADDRESS``, else the cluster
the last ``ray start`` on this machine recorded, else a new local instance on the loopback address
127.0.0.1 only (shut down again when the tasks are done).
To start a local instance yourself (for example one the ``ray`` CLI can join), use ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``,
``RAY_AUTH_MODE=disabled`` and ``RAY_USAGE_STATS_ENABLED=0`` in the environment and
``ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False)``.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .errors import InputError, TributeError

__all__ = ["import_ray", "run_ray_tasks"]

Item = TypeVar("Item")


def import_ray() -> Any:
    """``import ray``, or an :class:`InputError` with the install hint."""
    try:
        import ray
    except ImportError as exc:
        raise InputError(
            "backend='ray' needs Ray: install the extra with `pip install \"tribute[ray]\"` "
            "(or `pip install ray==2.60.0`), or use backend='processes'."
        ) from exc
    return ray


def _cluster_to_join() -> bool:
    """Whether ``ray.init()`` without an address would join a cluster rather than start one.

    That is ``RAY_ADDRESS``, else the cluster the last ``ray start`` on this machine recorded
    (Ray's own lookup; where it cannot be asked, a new instance is assumed, which tribute then
    starts on the loopback address).
    """
    if os.environ.get("RAY_ADDRESS"):
        return True
    try:
        from ray._private import services

        lookup: Any = services.canonicalize_bootstrap_address
        return lookup(None) is not None
    except Exception:  # Ray's private lookup moved or failed: start on the loopback address
        return False


def run_ray_tasks(fn: Callable[[Any, Item], Any], shared: Any, items: Sequence[Item],
                  on_done: Callable[[Item, Any], None], *, workers: int = 1,
                  address: str | None = None, max_retries: int = 3,
                  name: Callable[[Item], str] = repr) -> None:
    """Run ``fn(shared, item)`` for every item as Ray tasks; ``on_done(item, result)`` on the driver.

    Results are handed over in completion order. A :class:`~tribute.errors.TributeError` raised
    inside a task is re-raised as itself (the exception the task raised, with the message a
    local run would give, not Ray's wrapper whose message is the remote traceback); a worker
    that died more often than ``max_retries`` allows gives a :class:`TributeError` naming the
    item (``name(item)``, e.g. ``"shard 3"``); other task errors propagate as Ray's. ``fn``
    must be importable by the workers (a module-level function).
    """
    if not items:
        return
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        if address is None and not _cluster_to_join():
            # a new local instance, on the loopback address only (Ray's own default is the
            # machine's network address, which would expose its ports)
            ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        elif address is None:  # Ray's default: RAY_ADDRESS, else the last `ray start` here
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        started = True
    in_flight: dict[Any, Item] = {}
    try:
        task = ray.remote(fn).options(num_cpus=1, max_retries=max_retries, retry_exceptions=False)
        shared_ref = ray.put(shared)
        queue = collections.deque(items)
        while queue or in_flight:
            while queue and len(in_flight) < workers:
                item = queue.popleft()
                in_flight[task.remote(shared_ref, item)] = item
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                item = in_flight.pop(ref)
                try:
                    data = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    # the task's own exception: as_instanceof_cause() would give a subclass of
                    # both whose message is Ray's whole remote traceback
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, TributeError):
                        raise cause from exc
                    raise
                except ray.exceptions.WorkerCrashedError as exc:
                    raise TributeError(
                        f"a Ray worker died while computing {name(item)} (killed, or out of "
                        f"memory), {max_retries + 1} time(s) with max_retries={max_retries}; what "
                        "finished is saved: rerun with resume=True / --resume (or a larger "
                        "max_retries).") from exc
                on_done(item, data)
    except BaseException:
        # on a Ray instance the caller started, tasks still running would go on computing
        # results nobody collects: cancel them (a Ray we started is shut down below anyway)
        for ref in in_flight:
            try:
                ray.cancel(ref)
            except Exception:  # pragma: no cover - already finished or gone
                pass
        raise
    finally:
        if started:
            ray.shutdown()
