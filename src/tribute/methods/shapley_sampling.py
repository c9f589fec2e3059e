"""Sampling estimators of Shapley values: KernelSHAP and antithetic permutation sampling.

Both draw their coalitions once per call and share them across the samples of a batch (common
random numbers), evaluate them in one or a few ``game.value`` calls, and report standard
errors.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..attribution import Attribution
from ..games.base import Game
from ..params import NONE, Interval, Options, declare
from ._blocks import block_bounds
from ._stderr import inflate, inflate_welch, warn_undefined
from .base import Cost, Method, Tags, coalition_cost, register
from .exact import MAX_PLAYERS, shapley_from_table, value_table

__all__ = ["KernelShap", "PermutationShapley", "clear_design_cache", "kernel_shap_design",
           "solve_constrained"]


# ----------------------------------------------------------------------------- design
def _size_mass(n: int) -> np.ndarray:
    """Shapley-kernel probability of each coalition size ``s = 1..n-1`` (index ``s``)."""
    if n < 2:  # no proper coalition sizes
        return np.zeros(n + 1)
    s = np.arange(n + 1, dtype=np.float64)
    mass = np.zeros(n + 1)
    mass[1:n] = (n - 1) / (s[1:n] * (n - s[1:n]))
    return np.asarray(mass / mass.sum())


def _random_subsets(n: int, size: int, count: int, gen: np.random.Generator) -> np.ndarray:
    """``count`` distinct uniformly random subsets of ``size`` players (binary ``count x n``).

    Drawn without replacement (duplicates rejected), which is what makes the stratum mean
    below unbiased with lower variance than sampling with replacement.
    """
    total = math.comb(n, size)
    count = min(count, total)
    if total <= 4 * count and total <= 200_000:
        # Small stratum: enumerate and pick without replacement.
        combos = np.array(list(_combinations(n, size)), dtype=np.int64).reshape(-1, size)
        pick = gen.choice(total, size=count, replace=False)
        out = np.zeros((count, n))
        np.put_along_axis(out, combos[pick], 1.0, axis=1)
        return out
    seen: np.ndarray | None = None  # codes of the rows kept in earlier rounds
    rows: list[np.ndarray] = []
    got = 0
    while got < count:
        keys = gen.random((2 * (count - got) + 8, n)).argsort(axis=1)[:, :size]
        batch = np.zeros((len(keys), n))
        np.put_along_axis(batch, keys, 1.0, axis=1)
        code = _subset_codes(batch, keys)
        # the first occurrence of each subset, in draw order, unless an earlier round had it
        _, first = np.unique(code, return_index=True)
        first.sort()
        if seen is not None:
            first = first[~np.isin(code[first], seen)]
        fresh = first[: count - got]
        rows.append(batch[fresh])
        got += len(fresh)
        if got < count:  # another round follows: it must not repeat these
            seen = code[fresh] if seen is None else np.concatenate([seen, code[fresh]])
    return np.concatenate(rows)


def _subset_codes(batch: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """One comparable code per row of a binary ``rows x n`` matrix (its members ``keys``).

    A bitmask integer for ``n <= 62``, else the packed bits as one opaque byte string.
    """
    n = batch.shape[1]
    if n <= 62:
        return np.asarray(np.bitwise_or.reduce(np.left_shift(np.int64(1), keys.astype(np.int64)), axis=1))
    packed = np.ascontiguousarray(np.packbits(batch.astype(bool), axis=1))
    return packed.view(np.dtype((np.void, packed.shape[1]))).ravel()


def _combinations(n: int, k: int):  # type: ignore[no-untyped-def]
    import itertools

    return itertools.combinations(range(n), k)


def _design_plan(n: int, n_coalitions: int, allocation: str,
                 ) -> tuple[list[int], list[tuple[int, int, float]]]:
    """The deterministic part of :func:`kernel_shap_design`: the coalition sizes enumerated
    whole, and for each sampled size pair ``(size, pairs drawn, kernel mass of the pair)``."""
    mass = _size_mass(n)
    enumerated: list[int] = []
    left = n_coalitions
    s = 1
    # 1) enumerate a whole size pair when kernel-proportional sampling of the remaining budget
    #    would already spend at least its size on it (the shap package's rule): enumerating
    #    then removes that stratum's variance without starving the middle sizes.
    while s <= n - s:
        pair = [s] if s == n - s else [s, n - s]
        count = sum(math.comb(n, t) for t in pair)
        rest = mass[s : n - s + 1].sum()
        share = sum(mass[t] for t in pair) / rest if rest > 0 else 1.0
        if count > left or left * share < count:
            break
        enumerated.extend(pair)
        left -= count
        s += 1
    plan: list[tuple[int, int, float]] = []
    sizes = [t for t in range(s, n - s + 1)]
    if sizes and left >= 2:
        # 2) stratified paired sampling over the remaining sizes s..n-s
        lows = [t for t in sizes if t <= n - t]
        if allocation == "uniform":
            share_of = np.array([1.0 for _ in lows])
        else:
            share_of = np.array([mass[t] + (mass[n - t] if t != n - t else 0.0) for t in lows])
        share_of = share_of / share_of.sum()
        n_pairs_total = left // 2
        alloc = np.floor(share_of * n_pairs_total).astype(int)
        # hand out the remainder by largest fractional part
        rem = n_pairs_total - alloc.sum()
        order = np.argsort(-(share_of * n_pairs_total - alloc))
        alloc[order[:rem]] += 1
        for t, k in zip(lows, alloc):
            if k > 0:  # subsets of size t (pairs: half of them at n/2), counted only up to k
                avail = _comb_capped(n, t, int(k)) if t != n - t else _comb_capped(n, t, 2 * int(k)) // 2
                plan.append((t, int(min(k, avail)), mass[t] + (mass[n - t] if t != n - t else 0.0)))
    return enumerated, plan


def _comb_capped(n: int, t: int, cap: int) -> int:
    """``min(C(n, t), cap)`` without the whole binomial: C(150528, 75264) has 45,000 digits,
    and planning a 224x224 image computed one per coalition size (minutes)."""
    t = min(t, n - t)
    c = 1
    for i in range(t):
        c = c * (n - i) // (i + 1)  # C(n, i + 1), exact at every step
        if c >= cap:
            return cap
    return min(c, cap)


def kernel_shap_design_rows(n: int, n_coalitions: int, allocation: str = "kernel") -> int:
    """How many coalitions :func:`kernel_shap_design` returns (at most ``n_coalitions``: an odd
    remainder, or a size with fewer subsets than its share, is not spent), without drawing."""
    enumerated, plan = _design_plan(n, n_coalitions, allocation)
    return sum(math.comb(n, t) for t in enumerated) + 2 * sum(k for _, k, _ in plan)


def kernel_shap_design(n: int, n_coalitions: int, seed: int, allocation: str = "kernel",
                       ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int, float]]]:
    """Coalitions and regression weights for KernelSHAP with ``n_coalitions`` evaluations.

    Whole coalition sizes are enumerated in complementary pairs ``(s, n-s)``, the smallest
    first (they carry the most kernel weight), as long as kernel-proportional sampling of the
    remaining budget would spend at least that many evaluations on them; the remaining sizes
    are stratified: each size gets a number of paired draws (sampled without replacement),
    and each draw is weighted by its size's kernel mass over the number of draws.

    Returns:
        ``(masks K x n, weights K, strata)`` where ``strata`` lists, for each sampled size
        pair, ``(start_row, n_pairs, mass)`` — used for the standard errors.
    """
    mass = _size_mass(n)
    gen = np.random.default_rng(seed)
    enumerated, plan = _design_plan(n, n_coalitions, allocation)
    rows: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for t in enumerated:
        combos = all_coalitions_of_size(n, t)
        rows.append(combos)
        weights.append(np.full(len(combos), mass[t] / len(combos)))
    strata: list[tuple[int, int, float]] = []
    if plan:
        start = sum(len(r) for r in rows)
        fixed_rows, fixed_w = rows, weights
        # 3) a draw that leaves the standard errors undefined (a rank-deficient design, or a
        #    sampled pair no other pair can predict: leverage 1) is drawn again, from the same
        #    generator, at budgets where the standard errors are promised (at least
        #    _MIN_DOF residual degrees of freedom); the first acceptable draw is kept, so a
        #    design that was acceptable at once is unchanged.
        promised = (start // 2 + sum(k for _, k, _ in plan)) - (n - 1) >= _MIN_DOF
        for attempt in range(_REDRAWS if promised else 1):
            rows, weights = list(fixed_rows), list(fixed_w)
            strata = []
            at = start
            for t, k, m_pair in plan:
                sub = _random_subsets(n, t, k, gen) if t != n - t else _half_subsets(n, t, k, gen)
                comp = 1.0 - sub
                both = np.concatenate([sub, comp])
                rows.append(both)
                weights.append(np.full(2 * k, m_pair / (2 * k)))
                strata.append((at, k, m_pair))
                at += 2 * k
            if not promised or attempt == _REDRAWS - 1:
                break
            m_try = torch.from_numpy(np.concatenate(rows))
            w_try = torch.from_numpy(np.concatenate(weights))
            if _design_defect(m_try, w_try, strata, _kkt_inverse(m_try, w_try)[:n, :n]) is None:
                break
    masks = torch.from_numpy(np.concatenate(rows)) if rows else torch.zeros(0, n, dtype=torch.float64)
    w = torch.from_numpy(np.concatenate(weights)) if weights else torch.zeros(0, dtype=torch.float64)
    return masks, w, strata


def _half_subsets(n: int, t: int, k: int, gen: np.random.Generator) -> np.ndarray:
    """Subsets of size ``n/2`` drawn so that no subset and its complement are both chosen."""
    sub = _random_subsets(n, t, min(2 * k, math.comb(n, t)), gen)
    keep, seen = [], set()
    for row in sub:
        key = np.packbits(row.astype(bool)).tobytes()
        ckey = np.packbits((1 - row).astype(bool)).tobytes()
        if key in seen or ckey in seen:
            continue
        seen.add(key)
        keep.append(row)
        if len(keep) == k:
            break
    return np.stack(keep)


def all_coalitions_of_size(n: int, size: int) -> np.ndarray:
    combos = np.array(list(_combinations(n, size)), dtype=np.int64).reshape(-1, size)
    out = np.zeros((len(combos), n))
    np.put_along_axis(out, combos, 1.0, axis=1)
    return out


# Designs depend only on (n, coalitions, seed, allocation): a process explaining batch after
# batch with one seed draws each design once. Kept for small designs only (at most
# _CACHE_ELEMENTS mask entries each, _CACHE_SIZE designs), together with everything the solve
# and the standard errors derive from the design alone (computed by the same operations in
# the same order as without the cache: results are bit-identical). Never handed out: the
# public ``kernel_shap_design`` draws afresh.
_CACHE_SIZE, _CACHE_ELEMENTS = 8, 1 << 20
_DESIGNS: OrderedDict[tuple[int, int, int, str], _Design] = OrderedDict()
_LOCK = threading.Lock()


@dataclass
class _Design:
    masks: torch.Tensor
    w: torch.Tensor
    strata: list[tuple[int, int, float]]
    parts: dict[str, Any] = field(default_factory=dict)


def _cached_design(n: int, n_coalitions: int, seed: int, allocation: str) -> _Design:
    key = (int(n), int(n_coalitions), int(seed), str(allocation))
    with _LOCK:
        hit = _DESIGNS.get(key)
        if hit is not None:
            _DESIGNS.move_to_end(key)
            return hit
    d = _Design(*kernel_shap_design(n, n_coalitions, seed, allocation))
    if d.masks.numel() <= _CACHE_ELEMENTS:
        with _LOCK:
            _DESIGNS[key] = d
            while len(_DESIGNS) > _CACHE_SIZE:
                _DESIGNS.popitem(last=False)
    return d


def clear_design_cache() -> None:
    """Forget the cached KernelSHAP designs (benchmarks of cold calls, tests)."""
    with _LOCK:
        _DESIGNS.clear()


def _parts_of(masks: torch.Tensor, weights: torch.Tensor) -> dict[str, Any] | None:
    """The cache slot of a design held in the cache (``masks``/``weights`` its very tensors)."""
    with _LOCK:
        for d in _DESIGNS.values():
            if d.masks is masks and d.w is weights:
                return d.parts
    return None


def _kkt_parts(masks: torch.Tensor, weights: torch.Tensor,
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(Z W, G, to_delta)`` of the constrained fit (they depend on the design alone)."""
    parts = _parts_of(masks, weights)
    if parts is not None and "kkt" in parts:
        return parts["kkt"]  # type: ignore[no-any-return]
    n = masks.shape[1]
    zw = masks * weights[:, None]
    kkt_inv = _kkt_inverse(masks, weights)
    out = (zw, kkt_inv[:n, :n], kkt_inv[:n, n])  # G: moment vector b -> phi
    if parts is not None:
        parts["kkt"] = out
    return out


