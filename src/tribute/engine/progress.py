"""One progress bar per call (tqdm's ``auto`` bar: ETA on a terminal, a widget in notebooks).

:func:`progress_scope` opens the bar of a whole ``explain`` call: every engine run inside it
(the model rows of every phase, also those of helper games) advances the same bar, and the
estimator's own solve after the last row is part of its total, so the bar reaches 100% when
the call returns, not when the last row was evaluated. Outside a scope each engine run draws
its own bar. ``enabled=None`` shows a bar only on a terminal (or in a notebook) and only for
runs longer than two seconds.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TextIO

import numpy as np

from ..errors import InputError, user_stacklevel

__all__ = ["SLOW_RUN_SECONDS", "Progress", "SlowRunWarning", "active_progress", "check_progress", "observe_progress",
           "progress_scope"]

_DELAY = 2.0  # seconds before an automatic bar appears
#: Runs estimated to take longer than this (seconds) announce their plan with a warning.
SLOW_RUN_SECONDS = 10.0
#: Seconds of measured work before a run's duration is projected (and announced if long).
_PROJECT_AFTER = 1.0


class SlowRunWarning(UserWarning):
    """A call is expected to take long; the message states its plan and how to shorten it."""


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def check_progress(enabled: Any) -> None:
    """Refuse a ``progress=`` other than True, False or None (:class:`InputError`): a string
    such as ``"no"`` would read as True and draw a bar."""
    if enabled is not None and not isinstance(enabled, (bool, np.bool_)):
        raise InputError(f"progress={enabled!r} must be True, False or None (a bar when the "
                         "output is a terminal or a notebook).")


class Progress:
    """A bar over ``total`` units (rows, plus the estimator's solve work in a scope).

    Args:
        total: units expected.
        desc: label.
        enabled: ``True`` always draws, ``False`` never, ``None`` draws on a terminal or in a
            notebook, and only once the run has lasted more than two seconds.
        stream: where a terminal bar is written (default ``sys.stderr``).
    """

    def __init__(self, total: int, desc: str = "", enabled: bool | None = None,
                 stream: TextIO | None = None) -> None:
        check_progress(enabled)
        self.total = max(int(total), 1)
        self.desc = desc
        self.done = 0
        self.planned_rows = self.total  # model rows among the units (the rest: solve work)
        self.planned = True  # False while a scope waits for its plan (see replan)
        self._nested = 0  # scopes opened inside the one that owns this bar
        stream = stream if stream is not None else sys.stderr
        auto = enabled is None
        if auto:
            enabled = bool(getattr(stream, "isatty", lambda: False)()) or _in_notebook()
        self.enabled = bool(enabled)
        self._bar: Any = None
        self.t0 = time.perf_counter()
        self.rows_t0: float | None = None  # when the running engine pass started (rows_begin)
        self.rows_seconds: float | None = None  # seconds of finished engine passes (None: none yet)
        self.plan: Callable[[float], str] | None = None  # message announcing a long run
        self.solve_seconds = 0.0
        self._pace_from = (0, 0.0)  # (rows done, seconds of rows) where the pace starts: replan
        # set by a call split into groups (texts of different word counts): inputs left, this
        # group's included, per input of the group; a group's plan is extrapolated by it
        self.share: float | None = None
        self._split_from = 0  # rows done when the group started
        self._ticker: threading.Thread | None = None
        self._stop: threading.Event | None = None  # made with the ticker (issue #9: ~5 us a call)
        if self.enabled:
            if stream is not sys.stderr or not _in_notebook():
                from tqdm.std import tqdm
            else:  # pragma: no cover - needs a notebook
                from tqdm.auto import tqdm
            self._bar = tqdm(total=self.total, desc=desc, file=stream, unit="rows",
                             unit_scale=False, delay=_DELAY if auto else 0.0, leave=True,
                             dynamic_ncols=True, mininterval=0.2)
            self._t0 = time.perf_counter()
            self._delay = _DELAY if auto else 0.0

    def update(self, n: int) -> None:
        """Advance by ``n`` units (the total grows when more arrive than planned)."""
        self.done += n
        if _LISTENERS.get():
            # never 100% (or more) before the call returns; before the plan the total is not
            # known and reads 0 (done/(done + 1) told a listener 67% at 2 of 2 reference rows,
            # then 5% once the plan came)
            total = 0 if not self.planned else self.total if self.done < self.total else self.done + 1
            for listener in _LISTENERS.get():
                listener(self.done, total)
        if self._bar is None:
            return
        if not self.planned or self.done >= self._bar.total:
            # 100% is drawn once, by close(): before the plan is known, and after the last
            # planned unit while the call has not returned yet, the bar holds one unit short
            self._bar.total = max(self._bar.total, self.done + 1)
        self._bar.update(n)

    def replan(self, rows: int, solve: int = 0, plan: Callable[[float], str] | None = None,
               solve_seconds: float = 0.0) -> None:
        """Set the planned work once it is known (after the game is built and the cost
        estimated): ``rows`` model rows still to come plus ``solve`` row-equivalents. Ignored
        from a nested scope: the outer call's plan stands, unless the outer call runs its inputs
        in groups (:attr:`share`), where each group's plan, extrapolated to the inputs left,
        replans the bar (no slow-run warning: the group's plan words one group)."""
        if self._nested:
            if self.share is not None:
                # the group's whole cost (its reference pass, already run, included) scaled
                group = self.done - self._split_from + int(rows)
                self.planned_rows = self._split_from + round(group * self.share)
                self.planned = True
                self.total = max(self.planned_rows + round(int(solve) * self.share), 1)
                if self._bar is not None:
                    self._bar.total = self.total
                    self._bar.refresh()
            return
        # the rows run before the plan (explain's reference pass: a handful of rows that pay
        # the model's first-call costs) do not pace the rest: a tiny GPT-2's first 3 rows took
        # 2.4 s and projected "est. 47 min" for a call that took 23 s
        self._pace_from = (self.done, self._rows_elapsed(time.perf_counter()))
        self.planned_rows = self.done + int(rows)
        self.planned = True
        self.total = max(self.planned_rows + int(solve), 1)
        self.plan = plan
        self.solve_seconds = solve_seconds
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def drop(self, rows: int) -> None:
        """``rows`` planned model rows will not run after all (a game evaluated a coalition
        asked for twice once: :meth:`tribute.games.base.Game.value`): the plan shrinks by them
        (scaled to the inputs left in a call run in groups), never below the rows done."""
        rows = int(rows)
        if rows <= 0 or not self.planned:
            return
        if self._nested and self.share is not None:
            rows = round(rows * self.share)
        solve = self.total - self.planned_rows
        self.planned_rows = max(self.planned_rows - rows, self.done)
        self.total = max(self.planned_rows + solve, 1)
        if self._bar is not None:
            self._bar.total = max(self.total, self.done + 1)
            self._bar.refresh()

    def split(self, inputs_left: int, group_inputs: int) -> None:
        """The call owning this bar runs its inputs in groups, each as a nested call: the
        next group has ``group_inputs`` of the ``inputs_left`` inputs still to run, and its
        plan replans the bar scaled to them (:meth:`replan`). Ignored from a nested scope."""
        if not self._nested:
            self.share = int(inputs_left) / max(int(group_inputs), 1)
            self._split_from = self.done

    def rows_begin(self) -> None:
        """An engine pass over model rows starts. The pace of the rows is measured over the
        time spent inside such passes only, so work between them (a design, a solve, building
        the game) is not read as slow rows."""
        if self.rows_t0 is None:
            self.rows_t0 = time.perf_counter()

    def rows_end(self) -> None:
        """The engine pass that :meth:`rows_begin` announced has ended."""
        if self.rows_t0 is not None:
            self.rows_seconds = (self.rows_seconds or 0.0) + time.perf_counter() - self.rows_t0
            self.rows_t0 = None

    def _rows_elapsed(self, now: float) -> float:
        if self.rows_seconds is None and self.rows_t0 is None:
            return now - self.t0  # rows not announced by an engine: the whole call so far
        running = now - self.rows_t0 if self.rows_t0 is not None else 0.0
        return (self.rows_seconds or 0.0) + running

    def project(self) -> None:
        """Once, after a second of planned rows: if the measured pace puts the whole call over
        :data:`SLOW_RUN_SECONDS`, warn with the plan (what runs, how long, how to shorten it).
        The pace counts the rows run since :meth:`replan` (not the reference pass before it)."""
        done0, elapsed0 = self._pace_from
        if self.plan is None or self.done <= done0:
            return
        now = time.perf_counter()
        rows_elapsed = self._rows_elapsed(now) - elapsed0
        if rows_elapsed < _PROJECT_AFTER:
            return
        plan, self.plan = self.plan, None
        left = max(self.planned_rows - self.done, 0) * rows_elapsed / (self.done - done0)
        total = (now - self.t0) + left + self.solve_seconds
        if total > SLOW_RUN_SECONDS:
            warnings.warn(plan(total), SlowRunWarning, stacklevel=user_stacklevel())

    def phase(self, text: str) -> None:
        """Name what happens now (e.g. ``"solving"``); a ticker keeps the clock moving."""
        if self._bar is None:
            return
        self._bar.set_postfix_str(text, refresh=False)
        if self._ticker is None:
            self._stop = threading.Event()
            self._ticker = threading.Thread(target=self._tick, name="tribute-progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        stop = self._stop
        assert stop is not None
        while not stop.wait(0.5):
            if time.perf_counter() - self._t0 >= self._delay:
                self._bar.refresh()

    def close(self, complete: bool = False) -> None:
        """Finish the bar (once); ``complete`` fills it to its total first."""
        if self._stop is not None:
            self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self._bar is None:
            return
        # the unit held back by update() is released without a draw: close() draws the final
        # state exactly once (filled to the total with ``complete``)
        self._bar.total = max(self.total, self.done)
        if complete:
            self._bar.n = self._bar.total
        self._bar.set_postfix_str("", refresh=False)
        self._bar.close()
        self._bar = None


_ACTIVE: ContextVar[Progress | None] = ContextVar("tribute_progress", default=None)
_LISTENERS: ContextVar[tuple[Callable[[int, int], None], ...]] = ContextVar(
    "tribute_progress_listeners", default=())


@contextlib.contextmanager
def observe_progress(callback: Callable[[int, int], None]) -> Iterator[None]:
    """Call ``callback(done, total)`` after every chunk of model rows evaluated inside.

    The public hook of programs that drive tribute (the explorer's background jobs): it sees
    the bar of every engine run in this thread or task (``done``/``total`` in rows, plus the
    estimator's solve work inside an ``explain`` call; a run outside ``explain`` reports its
    own total; ``done`` stays below ``total`` until the call returns, as the bar holds its
    last unit for ``close``; ``total`` is ``0`` while the work is not planned yet, e.g. during
    the reference pass that ``explain`` runs before its estimate). It is called between engine chunks, so raising from it stops a computation
    cooperatively: the exception propagates out of ``explain``/``evaluate``, which restore
    the model (hooks, training flag) as after any other exception.

    Example:
        >>> seen = []
        >>> with observe_progress(lambda done, total: seen.append(done)):  # doctest: +SKIP
        ...     tribute.explain(model, x, method="kernel_shap")
    """
    token = _LISTENERS.set((*_LISTENERS.get(), callback))
    try:
        yield
    finally:
        _LISTENERS.reset(token)


def active_progress() -> Progress | None:
    """The bar of the enclosing :func:`progress_scope`, if any."""
    return _ACTIVE.get()


@contextlib.contextmanager
def progress_scope(rows: int, desc: str, enabled: bool | None, solve: int = 0,
                   stream: TextIO | None = None, plan: Callable[[float], str] | None = None,
                   solve_seconds: float = 0.0) -> Iterator[Progress]:
    """One bar for everything inside: ``rows`` planned model rows plus ``solve`` units of the
    estimator's own work (in row-equivalents). A nested scope reuses the outer bar.

    ``plan(seconds)`` words the warning of a run projected (from its first second of work) to
    take longer than :data:`SLOW_RUN_SECONDS`; ``solve_seconds`` is the solve's estimate.
    ``enabled`` (the user's ``progress=``) must be True, False or None (a bar on a terminal
    or in a notebook)."""
    check_progress(enabled)
    outer = _ACTIVE.get()
    if outer is not None:
        outer._nested += 1
        try:
            yield outer
        finally:
            outer._nested -= 1
        return
    bar = Progress(rows + solve, desc, enabled, stream)
    bar.planned_rows = rows
    bar.planned = rows > 0
    bar.plan = plan
    bar.solve_seconds = solve_seconds
    token = _ACTIVE.set(bar)
    ok = False
    try:
        yield bar
        ok = True
    finally:
        _ACTIVE.reset(token)
        bar.close(complete=ok)
