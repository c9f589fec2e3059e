"""The game contract every estimator works against.

A game has ``n_players`` players and a value function ``v(S)`` per input sample. Estimators
pass coalitions as masks: ``K x players`` (the same coalitions for every sample — the usual
case, and what makes results independent of batch composition) or ``batch x K x players``
(per-sample coalitions). Masks may be fractional; ``1`` keeps a player, ``0`` removes it.

Values come back as float64 ``batch x K x targets`` tensors on the CPU. Differentiable games
also return gradients w.r.t. the mask (the relaxation of :doc:`DESIGN`), which is what
integrated gradients, attribution patching and friends integrate.

Counting (one definition everywhere): ``n_evals`` is the number of value-function evaluations
per input sample — coalitions, or points for gradient methods — and is what ``budget`` bounds.
It starts at 1: feature and component games make one reference pass on the unperturbed inputs
(to resolve the target), and that pass IS ``v(N)``, so it is always spent and always counted
(:meth:`full` then costs nothing more). A component game runs it when it is built; a feature
game whose target's width is known without it (None, ``"predicted"``, an int; a torch model
without per-row arguments or a background set) counts it when built and runs it when the
target, ``v(N)`` or a value is first asked for (:meth:`reference_pending`): a method refused
by its checks (``Method.check``, which reads ``n_targets``) then spends no model row. The engine counts ``n_rows``, the
rows the model actually saw: one per sample for the reference pass and one per sample and
background row for every other evaluation, so with ``M`` background rows
``n_rows = samples * (1 + (n_evals - 1) * M)``. A method with ``budget`` can therefore spend
``budget - game.n_evals`` more evaluations (:meth:`budget_left`).

The public, counted way in — the only one methods and metrics use (``tests/layering`` checks
that nothing outside ``games/`` and ``engine/`` touches the counters):

* :meth:`Game.value` / :meth:`Game.value_and_grad` — coalitions (``max_elements=`` evaluates a
  big set in bounded blocks);
* :meth:`Game.value_stream` — coalitions built block by block on demand, evaluated and handed
  back with their masks (the one streaming path; no method keeps its own block loop);
* :meth:`Game.full` / :meth:`Game.empty` / :meth:`Game.peek_full` / :meth:`Game.peek_empty`;
* per game kind: ``FeatureGame.probe`` (rows of the method's choosing with scoped hooks on
  named modules: activations and gradients), ``FeatureGame.with_inputs`` (the same game on
  new inputs, evaluations reported to the parent), ``FeatureGame.compose`` /
  ``element_masks``, ``FeatureGame.input_gradients``; ``ComponentGame.probe_sites``,
  ``masked_activations``, ``graddrop_gradients``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..attribution import Attribution, Layout
from ..engine import Engine
from ..engine.progress import active_progress
from ..errors import InputError, UnsupportedModelError
from ..targets import Target

__all__ = ["VALUE_BLOCK_ELEMENTS", "Game", "ValueBlock", "batch_statistics_note", "distinct_coalitions"]

#: Mask elements (coalitions x players, times samples for per-sample masks) per block of
#: :meth:`Game.value_stream` / :meth:`Game.value` with ``max_elements``: float64 masks of at
#: most 64 MiB, whatever the number of coalitions a method asks for.
VALUE_BLOCK_ELEMENTS = 8 * 1024**2


@dataclass(frozen=True)
class ValueBlock:
    """One block of a :meth:`Game.value_stream`.

    Attributes:
        start, stop: the items ``start..stop-1`` of the stream this block covers.
        masks: the block's masks as built by ``make_masks`` (``K x players`` or
            ``batch x K x players``).
        values: ``batch x K x targets`` float64 CPU values of those masks.
    """

    start: int
    stop: int
    masks: torch.Tensor
    values: torch.Tensor


class Game(ABC):
    """Base class of feature, component and data games.

    Attributes:
        kind: ``"feature"``, ``"component"`` or ``"data"``.
        n_players: number of players.
        n_samples: number of input samples explained at once (``batch``).
        player_names: one label per player.
        engine: the engine that evaluates rows (counts ``n_rows``).
        target: the resolved target.
        layout: how flat values map back to the user's layout.
        differentiable: :meth:`value_and_grad` is available.
        baseline_given: the user gave the baseline (:func:`tribute.explain` sets it; False for
            games built otherwise). Methods that may ignore a default baseline read it.
    """

    kind: str = "feature"
    player_kind: str = "feature"
    differentiable: bool = False
    baseline_given: bool = False
    #: :meth:`value` evaluates a coalition that shared masks hold several times once and gives
    #: every copy its values (a game whose value of a coalition is a function of the coalition:
    #: feature and component games, and data games, whose retrain bank trains each subset once
    #: with one seed; not one that would draw anything anew per evaluation)
    distinct_coalitions: bool = False
    #: search for repeated coalitions also when there are no more of them than players (a
    #: data game, where each evaluation costs a retrained model's pass and the sort is free
    #: beside it); otherwise only ``K > players`` pays for the search (leave-one-out and
    #: occlusion ask for at most one coalition per player, all distinct)
    search_copies_always: bool = False

    def __init__(self, engine: Engine, target: Target, layout: Layout,
                 player_names: list[str], n_samples: int) -> None:
        self.engine = engine
        self.target = target
        self.layout = layout
        self.player_names = player_names
        self.n_samples = n_samples
        self.n_evals = 0
        self._full: torch.Tensor | None = None
        self._empty: torch.Tensor | None = None
        self._full_counted = False
        #: (parent game, derived samples per parent sample, the parent samples this game covers:
        #: None for all of them) of a game derived by ``with_inputs``
        self._report_to: tuple[Game, int, np.ndarray | None] | None = None
        #: evaluations per sample, kept once a view of some samples charged only those (else None)
        self._sample_evals: np.ndarray | None = None

    def _set_reference(self, full: torch.Tensor) -> None:
        """Store ``v(N)`` (``batch x targets``) from the construction-time reference pass.

        The pass has been paid for, so it is counted as one evaluation per input at once.
        """
        self._full = full
        if not self._full_counted:
            self.count_evals(1)
        self._full_counted = True

    def budget_left(self, budget: int) -> int:
        """Evaluations per input a method may still spend under ``budget`` (``v(N)`` is spent)."""
        return int(budget) - self.n_evals

    # ----------------------------------------------------------------- sizes
    @property
    def n_players(self) -> int:
        return len(self.player_names)

    @property
    def n_targets(self) -> int:
        return self.target.n_targets

    # --------------------------------------------------------------- values
    @abstractmethod
    def _evaluate(self, masks: torch.Tensor, shared: bool) -> torch.Tensor:
        """``batch x K x targets`` float64 CPU values for validated masks."""

    def _evaluate_grad(self, masks: torch.Tensor, shared: bool,
                       weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        raise UnsupportedModelError(
            f"{type(self).__name__}: this game is not differentiable (the model is not a torch "
            "module, or its inputs are integers); use a perturbation method instead."
        )

    def value(self, masks: torch.Tensor | np.ndarray, *,
              max_elements: int | None = None) -> torch.Tensor:
        """Value of each coalition for each sample.

        Args:
            masks: ``K x players`` (shared by all samples) or ``batch x K x players``.
            max_elements: when given, evaluate in blocks of at most this many mask elements
                (see :meth:`value_stream`); the result is the same. default=None (one call).

        A coalition that shared masks hold several times (drawn with replacement) is evaluated
        once and counted once when the game's :attr:`distinct_coalitions` says so (feature,
        component and data games), and every copy gets its values: ``n_evals`` and ``n_rows`` count
        the rows the model saw (a budget of ``K`` draws may then cost fewer evaluations).

        Returns:
            float64 CPU tensor ``batch x K x targets``.
        """
        m, shared = self.check_masks(masks)
        # more coalitions than players: drawn ones may repeat (leave-one-out and occlusion
        # windows ask for at most one per player, all distinct: they pay no search)
        if shared and self.distinct_coalitions and (m.shape[0] > m.shape[1]
                                                     or self.search_copies_always):
            once = distinct_coalitions(m)
            if once is not None:  # coalitions asked for twice: each runs once, counted once
                keep, inverse = once
                bar = active_progress()
                if bar is not None:  # the plan counted every copy's rows
                    bar.drop((int(m.shape[0]) - int(keep.numel())) * int(self.n_samples)
                             * int(getattr(self, "n_background", 1) or 1))
                return self._counted_value(m[keep], shared, max_elements)[:, inverse]
        return self._counted_value(m, shared, max_elements)

    def _counted_value(self, m: torch.Tensor, shared: bool, max_elements: int | None) -> torch.Tensor:
        """:meth:`value` of checked masks (in blocks of ``max_elements``), counted."""
        if max_elements is not None:
            k_total = int(m.shape[-2])
            step = self.block_items(per_sample=not shared, max_elements=max_elements)
            if k_total > step:
                def block(lo: int, hi: int) -> torch.Tensor:
                    return m[lo:hi] if shared else m[:, lo:hi]

                parts = [blk.values for blk in self.value_stream(k_total, block,
                                                                 per_sample=not shared,
                                                                 max_elements=max_elements)]
                return torch.cat(parts, dim=1)
        self.count_evals(int(m.shape[-2]))
        vals = self._evaluate(m, shared)
        self._keep_empty(m, vals)
        return vals

    def reference_pending(self) -> bool:
        """Whether ``v(N)`` is counted (one evaluation per input, as always) but its reference
        rows have not run yet: a feature game built without them runs them when its target,
        ``v(N)`` or any value is first asked for. False for other games."""
        return False

    # ------------------------------------------------------------- streaming
    def block_items(self, coalitions_per_item: int = 1, *, per_sample: bool = False,
                    max_elements: int | None = None) -> int:
        """Items per block of :meth:`value_stream` so that one block's masks stay bounded.

        Args:
            coalitions_per_item: coalitions each item expands to. default=1.
            per_sample: masks are ``batch x K x players`` (they then weigh ``batch`` times more).
            max_elements: mask elements per block. default=None (:data:`VALUE_BLOCK_ELEMENTS`).
        """
        budget = VALUE_BLOCK_ELEMENTS if max_elements is None else int(max_elements)
        if budget < 1:
            raise InputError(f"max_elements={max_elements!r} must be a positive int (mask elements per block).")
        per = max(1, int(coalitions_per_item)) * max(1, self.n_players)
        if per_sample:
            per *= max(1, self.n_samples)
        return max(1, budget // per)

    def value_stream(self, n_items: int, make_masks: Callable[[int, int], torch.Tensor], *,
                     coalitions_per_item: int = 1, per_sample: bool = False,
                     max_elements: int | None = None) -> Iterator[ValueBlock]:
        """Evaluate a huge set of coalitions in memory-bounded blocks, one block at a time.

        The one streaming path of the code base: methods and metrics that need more coalitions
        than fit in memory at once describe them as ``n_items`` items and build the masks of
        items ``lo..hi-1`` on demand; every block is evaluated with :meth:`value` (counted as
        usual) and handed back with its masks.

        Args:
            n_items: number of items (coalitions, windows, players...).
            make_masks: ``(lo, hi) -> masks`` for items ``lo..hi-1``: ``K x players`` (shared)
                or ``batch x K x players`` with ``K = (hi - lo) * coalitions_per_item``.
            coalitions_per_item: coalitions each item expands to (sizes the blocks). default=1.
            per_sample: ``make_masks`` returns per-sample masks (sizes the blocks). default=False.
            max_elements: mask elements per block. default=None (:data:`VALUE_BLOCK_ELEMENTS`).

        Yields:
            :class:`ValueBlock` ``(start, stop, masks, values batch x K x targets)`` in order.
        """
        step = self.block_items(coalitions_per_item, per_sample=per_sample,
                                max_elements=max_elements)
        for lo in range(0, int(n_items), step):
            hi = min(lo + step, int(n_items))
            masks = make_masks(lo, hi)
            yield ValueBlock(lo, hi, masks, self.value(masks))

    # -------------------------------------------------------------- counting
    def count_evals(self, n: int, samples: np.ndarray | None = None) -> None:
        """Add ``n`` evaluations per input to :attr:`n_evals` (games call this, never methods).

        A game made by :meth:`with_inputs`-style derivation reports into its parent: each of
        the parent's samples it derives from is charged ``n`` times the number of derived samples
        it owns. ``samples`` (ids of this game's samples) charges only those; :attr:`n_evals` is
        then the most any sample spent (small42b: per-sample views of a batch with different
        region counts summed their spends, 122 where the most any sample spent was 90).
        """
        n = int(n)
        own = getattr(self, "_sample_evals", None)
        if samples is None:
            self.n_evals += n
            if own is not None:
                own += n
        else:
            if own is None:
                own = self._sample_evals = np.full(self.n_samples, self.n_evals, dtype=np.int64)
            own[np.unique(np.asarray(samples, dtype=np.int64))] += n
            self.n_evals = int(own.max()) if own.size else self.n_evals
        report = getattr(self, "_report_to", None)
        if report is not None:
            parent, factor, ids = report
            # this game's samples as the parent's (ids: the parent sample of each of them)
            up = samples if ids is None else ids if samples is None else ids[np.asarray(samples, dtype=np.int64)]
            parent.count_evals(n * factor, up)

    def peek_full(self) -> torch.Tensor | None:
        """``v(all players)`` when already known (``batch x targets``), else None; never evaluates."""
        return None if self._full is None else self._full.clone()

    def peek_empty(self) -> torch.Tensor | None:
        """``v(no player)`` when already known (``batch x targets``), else None; never evaluates.

        Lets a method send the empty coalition along with its own (one engine run instead of
        two; :meth:`value` then caches it) only when it is not known yet.
        """
        return None if self._empty is None else self._empty.clone()

    def value_and_grad(self, masks: torch.Tensor | np.ndarray,
                       weights: torch.Tensor | np.ndarray | None = None,
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Values and gradients w.r.t. the (fractional) mask.

        Args:
            masks: ``K x players`` or ``batch x K x players``.
            weights: optional ``K`` weights; when given, gradients are summed over coalitions
                with these weights on the fly (``batch x targets x players``), which is what
                path methods need and keeps memory flat.

        Returns:
            ``(values batch x K x targets, grads)`` with grads ``batch x K x targets x players``
            or, with weights, ``batch x targets x players`` (float64, CPU).
        """
        m, shared = self.check_masks(masks)
        w = None
        if weights is not None:
            w = torch.as_tensor(np.asarray(weights) if not isinstance(weights, torch.Tensor)
                                else weights, dtype=torch.float64).flatten()
            if w.numel() != m.shape[-2]:
                raise InputError(
                    f"weights has {w.numel()} entries but masks has {m.shape[-2]} coalitions."
                )
        self.count_evals(int(m.shape[-2]))
        vals, grads = self._evaluate_grad(m, shared, w)
        self._keep_empty(m, vals)
        return vals, grads

    def full(self) -> torch.Tensor:
        """``v(all players)`` per sample, ``batch x targets`` (one evaluation, cached)."""
        if self._full is None:
            self._full = self.value(torch.ones(1, self.n_players))[:, 0]
        elif not self._full_counted:
            self.count_evals(1)
        self._full_counted = True
        return self._full

    def empty(self) -> torch.Tensor:
        """``v(no player)`` per sample, ``batch x targets`` (one evaluation, cached)."""
        if self._empty is None:
            # the one empty coalition straight to ``_evaluate``, counted as :meth:`value` counts
            # it: through ``value`` its ``_keep_empty`` found the empty coalition, cloned its
            # values and this line then replaced them (issue #9: ~50 us of an IG call on mlp13)
            m, _ = self.check_masks(torch.zeros(1, self.n_players))
            self.count_evals(1)
            self._empty = self._evaluate_empty(m)
        return self._empty

    def _evaluate_empty(self, masks: torch.Tensor) -> torch.Tensor:
        """``v(no player)`` (``batch x targets``) of validated ``1 x players`` zero masks,
        already counted; games with a cheaper route to the same rows override it."""
        return self._evaluate(masks, True)[:, 0]

    def _keep_empty(self, masks: torch.Tensor, vals: torch.Tensor) -> None:
        """Cache ``v(no player)`` when a method evaluated the empty coalition anyway.

        Costs no model rows; it lets :meth:`attribution` report ``base_values`` for every
        method whose coalitions include the empty one (exact enumeration, KernelSHAP, ...).
        """
        if self._empty is not None or masks.shape[-2] == 0:
            return
        some = masks.any(-1)  # (K,) shared or (batch, K) per sample: not the empty coalition
        if some.ndim == 2:
            some = some.any(0)
        if bool(some.all()):  # the common case: no empty coalition (one reduction)
            return
        hit = int((~some).nonzero()[0, 0])
        self._empty = vals[:, hit].detach().double().cpu().clone()

    def efficiency_gap(self, phi: torch.Tensor) -> torch.Tensor:
        """``sum(phi) - (v(all) - v(none))`` per sample and target (``batch x targets``)."""
        return phi.sum(-1) - (self.full() - self.empty())

    # --------------------------------------------------------------- errors
    @staticmethod
    def describe_rows(k_count: int, n_background: int = 1,
                      background_label: str = "background row") -> Callable[[int], str]:
        """Names row ``r`` of a ``samples x K x background`` table in engine error messages."""

        def describe(r: int) -> str:
            bk = r // n_background
            s = f"sample {bk // k_count}, coalition {bk % k_count}"
            return s + (f", {background_label} {r % n_background}" if n_background > 1 else "")

        return describe

    # --------------------------------------------------------------- checks
    def check_masks(self, masks: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, bool]:
        m = masks if isinstance(masks, torch.Tensor) else torch.as_tensor(np.asarray(masks))
        if m.dtype == torch.bool or not m.dtype.is_floating_point:
            m = m.to(torch.float64)
        n = self.n_players
        if m.ndim == 2 and m.shape[1] == n:
            return m, True
        if m.ndim == 3 and m.shape[0] == self.n_samples and m.shape[2] == n:
            return m, False
        raise InputError(
            f"masks has shape {tuple(m.shape)}; expected (coalitions, {n}) or "
            f"({self.n_samples}, coalitions, {n}) for {n} players and {self.n_samples} samples."
        )

    # --------------------------------------------------------------- result
    def attribution(self, values: torch.Tensor, method: str, params: dict[str, Any] | None = None,
                    *, stderr: torch.Tensor | None = None, gap: torch.Tensor | None = None,
                    extra: dict[str, Any] | None = None) -> Attribution:
        """Pack flat ``batch x targets x players`` credits into an :class:`Attribution`.

        ``full_values`` is ``v(all players)`` when the game has it cached (feature and component
        games get it from their reference pass, at no extra cost) and ``base_values`` is
        ``v(no player)`` when the method evaluated the empty coalition (directly, through
        :meth:`empty` or :meth:`efficiency_gap`); otherwise they stay None: no model rows
        are spent here beyond what the method asked for.
        """
        expected = (self.n_samples, self.n_targets, self.n_players)
        if tuple(values.shape) != expected:
            raise RuntimeError(f"{method}: values shape {tuple(values.shape)} != {expected}")
        gap_np, base_np, full_np = (self._per_sample(t) for t in (gap, self._empty, self._full))
        return Attribution(
            values=self.layout.to_user(values.detach()),
            stderr=None if stderr is None else self.layout.to_user(stderr.detach()),
            method=method,
            params=dict(params or {}),
            n_evals=self.n_evals,
            n_rows=self.engine.n_rows,
            player_names=list(self.player_names),
            player_kind=self.player_kind,
            targets=self.target.to_numpy(),
            gap=gap_np,
            base_values=base_np,
            full_values=full_np,
            index=getattr(self, "sample_index", None),
            groups=self.groups_array(),
            layout=self.layout,
            extra=self._result_extra(extra),
        )

    def _result_extra(self, extra: dict[str, Any] | None) -> dict[str, Any]:
        """The method's ``extra``, with ``per_sample_target`` where the target is one class per
        sample (``"predicted"``, a classifier's default, a label array): the result's frame then
        names each row's class whatever the classes turned out to be."""
        out = dict(extra or {})
        t = self.target
        if not t.multi and t.index is not None and t.names[:1] in (["predicted"], ["per-sample"]):
            out.setdefault("per_sample_target", True)
        return out

    def _per_sample(self, t: torch.Tensor | None) -> np.ndarray | None:
        """``batch x targets`` tensor -> numpy in the result's layout (``batch`` for one target)."""
        if t is None:
            return None
        a = t.detach().cpu().double().numpy()
        return a if self.layout.multi_target else a[:, 0]

    def groups_array(self) -> np.ndarray | None:
        """Element-to-player map for grouped feature games (None otherwise)."""
        return None


#: players -> the fixed random weights of :func:`distinct_coalitions`' keys (a few sizes kept)
_KEY_WEIGHTS: dict[int, torch.Tensor] = {}


def _key_weights(n: int) -> torch.Tensor:
    """``n`` float64 weights in [1, 2), the same for every call (seeded by ``n``): random, so
    that different 0/1 coalitions almost never share a sum (weights with integer relations
    between them, such as multiples of the golden ratio, made a third of 1,023 random
    coalitions of 13 players collide)."""
    w = _KEY_WEIGHTS.get(n)
    if w is None:
        if len(_KEY_WEIGHTS) >= 16:
            _KEY_WEIGHTS.clear()
        w = _KEY_WEIGHTS[n] = torch.rand(n, dtype=torch.float64,
                                         generator=torch.Generator().manual_seed(n)).add_(1.0)
    return w


def distinct_coalitions(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The coalitions of ``K x players`` masks that repeat an earlier one, found exactly.

    Sampling estimators draw coalitions with replacement (LIME, RISE, COAR, ReAgent, sampled
    Banzhaf values) or walk permutations whose prefixes repeat (permutation Shapley): on 13
    players 6-60% of their coalitions repeat one already drawn. Returns None when every
    coalition is distinct, else ``(keep, inverse)``: ``keep`` the index of each distinct
    coalition's first occurrence, in increasing order (the model sees the distinct rows in the
    order they were asked for), and ``inverse`` the position in ``keep`` of every coalition, so
    that ``masks[keep][inverse]`` equals ``masks`` element for element.

    One key per coalition (a weighted sum of its entries, fixed weights) and a sort of the keys
    find the candidates; the rows that share a key are then compared element by element, and a
    key shared by two different coalitions (or a NaN) merges nothing (None): only coalitions
    equal in every element are ever merged.
    """
    k, n = int(masks.shape[0]), int(masks.shape[1])
    if k < 2 or n == 0:
        return None
    m = masks.detach()
    if m.device.type != "cpu":
        m = m.cpu()
    w = _key_weights(n)
    # elementwise products summed along each row: the same operations for every row wherever
    # it sits (a matrix-vector product gave two equal coalitions of 300 players different keys)
    key = torch.empty(k, dtype=torch.float64)
    step = max(1, (1 << 20) // n)  # rows per slice: a bounded temporary (float64 per slice,
    for lo in range(0, k, step):  # never a float64 copy of all K x n masks)
        torch.sum(m[lo : lo + step].to(torch.float64) * w, dim=1, out=key[lo : lo + step])
    _, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), k, dtype=torch.long).scatter_reduce_(
        0, inverse, torch.arange(k), reduce="amin")
    u = int(first.numel())
    if u == k:
        return None
    src = first[inverse]
    # only the copies are compared with their first occurrence: a gather and compare of every
    # row made the search 8x slower (100k x 1,000 masks, 10% copies: 594 -> 75 ms, rev46e)
    again = torch.nonzero(src != torch.arange(k)).squeeze(1)
    if not torch.equal(m[again], m[src[again]]):
        return None  # a key shared by different coalitions, or NaN: merge nothing
    keep, order = torch.sort(first)  # distinct coalitions in the order first asked for
    rank = torch.empty(u, dtype=torch.long)
    rank[order] = torch.arange(u)
    return keep, rank[inverse]


def batch_statistics_note(model: Any) -> str | None:
    """A sentence naming the batch-norm layers of ``model`` (a torch module, or an adapter holding
    one) that normalise with the statistics of their batch in eval mode (no running statistics:
    ``track_running_stats=False``), or None. Their one-row failure ("Expected more than 1 value
    per channel") is no shape problem: a row's output depends on the rows batched with it."""
    module = model if isinstance(model, torch.nn.Module) else getattr(model, "module", None)
    if not isinstance(module, torch.nn.Module):
        return None
    found = [f"{type(m).__name__} {name!r}" for name, m in module.named_modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is None]
    if not found:
        return None
    return (f"{', '.join(found[:3])}{' ...' if len(found) > 3 else ''} normalise(s) with the "
            "statistics of its batch (track_running_stats=False): a row's output depends on the "
            "rows evaluated with it, and tribute batches rows freely (coalitions, chunks), so no "
            "credit is defined. Give the layer running statistics (track_running_stats=True, "
            "then train or calibrate it) or remove it.")


#: Messages of Python's call errors: the model's forward does not take the call tribute made.
_CALL_ERRORS = ("required positional argument", "required keyword-only argument",
                "unexpected keyword argument", "got multiple values for argument",
                "positional argument but", "positional arguments but")


def _raised_inside(model: Any, text: str, kwargs: Any) -> bool:
    """A call error whose callee (``helper() takes 1 positional argument but 2 were given``)
    is not the model itself: a bug inside the model's code, not the call tribute made (review
    rev51a: it was sent to ``forward_args=`` / ``forward_kwargs=``). Python names the callee by
    its qualified name (``_Scaled.forward()``, a decorated forward keeps its name); a
    submodule's forward counts as the model's where the error names a keyword passed in
    ``forward_kwargs`` (a wrapper handing them on)."""
    match = re.match(r"([\w.<>]+)\(\) ", text)
    if match is None:
        return False  # not Python's binding message: no decision, keep the call note
    callee = match.group(1)
    fn = getattr(model, "fn", model)
    module = model if isinstance(model, torch.nn.Module) else getattr(model, "module", None)
    own = {str(getattr(fn, "__qualname__", "")), str(getattr(type(fn).__call__, "__qualname__", ""))}
    if isinstance(module, torch.nn.Module):
        own.add(str(getattr(type(module).forward, "__qualname__", "")))
        if any(f"argument '{k}'" in text for k in (kwargs or {})):
            own.update(str(getattr(type(m).forward, "__qualname__", "")) for m in module.modules())
    return callee not in own


def is_call_error(model: Any, exc: BaseException, kwargs: Any = None) -> bool:
    """``exc`` says the model itself does not take the call tribute made (a missing or
    unexpected argument of its forward), not an error raised inside its code."""
    text = str(exc)
    return (isinstance(exc, TypeError) and any(s in text for s in _CALL_ERRORS)
            and not _raised_inside(model, text, kwargs))


def one_dimensional_note(n: int, what: str = "inputs") -> str:
    """The hint for a first pass that failed on 1-D inputs (every input one number per row):
    both readings of ``n`` numbers (aud51g: ``X[0]`` of a table is one sample missing its batch
    axis; rev51g: a one-feature model wants a feature axis instead). The feature and the
    component game give it (rev51z: the component game gave none)."""
    noun = "input" if what == "inputs" else what
    return (f"The {noun} is 1-D, read as {n} samples of one number each: if it is one sample of {n} "
            f"features, give it a batch axis: X[None] (or X.reshape(1, -1)); if it is {n} samples of "
            "one feature, give it a feature axis: X[:, None] (or X.reshape(-1, 1)).")


def model_failure_note(model: Any, exc: BaseException, inputs: Any, *, what: str = "inputs",
                       kwargs: Any = None, n_args: int = 0) -> str:
    """The sentence that follows "the model failed on the {what}: {exc}." in a first-pass
    error: what to fix, read from the error and the inputs.

    A call error (aud51a: a missing forward keyword got "Check that the inputs have the shape and
    dtype the model expects", which sends the user to the wrong argument) names the call made
    and ``forward_args=`` / ``forward_kwargs=``; an ``IndexError`` on integer inputs (an
    out-of-vocabulary token id, a raw ``IndexError: index out of range in self`` before) names
    the ids' range and the embeddings' sizes; another ``IndexError`` or a call error inside the
    model's code says so. Those read the error itself; a batch norm without running statistics
    (:func:`batch_statistics_note`) is named for the other failures (rev51z: it was named first,
    also for a missing forward argument or an out-of-vocabulary id of a model that has one);
    otherwise the shape / dtype hint."""
    text = str(exc)
    if is_call_error(model, exc, kwargs):
        names = sorted(str(k) for k in (kwargs or {}))
        return (f"The model's forward does not accept the call made: {len(list(inputs))} input tensor(s) as its "
                f"first positional arguments, {n_args} forward_args after them and keyword arguments "
                f"{names if names else 'none'}. Pass what forward() needs and the inputs do not hold with "
                "forward_args=(...) / forward_kwargs={...} (e.g. forward_kwargs={'attention_mask': mask}), "
                "or drop the ones it does not take.")
    if isinstance(exc, IndexError):
        module = model if isinstance(model, torch.nn.Module) else getattr(model, "module", None)
        sizes = ({name or "the model": int(m.num_embeddings) for name, m in module.named_modules()
                  if isinstance(m, torch.nn.Embedding)} if isinstance(module, torch.nn.Module) else {})
        ids = [t for t in inputs if isinstance(t, torch.Tensor) and not t.dtype.is_floating_point
               and not t.dtype.is_complex and t.dtype != torch.bool and t.numel()]
        lo, hi = (min(int(t.min()) for t in ids), max(int(t.max()) for t in ids)) if ids else (0, 0)
        # an id story only where it is one (review rev51a: uint8 images on a model with no
        # embedding, or ids inside every table, were told "an out-of-vocabulary token id"):
        # the model has embeddings and an id falls outside one of them, or no embedding but
        # torch's lookup message (F.embedding / index_select on a table of the model's own)
        if ids and ((sizes and (lo < 0 or hi >= min(sizes.values())))
                    or (not sizes and "index out of range in self" in text)):
            where = (f"the model's embeddings have {', '.join(f'{k!r}: {v}' for k, v in sizes.items())} rows"
                     if sizes else "the model indexes a table with them")
            return (f"The integer inputs hold ids from {lo} to {hi}; {where}, so an id below 0 or at or "
                    "above a table's size is out of range (an out-of-vocabulary token id). Check that the "
                    "ids come from this model's tokenizer (its vocabulary size) and hold no padding value "
                    "such as -100.")
    if isinstance(exc, IndexError):
        return f"An index in the model's forward is out of range for these {what}: check their shape."
    if isinstance(exc, TypeError) and any(s in text for s in _CALL_ERRORS):
        return (f"It was raised inside the model's own code ({text.split('(', 1)[0]}() was called with "
                f"arguments it does not take), not by the call tribute made: check that the {what} have "
                "the shape and dtype the model expects, or the model's code.")
    note = batch_statistics_note(model)
    if note is not None:
        return note
    return f"Check that the {what} have the shape and dtype the model expects."