def _kkt_inverse(masks: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Pseudo-inverse of the bordered matrix ``[[Z' W Z, 1], [1', 0]]`` (``(n+1) x (n+1)``).

    The KKT system ``[[A, 1], [1^T, 0]] [phi; lam] = [b; delta]`` keeps the constraint exact,
    also when ``A`` is rank-deficient (small budgets).
    """
    n = masks.shape[1]
    a = (masks * weights[:, None]).T @ masks  # n x n
    kkt = torch.zeros(n + 1, n + 1, dtype=a.dtype)
    kkt[:n, :n] = a
    kkt[:n, n] = 1.0
    kkt[n, :n] = 1.0
    inv: torch.Tensor = torch.linalg.pinv(kkt, hermitian=True)
    return inv


def solve_constrained(masks: torch.Tensor, weights: torch.Tensor, y: torch.Tensor,
                      delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted least squares ``min sum_k w_k (y_k - z_k . phi)^2`` s.t. ``sum(phi) = delta``.

    Solved exactly with a Lagrange multiplier (no penalty weight). ``y`` is ``B x K x T``,
    ``delta`` ``B x T``; returns ``(phi B x T x n, G n x n)`` where ``G`` maps the moment
    vector ``b = Z^T W y`` to ``phi`` (for the standard errors).
    """
    zw, proj, to_delta = _kkt_parts(masks, weights)
    b = torch.einsum("kn,bkt->btn", zw, y)
    phi = b @ proj.T + to_delta[None, None, :] * delta[..., None]
    return phi, proj


# ----------------------------------------------------------------------------- KernelSHAP
def _kernel_budget(n: int) -> int:
    """:meth:`KernelShap.default_budget` for ``n`` players."""
    return int(min(2**n if n < 30 else 2**30, 2 * n + 2048))


def _first_round(n: int, n_coal: int) -> int:
    """Coalitions of ``KernelShap._rounds``' first round (``target_precision``)."""
    return min(n_coal, max(2 * n + 64, n_coal // 8))


@register
class KernelShap(Method):
    """KernelSHAP: Shapley values as the solution of a weighted linear regression.

    The Shapley kernel weights coalitions; whole coalition sizes are enumerated in pairs
    ``(s, n-s)`` while the budget allows (the smallest sizes first, as in the shap package);
    the remaining sizes are sampled in complementary pairs (Covert & Lee 2021), stratified by
    size and without replacement; the efficiency constraint ``sum(phi) = v(N) - v(empty)`` is
    solved exactly (Lagrange multiplier). With a budget of ``2^n`` it returns exact Shapley
    values.

    Args:
        allocation: how sampled pairs are spread over the remaining sizes: ``"kernel"``
            (proportional to the Shapley-kernel mass) or ``"uniform"`` (equal per size, the
            leverage-score allocation of Musco & Witter 2024). default="kernel".
        target_precision: if set, sample in rounds and stop as soon as every standard error is
            below it (never past the budget). default=None.

    Standard errors: the regression matrix is held fixed and the moment vector's variance is
    estimated from the spread of the sampled pairs within each size stratum (enumerated sizes
    contribute none); this is the delta-method reading of Covert & Lee's variance estimate,
    with leverage-corrected (HC4) residuals, pooling and a Student-t factor for small budgets.
    Whether they exist depends on ``(n, budget)`` alone, never on the seed: below
    ``budget = 2n + 6`` (fewer than 3 residual degrees of freedom: ``pairs - (n - 1) < 3``)
    a design with sampled pairs reports NaN with a :class:`StderrWarning` naming that budget;
    from there on a draw that would leave them undefined (a rank-deficient design, or a pair
    no other pair predicts, leverage 1: 81% of draws at 10 players and budget 26) is redrawn
    from the same generator (an acceptable first draw is kept unchanged). Exact budgets
    (``2^n``) report 0. Residual-based standard errors cannot see a higher-order interaction
    that the few sampled pairs happen to fit exactly (a three-way term aliased with the main
    effects: all residuals 0, errors not; 14% of seeds at 10 players and budget 26, 2% at
    40, none measured from 5n on). So below ``budget = 6n``, a (sample, target) whose
    residual energy is below ``1e-3`` of the spread of its pair sums ``v(z) + v(1 - z)`` (not
    constant: the game is not additive) gets NaN with a :class:`StderrWarning` naming ``6n``;
    this includes games whose interactions are all pairwise, which the paired fit recovers
    exactly. An additive game keeps its zero standard errors.

    References: Lundberg & Lee (2017), "A Unified Approach to Interpreting Model Predictions";
    Covert & Lee (2021), "Improving KernelSHAP: Practical Shapley Value Estimation via Linear
    Regression".
    """

    name = "kernel_shap"
    tags = Tags(family="shapley", stochastic=True, has_gap=True, budgeted=True,
                games=("feature", "component", "data"))
    paper = "Lundberg & Lee (2017); Covert & Lee (2021), Improving KernelSHAP"
    constraints = declare({"allocation": Options(("kernel", "uniform")),
                           "target_precision": (NONE, Interval(float, 0.0, None, closed="neither"))})

    def __init__(self, allocation: str = "kernel", target_precision: float | None = None) -> None:
        self.allocation = allocation
        self.target_precision = target_precision

    def min_budget(self, game: Game) -> int:
        return game.n_players + 2

    def default_budget(self, game: Game) -> int:
        return _kernel_budget(game.n_players)

    def exact_at(self, n_players: int, budget: int | None) -> bool:
        # budget - 2 proper coalitions cover all 2^n - 2 of them. With target_precision the
        # rounds may stop on a partial design, unless the first round already holds every
        # coalition (it then stops there, exact): alone, a 3- or 5-word text got its exact values
        # that way, in a 9/3/5 batch sampled ones, 6e-4 / 2.9e-3 off at budget 300 (aud51e)
        n = int(n_players)
        k = budget if budget is not None else _kernel_budget(n)
        if k < 2**n:
            return False
        return self.target_precision is None or _first_round(n, k - 2) >= 2**n - 2

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        n = game.n_players
        budget = budget if budget is not None else self.default_budget(game)
        v_full = game.full()
        n_coal = budget - 2
        if self.target_precision is None:
            design = _cached_design(n, n_coal, seed, self.allocation)
            masks, w, strata = design.masks, design.w, design.strata
            if game.peek_empty() is None:  # v(empty) rides along: one engine run, same count
                vals = game.value(torch.cat([torch.zeros(1, n, dtype=masks.dtype), masks]))
                v_empty, first = vals[:, 0], 1
            else:
                v_empty = game.empty()
                vals, first = game.value(masks), 0
            delta = v_full - v_empty
            phi, stderr = _solve_blocks(masks, w, strata, vals, first, v_empty, delta)
        else:
            v_empty = game.empty()
            delta = v_full - v_empty
            masks, w, strata, y = self._rounds(game, n_coal, seed, v_empty, delta)
            phi, proj = solve_constrained(masks, w, y, delta)
            stderr = _stderr(masks, w, y, strata, proj, phi)
        gap = phi.sum(-1) - delta
        return game.attribution(phi, self.name, self.get_params(), stderr=stderr, gap=gap,
                                extra={"n_coalitions": int(masks.shape[0])})

    def _rounds(self, game: Game, n_coal: int, seed: int, v_empty: torch.Tensor,
                delta: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int, float]], torch.Tensor]:
        """Grow the design in rounds until the standard errors meet ``target_precision``.

        Each round draws a design twice as large (same seed); coalitions already evaluated are
        reused, and a round whose new coalitions would exceed the budget is not run.
        """
        assert self.target_precision is not None
        n = game.n_players
        size = _first_round(n, n_coal)
        cache: dict[bytes, torch.Tensor] = {}
        best: tuple[torch.Tensor, torch.Tensor, list[tuple[int, int, float]], torch.Tensor] | None = None
        while True:
            masks, w, strata = kernel_shap_design(n, size, seed, self.allocation)
            keys = [np.packbits(r.numpy().astype(bool)).tobytes() for r in masks]
            new = sorted({i for i, k in enumerate(keys) if k not in cache})
            if best is not None and len(cache) + len(new) > n_coal:
                return best
            if new:
                vals = game.value(masks[new]) - v_empty[:, None, :]
                for j, i in enumerate(new):
                    cache[keys[i]] = vals[:, j]
            # one player has no proper coalition: an empty design (phi = delta by efficiency)
            y = torch.stack([cache[k] for k in keys], dim=1) if keys else \
                v_empty.new_zeros(v_empty.shape[0], 0, v_empty.shape[1])
            best = (masks, w, strata, y)
            phi, proj = solve_constrained(masks, w, y, delta)
            se = _stderr(masks, w, y, strata, proj, phi, warn=False)
            if float(se.max()) < self.target_precision or size >= n_coal:
                return best
            size = min(n_coal, size * 2)

    budget_rule = "min(2^n, 2n + 2048)"

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """The ``K x n`` design and its weighted copy, the ``(n+1)^2`` KKT matrix and its
        pseudo-inverse, and the per-pair moments of the standard errors (``batch x pairs x
        targets x n`` per size stratum)."""
        n = int(game.n_players)
        k = max(int(budget if budget is not None else self.default_budget(game)) - 2, 0)
        if self.target_precision is None:  # the design's own size: an odd remainder is not spent
            k = kernel_shap_design_rows(n, k, self.allocation)
        elif n < 63:
            k = min(k, 2**n - 2)  # the rounds evaluate distinct proper coalitions only
        b, t = int(game.n_samples), int(game.n_targets)
        # the solve and the standard errors run over blocks of samples (_solve_blocks; the
        # rounds of target_precision solve all at once): a block's responses, pair differences
        # and residuals (blk x k x t) and its moments (blk x t x n), plus the k x n weighted
        # design and per-pair maps
        blk = b if self.target_precision is not None else \
            min(b, max(_MIN_BLOCK, _BLOCK_BYTES // (8 * max(k, 1) * max(t, 1))))
        design = 4 * k * n * 8 + 3 * blk * k * t * 8 + 4 * blk * t * n * 8
        # k sampled coalitions plus the two it always evaluates, v(N) and v(empty)
        return coalition_cost(game, k + 2, design=design,
                              solve=6 * (n + 1) ** 2 * 8, flops=float(2 * k * n * n + 10 * n**3),
                              note=f"a {k:,} x {n:,} design and {n + 1:,}^2 KKT matrices")


def _stderr(masks: torch.Tensor, w: torch.Tensor, y: torch.Tensor,
            strata: list[tuple[int, int, float]], proj: torch.Tensor,
            phi: torch.Tensor, warn: bool = True,
            blind_out: list[int] | None = None) -> torch.Tensor:
    """Standard errors of phi from the sampled complementary pairs (``B x T x n``).

    Over complementary pairs ``(z, 1 - z)`` the constrained KernelSHAP fit is a regression of
    ``d = v(z) - v(1 - z)`` on ``s = 2 z - 1`` (the pair's even part drops out, see
    ``_shapley_common``); a sampled pair ``j`` moves ``phi`` by ``psi_j = w_j G z_j e_j`` with
    ``e_j = d_j - phi . s_j`` its residual and ``G`` the fit's moment-to-phi map. The variance
    of the stratified, without-replacement total of ``psi`` is
    ``sum_h (1 - m_h/N_h) m_h var_h(psi)``; enumerated sizes contribute nothing and strata with
    a single sampled pair are pooled (their ``psi^2`` uncentred: conservative).

    Small budgets: the residuals are leverage-corrected, ``e_j / (1 - h_j)^(delta_j / 2)`` with
    ``h_j = w_j s_j' G s_j / 2`` and ``delta_j = min(4, h_j / mean(h))`` (HC4, Cribari-Neto
    2004: HC2 for ordinary pairs, stronger than the jackknife's HC3 for high-leverage ones;
    in-sample residuals of a nearly saturated fit are far too small), the variances are pooled towards the other
    players' and t-inflated (:mod:`._stderr`) with the Welch-Satterthwaite degrees of freedom of the stratified
    sum, ``(sum_h V_h)^2 / sum_h V_h^2 / nu_h`` per sample, target and player (a single-pair stratum: 1),
    at most the fit's ``pairs - (n - 1)``: the variance is estimated from the sampled strata only, so pairs of
    enumerated or exhaustively sampled sizes add residual dof but no information about it (at 6 players,
    budget 24: 6 residual dof, ~3 effective; +-1.96 se covered 0.87 with the former, 0.95 now). A stratum's
    ``nu_h`` is that of its weighted sum of squared residuals, ``tr(Q)^2 / tr(Q^2)``
    (:func:`_stratum_spread`; Bell & McCaffrey 2002), not ``m_h - 1``: the pairs holding a player on the
    small side of a size weigh most, so fewer pairs inform its variance (``m_h - 1`` covered 0.93 at
    budgets 48 and 64 on 8-player MLP and ridge data games, 200 seeds; 0.94-0.95 now).
    When the pairs cannot identify ``phi`` (rank-deficient design, or a pair with leverage 1)
    the standard errors are NaN with a :class:`StderrWarning`.
    """
    b_count, _, t_count = y.shape
    n = masks.shape[1]
    nan = torch.full((b_count, t_count, n), float("nan"), dtype=torch.float64)
    parts = _parts_of(masks, w)
    plan = parts.get("stderr") if parts is not None and parts.get("proj") is proj else None
    if plan is None:
        plan = _stderr_plan(masks, w, strata, proj)
        if parts is not None:
            parts["stderr"], parts["proj"] = plan, proj
    _pairs, dof, steps, undefined = plan
    if undefined is not None:
        if warn:
            warn_undefined("kernel_shap", *undefined)
        return nan
    if not steps:  # every coalition enumerated (1 or 2 players: no residual dof, nothing sampled)
        return torch.zeros(b_count, t_count, n, dtype=torch.float64)
    var = torch.zeros(b_count, t_count, n, dtype=torch.float64)
    welch = torch.zeros(b_count, t_count, n, dtype=torch.float64)  # sum_h V_h^2 / nu_h
    singles: list[torch.Tensor] = []
    rss = torch.zeros(b_count, t_count, dtype=torch.float64)  # odd residual energy
    sums: list[torch.Tensor] = []  # pair sums v(z) + v(1 - z): the even half
    for start, k, s_pm, scale, a, a2, fpc, spread in steps:
        d = y[:, start : start + k] - y[:, start + k : start + 2 * k]  # B x k x T
        e = d - torch.einsum("kn,btn->bkt", s_pm, phi)
        rss += (e * e).sum(1)
        sums.append(y[:, start : start + k] + y[:, start + k : start + 2 * k])
        e = e / scale
        # psi_j = a_j e_j (a_j = w_j G z_j, k x n): its variance over the k pairs from the two
        # moments sum_j a_j e_j and sum_j a_j^2 e_j^2 (two matrix products; the B x k x T x n
        # psi is never built). The mean of psi is ~0 (the residuals are orthogonal to the
        # design), so the moment form loses no precision.
        if k >= 2:
            s1 = torch.einsum("kn,bkt->btn", a, e)
            s2 = torch.einsum("kn,bkt->btn", a2, e * e)
            part = fpc * k * ((s2 - s1 * s1 / k) / (k - 1)).clamp(min=0.0)
            var += part
            welch += part * part * spread
        else:
            singles.append(fpc * (a[0][None, None, :] * e[:, 0, :, None]) ** 2)
    for sq in singles:
        var += sq
        welch += sq * sq
    se = _inflate_welch(var, welch, dof)
    blind = _blind(rss, sums, masks.shape[0] + 2, n)
    if blind is not None:
        se[blind] = float("nan")
        if blind_out is not None:
            blind_out.append(int(blind.sum()))
        elif warn:
            _warn_blind(int(blind.sum()), b_count * t_count, n)
    return se


_inflate_welch = inflate_welch  # moved to ._stderr (banzhaf uses it too)


def _warn_blind(count: int, total: int, n: int) -> None:
    warn_undefined("kernel_shap", f"for {count} of {total} (sample, target) "
                   "pairs the sampled pairs are fitted almost exactly by an additive model "
                   "while their pair sums v(z) + v(1 - z) show interactions: a higher-order "
                   "interaction these few pairs cannot separate leaves no residual",
                   f"Raise budget to at least {_blind_budget(n)} (6n).")


#: Below ``budget = 6n`` (``_blind_budget``) a (sample, target) whose odd residual energy is
#: below ``_BLIND_RATIO`` times the spread of its pair sums (``r``) gets NaN standard errors.
#: Measured on four 10- and 12-player games (50 seeds each, budgets 2n + 6, 3n, 4n, 5n, 6n,
#: 8n): the fits with |error| / stderr > 10 had r from 1e-29 (a lone three-way term aliased
#: with the main effects) to 4e-4, but one at 1.2e-3 (ratio 19); the honest ones r >= 1.4e-5,
#: so 1e-3 also refuses some of those (at 2n + 6 up to a third on a game of mostly pairwise
#: terms, which kernel_shap recovers exactly); none had a ratio above 10 from 5n on.
_BLIND_RATIO = 1e-3


def _blind_budget(n: int) -> int:
    """The budget from which nearly-exact fits are trusted (``6n``)."""
    return 6 * n


def _blind(rss: torch.Tensor, sums: list[torch.Tensor], budget: int, n: int) -> torch.Tensor | None:
    """``B x T`` mask of the fits whose residuals cannot be trusted, or None if there are none.

    Over complementary pairs the odd half ``d = v(z) - v(1 - z)`` of a game with interactions
    of order at most two is exactly linear in ``s = 2z - 1`` (zero residuals, exact values),
    but so is a three-way term's ``s_i s_j s_k`` on a few pairs that happen to realise only
    half of its sign patterns: the fit then absorbs the interaction into the main effects,
    every residual is 0 and the errors are not. The even half tells the two apart from an
    additive game only: a pair sum ``v(z) + v(1 - z)`` is the same for every pair of an
    additive game. So below ``6n`` a fit whose residual energy is below ``_BLIND_RATIO`` of
    the pair sums' spread is refused (the values may be exact, or not), an additive one kept.
    """
    if budget >= _blind_budget(n) or not sums:
        return None
    g = torch.cat(sums, 1)  # B x pairs x T
    spread = ((g - g.mean(1, keepdim=True)) ** 2).sum(1)
    scale = (g * g).sum(1) + 1e-300
    out = (spread > 1e-20 * scale) & (rss < _BLIND_RATIO * spread)
    return out if bool(out.any()) else None


#: Size in bytes of the ``samples x K x targets`` block of responses that
#: :func:`_solve_blocks` reuses: the solve and its standard errors run a block of samples at a
#: time, so their temporaries (``y = v - v(empty)``, the pairs' differences and residuals)
#: stay cache-sized instead of ``B x K x T`` (146 MB at 17,800 samples and 1,024 coalitions).
#: Blocks hold at least _MIN_BLOCK samples (smaller products may take other BLAS kernels,
#: whose sums round differently from one product over all samples).
_BLOCK_BYTES, _MIN_BLOCK = 1 << 22, 16


def _solve_blocks(masks: torch.Tensor, w: torch.Tensor, strata: list[tuple[int, int, float]],
                  vals: torch.Tensor, first: int, v_empty: torch.Tensor, delta: torch.Tensor,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`solve_constrained` and :func:`_stderr` over blocks of samples.

    ``vals[:, first:]`` (``B x K x T``) are the game's values of ``masks``; each block's
    responses ``v - v(empty)`` are written into one reused buffer. Every step of the solve and
    of the standard errors is per sample (and target), so the results are those of one call
    over all samples, bit for bit with torch's BLAS here (see the tests).

    Returns:
        ``(phi B x T x n, stderr B x T x n)``.
    """
    b_count, _, t_count = vals.shape
    k, n = int(masks.shape[0]), int(masks.shape[1])
    step = max(_MIN_BLOCK, _BLOCK_BYTES // (8 * max(k, 1) * max(t_count, 1)))
    if step >= b_count:
        y = vals[:, first:] - v_empty[:, None, :]
        phi, proj = solve_constrained(masks, w, y, delta)
        return phi, _stderr(masks, w, y, strata, proj, phi)
    phi = torch.empty(b_count, t_count, n, dtype=torch.float64)
    se = torch.empty(b_count, t_count, n, dtype=torch.float64)
    bounds = block_bounds(b_count, step)
    buf = torch.empty(max(s1 - s0 for s0, s1 in itertools.pairwise(bounds)), k, t_count,
                      dtype=torch.float64)
    blind: list[int] = []  # per block: (sample, target) fits refused as blind (one warning)
    for s0, s1 in itertools.pairwise(bounds):
        y = buf[: s1 - s0]
        torch.sub(vals[s0:s1, first:], v_empty[s0:s1, None, :], out=y)
        phi[s0:s1], proj = solve_constrained(masks, w, y, delta[s0:s1])
        se[s0:s1] = _stderr(masks, w, y, strata, proj, phi[s0:s1], warn=s0 == 0,
                            blind_out=blind)
    if sum(blind):
        _warn_blind(sum(blind), b_count * t_count, n)
    return phi, se


_Step = tuple[int, int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float, torch.Tensor]


#: Residual degrees of freedom below which sampled designs report NaN standard errors: with
#: one or two, most random designs leave some sampled pair unpredictable from the others
#: (leverage 1) or the design rank-deficient (95% of draws at 10 players and 2 dof), so
#: whether a standard error exists would depend on the seed; from 3 on a defective draw is
#: redrawn (at most _REDRAWS times; at worst 19% of draws are acceptable at 3 dof, measured
#: at 4 to 60 players, so 64 redraws all fail with probability < 2e-6).
_MIN_DOF, _REDRAWS = 3, 64
#: A sampled pair with leverage above 1 - _LEVERAGE_TOL is taken as fitted exactly.
_LEVERAGE_TOL = 1e-6


def _min_stderr_budget(n: int) -> int:
    """The smallest budget whose sampled design has ``_MIN_DOF`` residual degrees of freedom."""
    return 2 + 2 * (n - 1 + _MIN_DOF)


def _pair_leverages(masks: torch.Tensor, w: torch.Tensor, start: int, k: int,
                    proj: torch.Tensor) -> torch.Tensor:
    """Leverage ``h_j = w_j s_j' G s_j / 2`` of the ``k`` sampled pairs from row ``start``."""
    s_pm = 2.0 * masks[start : start + k] - 1.0
    return w[start : start + k] * ((s_pm @ proj) * s_pm).sum(1) / 2.0


def _design_defect(masks: torch.Tensor, w: torch.Tensor, strata: list[tuple[int, int, float]],
                   proj: torch.Tensor) -> str | None:
    """Why this design leaves the standard errors undefined, or None.

    Undefined when the pairs cannot identify ``phi`` (the fit's matrix restricted to the
    sum-zero space is singular) or a sampled pair is fitted exactly (leverage 1: no other pair
    predicts it, so its residual, which the variance needs, is always 0).
    """
    n = masks.shape[1]
    if n > 1:
        a_mat = (masks * w[:, None]).T @ masks
        q = torch.linalg.qr(torch.cat([torch.ones(n, 1, dtype=torch.float64),
                                       torch.eye(n, dtype=torch.float64)[:, 1:]], 1))[0][:, 1:]
        ev = torch.linalg.eigvalsh(q.T @ a_mat @ q)
        if float(ev[0]) <= 1e-10 * max(float(ev[-1]), 1e-300):
            return f"{masks.shape[0]} coalitions cannot identify {n} Shapley values"
    for start, k, _m_pair in strata:
        if bool((_pair_leverages(masks, w, start, k, proj) >= 1.0 - _LEVERAGE_TOL).any()):
            return "a sampled pair is fitted exactly (leverage 1)"
    return None


def _stratum_spread(a2: torch.Tensor) -> torch.Tensor:
    """``1 / nu_h`` per player: the relative variance (over 2) of one stratum's variance estimate.

    A stratum's estimate ``k / (k - 1) (sum_j a_j^2 e_j^2 - (sum_j a_j e_j)^2 / k)`` is a
    quadratic form ``e' Q e`` in its ``k`` residuals, ``Q = k / (k - 1) (diag(a^2) - a a' / k)``
    (``a2 = a^2``, ``k x n``: one column per player). For residuals of a common variance its
    Satterthwaite degrees of freedom are ``tr(Q)^2 / tr(Q^2)`` (Bell & McCaffrey 2002, the
    degrees of freedom of HC2 standard errors; Imbens & Kolesar 2016): ``k - 1`` when every
    pair weighs alike, fewer when a few pairs carry most of the weight, as the pairs holding a
    player on the small side of a size do (``(G z)_i`` is large there). ``tr(Q) = sum a^2``,
    ``tr(Q^2) = (k / (k - 1))^2 (sum a^4 (1 - 2 / k) + (sum a^2)^2 / k^2)``; returned is
    ``tr(Q^2) / tr(Q)^2`` (``1 / (k - 1)`` for a player whose ``a`` is 0 throughout).
    """
    k = a2.shape[0]
    s2, s4 = a2.sum(0), (a2 * a2).sum(0)
    tr_q2 = (k / (k - 1)) ** 2 * (s4 * (1.0 - 2.0 / k) + s2 * s2 / k**2)
    out = tr_q2 / (s2 * s2).clamp_min(1e-300)
    return torch.where(s2 > 0, out, torch.full_like(out, 1.0 / (k - 1)))


def _stderr_plan(masks: torch.Tensor, w: torch.Tensor, strata: list[tuple[int, int, float]],
                 proj: torch.Tensor,
                 ) -> tuple[int, int, list[_Step], tuple[str, str] | None]:
    """What :func:`_stderr` derives from the design alone: ``(pairs, dof, steps, undefined)``
    with one step ``(start, k, s_pm, scale, a, a^2, fpc)`` per stratum that contributes, and
    ``undefined`` the (reason, fix) of NaN standard errors, else None.

    A design with sampled pairs needs ``_MIN_DOF`` residual degrees of freedom (budget
    ``>= 2n + 6``), whatever the draw: below that the standard errors are NaN for every seed.
    """
    n = masks.shape[1]
    pairs = masks.shape[0] // 2
    dof = pairs - (n - 1)
    fix = f"Raise budget to at least {_min_stderr_budget(n)} (2n + 6)."
    if strata and dof < _MIN_DOF:
        return pairs, dof, [], (f"{masks.shape[0]} coalitions leave {max(dof, 0)} residual degrees "
                                f"of freedom for {n} Shapley values; {_MIN_DOF} are needed", fix)
    defect = _design_defect(masks, w, strata, proj)
    if defect is not None:
        return pairs, dof, [], (defect, fix)
    steps: list[_Step] = []
    for start, k, _m_pair in strata:
        z1 = masks[start : start + k]  # the complements follow at start + k
        s_pm = 2.0 * z1 - 1.0  # k x n
        wj = w[start : start + k]
        lev = _pair_leverages(masks, w, start, k, proj)
        # HC4 (Cribari-Neto 2004): e / (1 - h)^(delta / 2), delta = min(4, h / mean leverage):
        # HC2 for ordinary pairs, up to HC3 and beyond for the high-leverage ones
        delta = (lev * pairs / max(n - 1, 1)).clamp(max=4.0)
        scale = ((1.0 - lev) ** (delta / 2))[None, :, None]
        a = wj[:, None] * (z1 @ proj)  # k x n
        size = int(z1[0].sum())
        population = math.comb(n, size) if 2 * size != n else math.comb(n, size) // 2
        fpc = max(0.0, 1.0 - k / population) if population > 1 else 0.0
        if k >= 2 or fpc > 0:
            spread = _stratum_spread(a * a) if k >= 2 else torch.ones(n, dtype=torch.float64)
            steps.append((start, k, s_pm, scale, a, a * a, fpc, spread))
    return pairs, dof, steps, None


#: From this many antithetic pairs on, pairs (not single permutations) are the replicates.
_PAIR_REPLICATES = 8


def _permutation_stderr(per_perm: torch.Tensor, n_pairs: int) -> torch.Tensor:
    """Standard errors of the antithetic mean (``B x T x n``) from ``B x P x n x T`` estimates.

    Replicates are the antithetic pairs (``pairs - 1`` dof). With 2 to 7 pairs the pair
    spread is too noisy to trust and the single permutations serve as replicates instead
    (``2 pairs - 1`` dof), their antithetic correlation ignored: a permutation and its reverse
    are negatively correlated, so this over-states the variance (conservative, never small).
    With a single pair the standard errors are NaN with a :class:`StderrWarning`. Variances
    are pooled towards the other players' and t-inflated (see :mod:`._stderr`).
    """
    if n_pairs < 2:
        warn_undefined("permutation_shapley", "one antithetic pair is one replicate",
                       "Raise budget to at least 2 + 4 (n - 1) (two antithetic pairs).")
        b, _, n, t = per_perm.shape
        return torch.full((b, t, n), float("nan"), dtype=torch.float64)
    reps = per_perm if n_pairs < _PAIR_REPLICATES else (per_perm[:, :n_pairs] + per_perm[:, n_pairs:]) / 2
    r = reps.shape[1]
    se = (reps.std(1, unbiased=True) / math.sqrt(r)).permute(0, 2, 1)
    return inflate(se, r - 1)


# ----------------------------------------------------------------------------- permutations
def exhaustive_budget(n: int) -> int:
    """The budget from which :class:`PermutationShapley` enumerates every coalition instead of
    sampling permutations: ``2^n`` (every permutation's marginals come from that table; the
    permutations themselves would cost ``2 + (n - 1) n!``, 3,602 rows for 6 players against
    64). Capped above :data:`~tribute.methods.exact.MAX_PLAYERS` players."""
    return 2 ** max(n, 1) if n <= MAX_PLAYERS else 2 ** 62


def _permutation_budget(n: int) -> int:
    """:meth:`PermutationShapley.default_budget` for ``n`` players."""
    return 2 + 2 * max(n - 1, 1) * max(1, min(64, 4096 // max(2 * (n - 1), 1)))


@register
class PermutationShapley(Method):
    """Shapley values by sampling permutations, with antithetic (forward + reverse) pairs.

    Each permutation adds players one at a time; a player's marginal contribution is the change
    in ``v`` when it joins. Every sampled permutation is paired with its reverse, which makes
    the two estimates negatively correlated and reduces variance (Mitchell et al. 2022). Each
    permutation costs ``n - 1`` evaluations (``v(empty)`` and ``v(N)`` are shared), so the
    budget buys ``(budget - 2) // (2 (n - 1))`` antithetic pairs. Standard errors come from the
    spread of the antithetic pairs (of the single permutations, conservatively, below 8
    pairs), pooled towards the other players' and inflated by the Student-t factor of their
    few degrees of freedom, so that +-2 stderr keeps ~95% coverage; with one pair they are NaN
    (with a warning). Efficiency holds exactly for every permutation. When the budget covers
    every coalition (``budget >= 2^n``: 1 or 2 players at any budget, up to 10 players at the
    default one) each coalition is evaluated once and every permutation's marginals are read
    from that table: the values are the exact Shapley values (as ``exact_shapley``), the
    standard errors 0, and ``n_evals`` is ``2^n`` (4 for 2 players, not the whole budget);
    ``seed`` then plays no part, and ``extra["exact"]`` is True (False when sampled).

    References: Castro, Gómez & Tejada (2009), "Polynomial calculation of the Shapley value
    based on sampling"; Mitchell, Cooper, Frank & Holmes (2022), "Sampling Permutations for
    Shapley Value Estimation".
    """

    name = "permutation_shapley"
    tags = Tags(family="shapley", stochastic=True, has_gap=True, budgeted=True,
                games=("feature", "component", "data"))
    paper = "Castro et al. (2009); Mitchell et al. (2022), Sampling Permutations for Shapley Value Estimation"

    def min_budget(self, game: Game) -> int:
        return 2 + 2 * max(game.n_players - 1, 1)

    def default_budget(self, game: Game) -> int:
        return _permutation_budget(game.n_players)

    def exact_at(self, n_players: int, budget: int | None) -> bool:
        n = int(n_players)
        return n <= 1 or (budget if budget is not None else _permutation_budget(n)) >= exhaustive_budget(n)

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        n = game.n_players
        budget = budget if budget is not None else self.default_budget(game)
        if self.exact_at(n, budget):
            # the budget covers every coalition: their table gives every permutation's
            # marginals, so the values are the exact Shapley values for 2^n evaluations
            table = value_table(game)  # B x T x 2^n, v(N) the cached reference pass
            phi = shapley_from_table(table, n)
            gap = phi.sum(-1) - (table[..., -1] - table[..., 0])
            return game.attribution(phi, self.name, self.get_params(), stderr=torch.zeros_like(phi), gap=gap,
                                    extra={"n_permutations": max(math.factorial(max(n, 1)), 2), "exact": True})
        per_perm = max(n - 1, 1)
        n_pairs = max(1, (budget - 2) // (2 * per_perm))
        gen = torch.Generator().manual_seed(seed)
        fwd = torch.stack([torch.randperm(n, generator=gen) for _ in range(n_pairs)])
        perms = torch.cat([fwd, fwd.flip(1)])  # P x n, reverse of pair p at row p + n_pairs
        p_count = perms.shape[0]
        # prefix masks: row (p, j) holds the first j+1 players of permutation p, j < n-1
        rank = torch.empty_like(perms)
        rank.scatter_(1, perms, torch.arange(n).expand(p_count, n))
        steps = torch.arange(n - 1)
        masks = (rank[:, None, :] <= steps[None, :, None]).to(torch.float64).reshape(-1, n)
        v_full, v_empty = game.full(), game.empty()
        vals = game.value(masks)
        b_count, t_count = game.n_samples, game.n_targets
        path = vals.reshape(b_count, p_count, n - 1, t_count)
        path = torch.cat([v_empty[:, None, None, :].expand(b_count, p_count, 1, t_count), path,
                          v_full[:, None, None, :].expand(b_count, p_count, 1, t_count)], dim=2)
        marg = path[:, :, 1:] - path[:, :, :-1]  # B x P x n x T, position j = player perms[p, j]
        per_perm_phi = torch.zeros(b_count, p_count, n, t_count, dtype=torch.float64)
        idx = perms[None, :, :, None].expand(b_count, p_count, n, t_count)
        per_perm_phi.scatter_(2, idx, marg)
        pair = (per_perm_phi[:, :n_pairs] + per_perm_phi[:, n_pairs:]) / 2  # B x pairs x n x T
        phi = pair.mean(1).permute(0, 2, 1)
        stderr = torch.zeros_like(phi) if n <= 2 else _permutation_stderr(per_perm_phi, n_pairs)
        gap = phi.sum(-1) - (v_full - v_empty)
        return game.attribution(phi, self.name, self.get_params(), stderr=stderr, gap=gap,
                                extra={"n_permutations": int(p_count), "exact": False})

    budget_rule = "2 + 2(n-1) * max(1, min(64, 4096 // (2(n-1))))"

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """Prefix masks ``P (n-1) x n``, permutations and ranks ``P x n``, and per-permutation
        credits and marginals ``batch x P x n x targets``."""
        n = int(game.n_players)
        k = int(budget if budget is not None else self.default_budget(game))
        p = 2 * max(1, (k - 2) // (2 * max(n - 1, 1)))
        b, t = int(game.n_samples), int(game.n_targets)
        if n <= 1 or k >= exhaustive_budget(n):  # every coalition once (exact)
            return coalition_cost(game, 2 ** n, design=2 * b * 2 ** n * t * 8, flops=float(2 ** n * n * b * t),
                                  note=f"the 2^{n} = {2 ** n:,}-coalition table (exact)")
        return coalition_cost(game, p * max(n - 1, 1) + 2, design=2 * p * n * 8 + 4 * b * p * n * t * 8,
                              note=f"{p:,} permutations x {n:,} players (prefix masks, marginals)")



