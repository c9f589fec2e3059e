"""Self-tuning rows per forward pass.

A model's throughput depends on its batch size in ways no byte count predicts: a small CNN on
32x32 images runs fastest at ~64 rows and loses half its speed at 4096, a numpy model wants
thousands of rows to amortise its per-call cost. So the engine *measures*: the first chunks of
a call are sent at doubling sizes (16, 32, 64, ... up to the memory cap), each timed end to
end (composing the rows, the forward pass, target selection and storing the values). The
growth stops at the first size that is clearly (15%) slower than the best one, timed twice so
that one stalled chunk does not end the search (once when that chunk alone took 50 ms), or
after two sizes in a row that were no faster (a plateau). One pass per size decides that
search, and on a busy machine one pass of a millisecond varies by 2x, so it ends in a *duel*:
the fastest size and its measured neighbours (half and twice its rows; not a bigger one
whose passes were all clearly slower) are timed again in turns, twice each (four times when passes take under 5 ms), the median of each size's passes
counts, and the smallest size within 3% of the fastest wins (moving down to smaller
neighbours, at most three times, while the smallest wins). The winner is used for the rest
of the call and cached per (model, model-input signature, gradients) for later calls in the
process -- every method and game kind on the same model and input shapes shares it (feature
games, component games' capture and patching passes). Tuning chunks are real work: their
rows are the call's rows, nothing is run twice, and the tuning cost is part of every timing.
The first chunk a tuner sees is a warm-up and not timed, unless the model already completed a
run in this process (:func:`mark_warm`).

Sizes whose passes are mostly a fixed cost per pass are skipped: after the first two sizes
the times fit ``cost per pass + rows x cost per row``, and the search resumes at the largest
size where the cost per pass is still over a tenth of a pass (at most five doublings on); when
32 rows took no longer than 16, 16 is timed again (cheap passes only) and a second such fit
skips as far as allowed. The pass at the size skipped to refits the line through the first
size's pass and its own: when that puts the sizes worth timing two doublings or more below it,
the search resumes there (a small transformer's 16- and 32-row passes took the same time, the
search skipped to 2,048 and never timed its fastest size, 512).

Each size costs one chunk and a size past the peak costs one or two: on a 13-feature MLP whose
throughput halves from 2,048 to 8,192 rows per pass (its activations leave the cache), an
earlier rule that jumped to the size "expected to take 2 ms" settled on 8,192 and ran every
call at half speed.

Chunks are timed by :class:`SchedulerFreeClock`: wall time minus the time the thread waited
for a CPU (Linux schedstat). On a shared machine wall time mostly measures the scheduler (at a
load average of 12 on 2 cores a 13-feature MLP's 8192-row chunk measured 20x slower than its
2048-row one by wall clock, 1.5x without the run-queue wait); time the model spends blocked
(sleeping, I/O, waiting for an accelerator) still counts.

Runs whose rows are composed in blocks of many chunks (``Engine.run(blocks=True)``) time only
the forward passes of their tuning chunks: composing and storing rows is then paid per block,
so what a size costs is its forward pass.

On a CUDA device the sizes go up to 65,536 rows (the memory cap permitting). The cap bounds
what tribute composes, not the model's activations, so a chunk may run out of device memory:
the engine then sends the same rows again in a smaller chunk and the tuner keeps below that
size for good (:meth:`BatchTuner.out_of_memory`); with an explicit ``batch_size`` the error is
raised, naming the setting.

Results do not depend on the sizes chosen: every row is composed and evaluated on its own.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Hashable
from typing import Any

__all__ = ["BatchTuner", "SchedulerFreeClock", "is_warm", "mark_warm", "tuner_for"]

_SCHEDSTAT = "/proc/thread-self/schedstat"


class _SchedFile:
    """The calling thread's ``/proc/thread-self/schedstat``, open for the thread's life (closed
    with its thread-local storage when the thread ends); ``fd`` None where it cannot be read."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.fd: int | None = None
        try:
            fd = os.open(_SCHEDSTAT, os.O_RDONLY)
        except OSError:
            return
        try:
            int(os.pread(fd, 128, 0).split()[1])
        except (OSError, IndexError, ValueError):
            os.close(fd)
            return
        self.fd = fd

    def __del__(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:  # pragma: no cover - already closed at interpreter exit
                pass
            self.fd = None


_THREAD_FILES = threading.local()


def _sched_file() -> _SchedFile:
    """This thread's schedstat file, opened once per thread and process (a forked child reopens
    its own: the parent's descriptor reads the parent's thread). Opening it cost ~3 us in a
    tight loop and ~20 us inside a call, twice per tuning call (issue #9)."""
    f: _SchedFile | None = getattr(_THREAD_FILES, "file", None)
    if f is None or f.pid != os.getpid():
        f = _THREAD_FILES.file = _SchedFile()
    return f


class SchedulerFreeClock:
    """Seconds on the calling thread's clock that exclude its waits for a CPU.

    ``now()`` is ``perf_counter()`` minus the thread's run-queue delay (the second field of
    ``/proc/thread-self/schedstat``, ns): preemption by other processes does not count, while
    sleeping, I/O and device synchronisation do. Falls back to ``perf_counter`` where the file
    is missing (not Linux, no schedstats). Two ``pread`` per reading (~3 us each): the delay
    is read before and after the wall clock, and again until both agree. Use it from the
    thread that made it: the file is the thread's own, kept open for the thread's life and
    shared by its clocks; ``close()`` ends this clock's use of it.
    """

    def __init__(self) -> None:
        self._fd: int | None = _sched_file().fd

    def now(self) -> float:
        if self._fd is None:
            return time.perf_counter()
        # The wall clock and the run-queue delay are two readings: a preemption between them
        # would be counted in one and not the other (ended by a preemption, a 7.2 ms pass was
        # once timed at 2.3 ms). The delay only changes while the thread waits, so equal
        # delays read before and after the wall clock bracket a consistent pair.
        try:
            after = self._run_delay()
            for _ in range(_CLOCK_TRIES):
                before, t, after = after, time.perf_counter(), self._run_delay()
                if after == before:
                    break
            return t - before * 1e-9
        except (OSError, IndexError, ValueError):  # pragma: no cover - file vanished
            return time.perf_counter()

    def _run_delay(self) -> int:
        """The thread's total run-queue delay so far (ns)."""
        assert self._fd is not None
        return int(os.pread(self._fd, 128, 0).split()[1])

    def close(self) -> None:
        self._fd = None  # the thread's file stays open for its next clock

#: Most wall-clock readings per ``SchedulerFreeClock.now`` while preemptions interleave.
_CLOCK_TRIES = 4

_FIRST = 16
#: A clearly slower size whose chunk took less than this is timed again before it ends the
#: search (cheap to confirm; a stall of a few ms must not pick a size far below the best).
_CONFIRM_SECONDS = 0.05
#: Chunks faster than this are timed up to ``2 * repeats`` times before they end the search.
_CHEAP_SECONDS = 5e-3
#: Most doublings the search skips after its first two sizes (see ``BatchTuner._skip_ahead``).
_MAX_SKIP = 5
#: Rounds of the final duel between the fastest size and its measured neighbours (see
#: ``BatchTuner._start_duel``).
_DUEL_ROUNDS = 2
#: In the duel, a bigger size must be this much faster than a smaller one to be chosen.
_PREFER_SMALLER = 0.03
#: A pass at least this long is mostly rows, not fixed cost: one such size alone gives a rate
#: to expect (see ``BatchTuner.rate``).
_RATE_ALONE_SECONDS = 0.02
#: Moves of the duel towards smaller sizes (when the smallest size in the duel wins).
_DUEL_MOVES = 3


class BatchTuner:
    """Finds the rows per pass with the highest measured throughput.

    The sizes double from ``first`` to ``cap``. Each size is timed on one chunk; a size
    clearly slower than the best (below ``1 - tolerance`` of its rate) is timed ``repeats``
    times in all (the faster counts: one chunk slowed down by another process must not end the
    search), unless that one chunk already took ``confirm_seconds``. The search stops at the
    first size that stays clearly slower (the one before it was the peak: throughput curves of
    batch size are unimodal, and each size past the peak costs a full chunk at the slower
    rate), after ``patience`` sizes in a row that were not faster than the best (a plateau),
    or at the cap.

    Args:
        cap: the largest size tried (from the memory cap and the model's size).
        first: the smallest size tried. default=16.
        patience: sizes in a row no faster than the best (within ``tolerance``) that end the
            search. default=2.
        tolerance: how much slower than the best a size must be to count as slower (timings
            on a shared machine are noisy). default=0.15.
        repeats: chunks timed at a clearly slower size before it ends the search (twice as
            many for chunks under 5 ms, which cost little). default=2.
        confirm_seconds: a clearly slower chunk that took longer than this ends the search
            without a second timing (confirming it would cost another slow chunk). default=0.05.
        skip: after the first two sizes, skip the sizes whose passes are mostly a fixed cost
            per pass (see ``_skip_ahead``). default=True.
        duel: rounds of the final duel between the fastest size and its neighbours (see
            ``_start_duel``); 0 ends the search at the fastest single pass. default=2.
        warm: the model already ran in this process (see :func:`mark_warm`): the first chunk
            is timed like the others instead of being ignored as a warm-up. default=False.

    Attributes:
        rates: rows per second measured at each size (best of its measurements).
        best: the chosen size once tuning is done (None before).
    """

    def __init__(self, cap: int, first: int = _FIRST, patience: int = 2,
                 tolerance: float = 0.15, repeats: int = 2,
                 confirm_seconds: float = _CONFIRM_SECONDS, skip: bool = True,
                 duel: int = _DUEL_ROUNDS, warm: bool = False) -> None:
        cap = max(1, int(cap))
        sizes = []
        s = min(max(1, int(first)), cap)
        while s < cap:
            sizes.append(s)
            s *= 2
        sizes.append(cap)
        self.cap = cap
        self.candidates = sizes
        self.patience = max(1, int(patience))
        self.tolerance = tolerance
        self.repeats = max(1, int(repeats))
        self.confirm_seconds = float(confirm_seconds)
        self._seen = 0  # chunks timed at the current candidate
        self._flat = 0  # sizes in a row not faster than the best
        self.rates: dict[int, float] = {}
        self.best: int | None = None
        self._i = 0
        self._warm = bool(warm)  # no warm-up chunk to ignore (the model already ran)
        self.skip = bool(skip)
        self._settled = False  # ended by settle(): a bigger run resumes the search
        self._resume_rows = 0  # settled on a size timed once: resumed by runs of a whole chunk
        self._skipped: tuple[int, int] | None = None  # (first skipped index, index skipped to)
        self._current = True
        self._lock = threading.Lock()
        self._refit = False  # the first two sizes were timed again for the skip's fit
        self._rate_memo: tuple[tuple[tuple[int, float], ...], float | None] | None = None
        self.duel_rounds = max(0, int(duel))
        self._duel: list[int] | None = None  # sizes in the final duel, smallest first
        self._duel_i = 0  # the next size of the duel's round
        self._duel_left = 0  # rounds left
        self._duel_moves = 0
        #: a bigger size the growth search confirmed slower (back to back), timed once more
        #: in the duel's first round (see :meth:`_start_duel`)
        self._probation: int | None = None
        #: every rate measured at each size (growth and duel passes): the duel decides on
        #: their median (see :meth:`_winner`)
        self._samples: dict[int, list[float]] = {}
        #: a chunk ran out of device memory: ``cap`` is what fits, whatever a later call's
        #: byte count allows (see :meth:`out_of_memory`)
        self.memory_bound = False

    @property
    def done(self) -> bool:
        return self.best is not None

    @property
    def current(self) -> bool:
        """This tuner is still the process-wide one for its model and key (not forgotten by
        :func:`clear_tuners` nor replaced under another cap)."""
        return self._current

    def settle(self, n_rows: int) -> None:
        """End a search that runs of ``n_rows`` rows cannot continue: the size to time next
        needs a chunk of at least half its rows, more than the whole run has, although the run
        was big enough to time the size before it (a smaller run, e.g. a reference pass before
        the coalitions, leaves the search alone). The best size measured so far is kept; calls
        of this size never send bigger chunks, so without this every later call would keep
        timing chunks that are never recorded. A duel (see :meth:`_start_duel`) that such runs
        cannot finish is decided on what it measured.

        Likewise when the size to time next is more than the run's rows and was timed already:
        such runs send themselves as one pass at every size from their rows up, so its further
        timings (a slower size is confirmed up to four times) would come one per call while
        every call keeps tuning; :meth:`resume` takes the search up for a run that can send a
        whole chunk of that size."""
        with self._lock:
            n = int(n_rows)
            n2 = 2 * n
            if self.best is not None or not self.rates:
                return
            if self._duel is not None:
                if self._probation is not None and n2 < self._probation:
                    self._end_probation(drop=True)  # such runs cannot time it again
                    if self._duel_i >= len(self._duel):
                        self._end_round()
                    if self._duel is None or self.best is not None:
                        return
                if self._duel[0] <= n2 < self._duel[-1]:
                    self._decide()
                    self._settled = True
                return
            i = self._i
            if i > 0 and self.candidates[i - 1] <= n2 < self.candidates[i]:
                self._finish(final=True)
                self._settled = True
            elif i > 0 and self.candidates[i - 1] <= n < self.candidates[i] \
                    and self.candidates[i] in self.rates:
                # every size from the run's rows up sends such a run as one pass: the size
                # timed next already was, on a whole run, and more of its timings would come
                # one per call (the search would tune on for calls: issue #9, a 2,314-row
                # feature_ablation run confirming a slower 4,096 four times); a run that can
                # send a whole chunk of it resumes the search
                self._finish(final=True)
                self._settled = True
                self._resume_rows = self.candidates[i]

    def resume(self, n_rows: int) -> None:
        """Take up a search :meth:`settle` ended when a run of ``n_rows`` rows can time the
        size it stopped at (a small call must not fix the size of every bigger call after it)."""
        with self._lock:
            if not self._settled:
                return
            need = self._duel[-1] if self._duel is not None else self.candidates[self._i]
            if (int(n_rows) if self._resume_rows else 2 * int(n_rows)) >= need:
                self.best, self._settled, self._resume_rows = None, False, 0

    def out_of_memory(self, size: int) -> None:
        """A chunk of ``size`` rows ran out of device memory: sizes from ``size`` up are dropped
        (the cap becomes half of ``size``). A search still under way times the new cap next
        and ends there; a finished one moves to the new cap when its size no longer fits (on
        an accelerator throughput grows with the size until memory runs out: the largest size
        that fits, not a small one timed early in the search). The bound holds for later calls
        (:attr:`memory_bound`)."""
        with self._lock:
            cap = max(1, min(int(size) // 2, self.cap))
            self.cap = cap
            sizes = [s for s in self.candidates if s <= cap]
            if not sizes or sizes[-1] != cap:
                sizes.append(cap)
            self.candidates = sizes
            self.rates = {s: r for s, r in self.rates.items() if s <= cap}
            self._samples = {s: r for s, r in self._samples.items() if s <= cap}
            self._duel, self._skipped, self._rate_memo = None, None, None
            self._probation = None
            self._settled, self._resume_rows, self._refit = False, 0, False
            self.memory_bound = True
            if self.best is not None:
                self.best = min(self.best, cap)
            elif cap in self.rates:
                self.best = cap
            else:
                self._i, self._seen = len(sizes) - 1, 0

    def propose(self, cap: int | None = None) -> int:
        """The size of the next chunk (the best one once tuned), at most ``cap``."""
        if self.best is not None:
            size = self.best
        elif self._duel is not None:
            size = self._duel[self._duel_i]
        else:
            size = self.candidates[self._i]
        return size if cap is None else max(1, min(size, cap))

    def rate(self) -> float | None:
        """The throughput to expect from this model (rows/s), for estimates of a call's time;
        None when nothing measured says.

        Once tuned: the best rate measured. While the search is still growing (or was ended
        early by a small run, :meth:`settle`), the sizes timed so far are the small ones, whose
        passes are mostly a fixed cost per pass, and their best rate says little about the
        sizes to come: a numpy gradient-boosting model measured ~10,000 rows/s at 16 rows per
        pass and runs at ~1.2 M rows/s at 8,192, so a cold ``kernel_shap`` call of 100,000 rows
        announced "est. 11 s" for 0.14 s of work. The times per pass measured so far are fitted
        as ``cost per pass + rows x cost per row`` (least squares) and the rate at the largest
        size the search may reach, ``cap / (cost per pass + cap x cost per row)``, is returned
        (at most ~2x optimistic on a model whose throughput falls past its peak, such as a
        13-feature MLP); None when the fit finds no cost per row (every pass was mostly fixed
        cost: the size of the run's passes, not the model, sets its time) or when a single size
        was timed on passes under :data:`_RATE_ALONE_SECONDS`. The progress bar projects a
        call's time from its own first second of work when this is None.
        """
        with self._lock:
            if not self.rates:
                return None
            best = max(self.rates.values())
            if self.best is not None and not self._settled:
                return best
            key = tuple(self.rates.items())
            if self._rate_memo is not None and self._rate_memo[0] == key:
                return self._rate_memo[1]
            sizes = sorted(self.rates)
            times = [s / self.rates[s] for s in sizes]
            out: float | None
            if len(sizes) == 1:
                out = best if times[0] >= _RATE_ALONE_SECONDS else None
            else:
                ms = sum(sizes) / len(sizes)
                mt = sum(times) / len(times)
                sxx = sum((s - ms) ** 2 for s in sizes)
                per_row = sum((s - ms) * (t - mt) for s, t in zip(sizes, times)) / sxx
                out = None
                if per_row > 0:
                    per_pass = max(mt - per_row * ms, 0.0)
                    out = max(best, self.cap / (per_pass + per_row * self.cap))
            self._rate_memo = (key, out)
            return out

    def record(self, size: int, rows: int, seconds: float) -> None:
        """Report a chunk of ``rows`` rows sent as size ``size`` that took ``seconds``.

        The very first chunk (warm-up: lazy initialisation, caches) and chunks of less than
        half their size (a call's short tail) inform nothing and are ignored; a tail of at
        least half the size is timed like a full chunk (on a model costing seconds per chunk
        it may be the only chunk a short call sends at that size). ``Engine.run`` does not time
        the chunks this ignores for their size (it relies on this rule).
        """
        with self._lock:
            if rows > size or 2 * rows < size or seconds <= 0:
                return
            if not self._warm:
                self._warm = True
                return
            if self.best is not None:
                return
            if self._duel is not None:
                self._duel_record(size, rows / seconds)
                return
            if size != self.candidates[self._i]:
                return
            rate = rows / seconds
            top = max(self.rates.values(), default=0.0)
            self.rates[size] = max(self.rates.get(size, 0.0), rate)
            self._samples.setdefault(size, []).append(rate)
            if self._refit:  # 16 rows timed again for the fit (see _skip_ahead)
                self._i = self._skip_ahead()
                if self._i > 2:
                    self._skipped = (2, self._i)
                if self._i >= len(self.candidates):
                    # two candidates only (a small cap): nothing left to time (the next
                    # propose() indexed past them, and every later call of the model raised)
                    self._finish()
                return
            self._seen += 1
            slower = self.rates[size] < (1.0 - self.tolerance) * top
            # cheap chunks are confirmed more often: a stall (garbage collection, a page-fault
            # storm, a noisy neighbour) must not end the search far below the peak
            needed = 1 if seconds >= self.confirm_seconds else (
                self.repeats if seconds >= _CHEAP_SECONDS else 2 * self.repeats)
            # the cap too (rev42e): with the duel leaving out a size confirmed clearly slower
            # (see _confirmed_slower), these confirmations are all the duel hears of it; two
            # passes slowed by one busy spell would drop the fastest size for good
            if slower and self._seen < needed:
                return  # time it again before it ends the search
            self._seen = 0
            if slower and self._skipped is not None and self._i == self._skipped[1]:
                # the skip landed past the peak: time the sizes it skipped after all
                self._i, self._skipped = self._skipped[0], None
                return
            if slower:
                self._finish()
                return
            if self._skipped is not None and self._i == self._skipped[1]:
                back = self._overshot()
                self._skipped = None
                if back is not None:
                    # the skip's fit took passes at 16 and 32 rows, mostly a cost per pass, for
                    # the model: the pass at the size skipped to says the sizes below it are
                    # mostly rows already, and the peak may lie among them (see _overshot)
                    self._i, self._flat = back, 0
                    return
            self._flat = 0 if self.rates[size] > top else self._flat + 1
            self._i += 1
            if self.skip and self._i == 2 and self._flat == 0 and len(self.rates) == 2:
                if self._degenerate_fit() and size / rate < _CHEAP_SECONDS:
                    # 32 rows no slower than 16 per pass: 16 was slowed down (noise only
                    # slows a pass), or a cost per pass dominates; 16 is timed once more
                    self._refit, self._i = True, 0
                    return
                self._i = self._skip_ahead()
                if self._i > 2:
                    self._skipped = (2, self._i)
            if self._i >= len(self.candidates) or self._flat >= self.patience:
                self._finish()

    def _times(self) -> tuple[float, float, float, float]:
        s0, s1 = self.candidates[0], self.candidates[1]
        return s0, s1, s0 / self.rates[s0], s1 / self.rates[s1]

    def _degenerate_fit(self) -> bool:
        t0, t1 = self._times()[2:]
        return not t1 > t0

    def _skip_ahead(self) -> int:
        """After the first two sizes: the index of the first size worth timing next.

        Their times fit ``t(s) = c + s * r`` (a cost per pass ``c`` and per row ``r``); sizes
        whose passes are mostly ``c`` say nothing about the model and cost a pass each
        (a 13-feature MLP: ~60 us per pass, 0.17 us per row, so 16 ... 1,024 rows are all
        "faster than the last"). The search goes on at the largest size where ``c`` is still
        over a tenth of the pass (``s <= 9 c / r``), at most :data:`_MAX_SKIP` doublings on.
        When 32 rows take no longer than 16 per pass (``r`` not positive), either the pass at
        16 was slowed down (noise only slows passes) or the cost per pass dominates: 16 is
        timed once more (passes under 5 ms only), and if the faster of its two times is still
        no faster than 32's, the search skips as far as allowed (a numpy gradient-boosting
        model: ~1.5 ms per call, 0.8 us per row, fastest at 8,192 rows; timing 64 ... 1,024 on
        the way cost a cold call of 10,000 rows six passes). Not to the largest size at once:
        on a 13-feature MLP, whose 16- and 32-row passes are also mostly cost per pass, that
        put the duel at 4,096 vs 8,192 (both at about half the speed of 2,048 in steady state)
        and it picked 8,192 in both benchmark runs at a load of 12-16. No skip when ``c`` is not
        positive (a costly model). Should the size skipped to turn out clearly slower (the peak lies among
        the skipped sizes), the skipped sizes are timed after all.
        """
        s0, s1, t0, t1 = self._times()
        twice, self._refit = self._refit, False
        per_row = (t1 - t0) / (s1 - s0) if s1 > s0 else 0.0
        per_pass = t0 - per_row * s0
        if per_pass <= 0:  # no cost per pass
            return 2
        if per_row <= 0:
            if not twice:
                return 2  # expensive passes: timed once, no fit
            target = float("inf")  # timed twice: all cost per pass
        else:
            target = 9.0 * per_pass / per_row
        i = 2
        while i + 1 < len(self.candidates) and i < 2 + _MAX_SKIP \
                and self.candidates[i + 1] <= target:
            i += 1
        return i

    def _overshot(self) -> int | None:
        """After the pass at the size the skip landed on (not clearly slower): the index to
        resume the growth search at when that size was far past the sizes worth timing, else
        None.

        The skip's fit rests on the passes at the first two sizes, which are mostly a cost per
        pass; on a small transformer encoder (16 tokens x 32, 2 layers) 16 and 32 rows took
        about the same time per pass, the fit found no cost per row and the search skipped
        five doublings to 1,024-2,048 rows. Sizes from there to 8,192 then read alike on
        single passes (0.03-0.04 M rows/s on a busy machine), no size was clearly slower, so
        the skipped sizes were never timed, and 512 rows -- the fastest fixed size, 1.15-1.77x
        faster than the sizes chosen -- never duelled. The pass at the landing size ``L`` gives
        the fit a second point far from the first: ``t(s) = c + s x r`` through the first
        size's pass and ``L``'s. When the largest size whose cost per pass is still over a
        tenth of its pass (``s <= 9 c / r``, as in :meth:`_skip_ahead`) lies at least two
        doublings below ``L``, the sizes from there up are mostly rows already: the search
        resumes there (each a smaller pass than ``L``'s) and goes on by its usual rules (``L``
        is timed again on the way up). On a 13-feature MLP (60 us per pass, 0.17 us per row)
        and a numpy model (1.5 ms per pass, 0.8 us per row) the refit's size is past ``L``:
        nothing changes there. Once per search."""
        assert self._skipped is not None
        s0 = self.candidates[0]
        big = self.candidates[self._i]
        t0, t1 = s0 / self.rates[s0], big / self.rates[big]
        per_row = (t1 - t0) / (big - s0) if big > s0 else 0.0
        per_pass = t0 - per_row * s0
        if per_row <= 0:
            return None  # the landing size is all cost per pass too: the skip was right
        target = 9.0 * per_pass / per_row if per_pass > 0 else 0.0
        j = self._skipped[0]
        while j + 1 < self._i and self.candidates[j + 1] <= target:
            j += 1
        return j if j <= self._i - 2 else None

    def _finish(self, final: bool = False) -> None:
        """The growth search ended: start the duel (unless ``final`` or disabled), else pick
        the fastest size measured."""
        if not final and self.duel_rounds > 0 and self._start_duel():
            return
        self.best = max(self.rates, key=lambda k: self.rates[k])

    def _start_duel(self) -> bool:
        """Time the fastest size and its measured neighbours (half and twice its rows) again,
        in turns, :attr:`duel_rounds` rounds (twice as many for cheap passes, see
        :meth:`_rounds`); each is judged by the median of its passes (see :meth:`_winner`).
        A size reached by a skip, with no measured neighbour, duels half its rows (untimed).
        A bigger neighbour that ended the growth search clearly slower on every one of its
        passes sits the duel out after one more pass (see :meth:`_confirmed_slower`): those
        passes ran back to back and can share one slow spell, so it is timed once more, last
        in the duel's first round, and stays in the duel unless that pass too is clearly
        slower than the fastest size's pass of the same round (one pass more when it is truly
        slower; kept, it is judged by its duel passes only). On mlp13 (IG, 17,800 inputs,
        load 18) both 4,096-row gradient passes of one process read 0.69-0.71 M rows/s,
        against 0.87-1.65 M in other processes; 4,096 sat the duel out and 1,024 won: every
        later call 45% slower (871 vs 591-605 ms CPU; 4,096 is the fastest fixed size). Four
        cheap passes share a spell too (mlp13 feature ablation, 17,800 inputs: 1,024 rows
        read 0.38-1.10 M rows/s on four passes in a row, 2.4-4.2 M in another process; 512
        won, +11-20% per call).
        When the smallest of them wins, it duels its own smaller neighbour the same way (timed
        once, or skipped by the search), at most :data:`_DUEL_MOVES` times.

        One pass per size decides the growth search, and on a busy machine one pass of a
        millisecond varies by 2x: on a 13-feature MLP whose throughput halves from 1,024 to
        4,096 rows (activations leave the cache), single passes put 4,096 or 8,192 ahead about
        half the time. In turns, a slow spell hits every size alike, and the median of several
        passes is what the size does pass after pass (page faults included: at 4,096 and 8,192
        rows a 13-feature MLP's activations page-fault in 20% and 60-70% of passes, which then
        run ~40% slower). The duel's chunks are real work of the call, at sizes whose
        single passes were all near the best. False when there is nothing to compare.
        """
        b = max(self.rates, key=lambda k: self.rates[k])
        j = self.candidates.index(b)
        sizes = [self.candidates[k] for k in (j - 1, j, j + 1)
                 if 0 <= k < len(self.candidates) and self.candidates[k] in self.rates
                 and not self._confirmed_slower(self.candidates[k], b)]
        if len(sizes) < 2 and j > 0:  # reached by a skip: against half its rows, untimed
            sizes = [self.candidates[j - 1], b]
        if len(sizes) < 2:
            return False
        rounds = self._rounds(sizes)
        up = self.candidates[j + 1] if j + 1 < len(self.candidates) else None
        if up is not None and up > sizes[-1] and self._confirmed_slower(up, b):
            self._probation = up
            sizes = [*sizes, up]
        self._duel, self._duel_i, self._duel_left = sizes, 0, rounds
        return True

    def _end_probation(self, drop: bool) -> None:
        """Keep the size on probation in the duel, or drop it (``drop``; its pass of the first
        round was still clearly slower, or the calls cannot time it); the caller
        ends the round when no size is left to time in it."""
        assert self._duel is not None and self._probation is not None
        p, self._probation = self._probation, None
        if not drop:
            return
        i = self._duel.index(p)
        self._duel.remove(p)
        if self._duel_i > i:
            self._duel_i -= 1

    def _confirmed_slower(self, size: int, best: int) -> bool:
        """Whether ``size``, bigger than the fastest size ``best``, ended the growth search as
        clearly slower after being timed again (even its best pass is below ``1 - tolerance``
        of ``best``'s): the duel leaves it out. Its median cannot come within
        :data:`_PREFER_SMALLER` of the faster sizes' unless their medians fall far below their
        own best passes, and each of its duel passes would run at the slow rate: on mlp13
        (a cold kernel_shap call, 178 inputs) 8,192 rows per pass ran at about half the speed
        of 2,048-4,096, confirmed four times in the growth search and then timed four more
        times in the duel (~2 ms lost per pass, ~9 ms per cold call of ~45 ms). A size timed
        once (a pass over :attr:`confirm_seconds`, or not clearly slower) still duels."""
        return size > best and len(self._samples.get(size, ())) >= 2 \
            and self.rates[size] < (1.0 - self.tolerance) * self.rates[best]

    def _rounds(self, sizes: list[int]) -> int:
        """Rounds of a duel between ``sizes``: twice :attr:`duel_rounds` when the largest
        size's pass is cheap (under :data:`_CHEAP_SECONDS` at its best rate measured), where
        single passes are the noisiest and extra rounds cost little."""
        top = sizes[-1]
        cheap = top in self.rates and top / self.rates[top] < _CHEAP_SECONDS
        return self.duel_rounds * (2 if cheap else 1)

    def _duel_record(self, size: int, rate: float) -> None:
        assert self._duel is not None
        if size != self._duel[self._duel_i]:
            return
        self.rates[size] = max(self.rates.get(size, 0.0), rate)
        self._samples.setdefault(size, []).append(rate)
        self._duel_i += 1
        if self._duel_i < len(self._duel):
            return
        if self._probation is not None:
            # timed last in the round, right after the others: clearly slower than the
            # fastest size's pass of this round (the same spell, if any, slowed both)?
            p = self._probation
            b = max((s for s in self._duel if s != p), key=lambda k: self.rates[k])
            drop = rate < (1.0 - self.tolerance) * self._samples[b][-1]
            if not drop:
                # its growth passes shared a slow spell: the duel judges it by its own passes
                # (four stalled passes would hold its median down against four good ones)
                self._samples[p] = [rate]
            self._end_probation(drop=drop)
        self._end_round()

    def _end_round(self) -> None:
        """A round of the duel is complete: the next round, a move down, or the decision."""
        assert self._duel is not None
        self._duel_i = 0
        self._duel_left -= 1
        if self._duel_left > 0:
            return
        win = self._winner()
        j = self.candidates.index(win)
        if win == self._duel[0] and j > 0 and self._duel_moves < _DUEL_MOVES \
                and self._fastest() == win:
            # the smallest size won and is the fastest outright (not merely within
            # _PREFER_SMALLER of a bigger one): its smaller neighbour (timed once, or skipped)
            # may be faster still. A tie does not move on: ties decided for the smaller size
            # at every move walked noisy mlp13 duels down to 256-512 rows (+10-44% per call)
            self._duel_moves += 1
            self._duel = [self.candidates[j - 1], win]
            self._duel_left = self._rounds(self._duel)
            return
        self._decide()

    def _winner(self) -> int:
        """The duel's choice: the smallest size whose median rate (over every pass timed at
        it) is within :data:`_PREFER_SMALLER` of the highest median (bigger chunks cost more
        memory and, past a cache, lose in steady state).

        The median, not the best pass: on a busy machine single passes of a millisecond vary
        by 2x, and the best of a few noisy passes favours whichever size drew the luckiest one.
        On a 13-feature MLP (mlp13, kernel_shap on 178 inputs, load ~6 on 2 cores) the best
        pass put 4,096 ahead of 2,048 in 5 of 8 cold calls, while 2,048 ran 5-10% faster in
        steady state and its median pass was faster too.
        """
        assert self._duel is not None
        med = {s: _median(self._samples[s]) for s in self._duel if self._samples.get(s)}
        top = max(med.values())
        return min(s for s in med if med[s] >= (1.0 - _PREFER_SMALLER) * top)

    def _fastest(self) -> int:
        """The duel's size with the highest median rate."""
        assert self._duel is not None
        med = {s: _median(self._samples[s]) for s in self._duel if self._samples.get(s)}
        return max(med, key=lambda s: med[s])

    def _decide(self) -> None:
        self.best = self._winner()


def _median(xs: list[float]) -> float:
    ys = sorted(xs)
    n = len(ys)
    return ys[n // 2] if n % 2 else 0.5 * (ys[n // 2 - 1] + ys[n // 2])


# One tuner per (model, key, gradients), kept as long as the model lives. The key is the
# model-input signature a game gives its engine (shapes and dtypes of one row's model inputs),
# else the row size in bytes.
_TUNERS: weakref.WeakKeyDictionary[Any, dict[tuple[Hashable, bool], BatchTuner]] = weakref.WeakKeyDictionary()
_TUNERS_BY_ID: dict[tuple[int, Hashable, bool], BatchTuner] = {}
_LOCK = threading.Lock()


# Models that finished a run in this process, per gradients (forward or forward+backward):
# their lazy initialisation is done, so a fresh tuner (a new key, or after clear_tuners) times
# its first chunk instead of discarding it as a warm-up (on a numpy model at ~1.5 ms per call, a
# discarded pass is a tenth of a 10,000-row call). Not a tuned size: clear_tuners keeps it.
_WARM: weakref.WeakKeyDictionary[Any, set[bool]] = weakref.WeakKeyDictionary()
_WARM_BY_ID: set[tuple[int, bool]] = set()

# The model each id of _TUNERS_BY_ID / _WARM_BY_ID belongs to: a weak reference, or the model
# itself when it cannot be weakly referenced (only the _OWNERS_HELD most recent such are held).
# A new object at a freed model's id must not inherit its tuner: rev42a measured a new numpy
# model (64-row limit) at a freed model's id raise on its refused big pass in 2 of 5 runs (the
# old tuner's rates said that many rows worked), instead of being retried smaller.
_OWNER_BY_ID: dict[int, Any] = {}
_OWNERS_HELD = 8


def _forget_id(i: int) -> None:
    _OWNER_BY_ID.pop(i, None)
    for k in [k for k in _TUNERS_BY_ID if k[0] == i]:
        _TUNERS_BY_ID.pop(k)._current = False
    _WARM_BY_ID.difference_update({(i, False), (i, True)})


def _by_id(model_key: Any) -> int:
    """``id(model_key)`` for the by-id tables, once the entries of another (freed) object
    that had this id are dropped."""
    i = id(model_key)
    owner = _OWNER_BY_ID.get(i)
    if owner is not None and (owner() if isinstance(owner, weakref.ref) else owner[0]) is model_key:
        return i
    _forget_id(i)
    try:
        _OWNER_BY_ID[i] = weakref.ref(model_key)
    except TypeError:  # held (in a 1-tuple, never taken for a weak reference)
        _OWNER_BY_ID[i] = (model_key,)
        held = [j for j, o in _OWNER_BY_ID.items() if not isinstance(o, weakref.ref)]
        for j in held[:-_OWNERS_HELD]:
            _forget_id(j)
    return i


def mark_warm(model_key: Any, grad: bool) -> None:
    """Record that ``model_key`` completed a run (with gradients or not) in this process."""
    try:
        got = _WARM.get(model_key)
        if got is None:
            _WARM[model_key] = {bool(grad)}
        else:
            got.add(bool(grad))
    except TypeError:  # not weak-referenceable
        with _LOCK:
            _WARM_BY_ID.add((_by_id(model_key), bool(grad)))


def is_warm(model_key: Any, grad: bool) -> bool:
    """Whether ``model_key`` completed a run (with gradients or not) in this process."""
    with _LOCK:
        return _is_warm(model_key, grad)


def _is_warm(model_key: Any, grad: bool) -> bool:
    try:
        return bool(grad) in _WARM.get(model_key, ())
    except TypeError:  # (called with _LOCK held)
        return (_by_id(model_key), bool(grad)) in _WARM_BY_ID


def _reusable(t: BatchTuner, cap: int) -> bool:
    """A tuner made under another cap still serves when its finished search is valid under
    ``cap``: the best size fits, and it was an interior peak (not the old cap, which a larger
    cap might beat) unless the caps are equal."""
    if not t._current:  # forgotten (e.g. not one row fit on the device)
        return False
    if t.cap == cap:
        return True
    if t.memory_bound:  # what fits on the device, which no byte count knows
        return t.cap <= cap
    return t.best is not None and t.best <= cap and (t.best < t.cap or cap < t.cap)


def tuner_for(model_key: Any, key: Hashable, grad: bool, cap: int) -> BatchTuner:
    """The process-wide tuner of ``model_key`` for rows with tuning key ``key``.

    A cached tuner is shared by every call with the same key (methods, game kinds) as long as
    its result holds under ``cap`` (see :func:`_reusable`); otherwise a fresh one replaces it.
    """
    k = (key, bool(grad))
    with _LOCK:
        try:
            per_model = _TUNERS.setdefault(model_key, {})
        except TypeError:  # not weak-referenceable: fall back to its id
            i = _by_id(model_key)
            t = _TUNERS_BY_ID.get((i, *k))
            if t is None or not _reusable(t, cap):
                if t is not None:
                    t._current = False
                fwd = _TUNERS_BY_ID.get((i, key, False)) if grad else None
                t = _TUNERS_BY_ID[(i, *k)] = BatchTuner(
                    cap, _first(fwd), warm=(i, bool(grad)) in _WARM_BY_ID)
            return t
        t = per_model.get(k)
        if t is None or not _reusable(t, cap):
            if t is not None:
                t._current = False
            fwd = per_model.get((key, False)) if grad else None
            t = per_model[k] = BatchTuner(cap, _first(fwd), warm=_is_warm(model_key, grad))
        return t


def _first(forward: BatchTuner | None) -> int:
    """The first size a gradient tuner tries: an eighth of the forward pass's tuned size when
    known (forward+backward peaks at the same or a smaller size, rarely 8x smaller: bare
    models measured 1-2x), else the default."""
    if forward is None or forward.best is None:
        return _FIRST
    return max(_FIRST, forward.best // 8)


def clear_tuners() -> None:
    """Forget every tuned size (tests, benchmarks)."""
    with _LOCK:
        for per_model in _TUNERS.values():
            for t in per_model.values():
                t._current = False
        for t in _TUNERS_BY_ID.values():
            t._current = False
        _TUNERS.clear()
        _TUNERS_BY_ID.clear()
