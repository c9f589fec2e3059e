"""Bayesian optimal design of the complementary pairs ``gp_shapley`` evaluates (private).

Under a Gaussian-process prior with fixed hyperparameters the posterior covariance of the
Shapley values does not depend on the observed values, only on *which* pairs were observed.
The design can therefore be chosen before any model call: greedily, pair after pair, take the
candidate that most reduces the total posterior variance ``trace Var(phi | data)`` (A-optimal
design; Chaloner & Verdinelli 1995). For a candidate pair ``x`` with posterior variance
``sigma2(x)`` of its difference ``d(x) = v(z) - v(1 - z)`` and posterior covariance
``c(x) = Cov(phi, d(x))`` (an ``n``-vector), observing ``d(x)`` reduces the trace by
``||c(x)||^2 / sigma2(x)``; after picking ``x*`` both are updated by one rank-one
conditioning step (an incremental Cholesky factor over the candidate pool), so ``m`` picks from
``C`` candidates cost ``O(m C (m + n))``.

Blocked greedy (the default): conditioning every candidate on each pick in turn reads the whole
``C x m`` factor once per pick, which made the design memory-bound (27 s at 1,023 pairs of 13
players, 68 s at 30 players, on a loaded machine). Instead the picks come in blocks: at the start
of a block the ``shortlist`` (128) candidates with the largest gains are conditioned among
themselves, ``b`` picks are made from them by the exact greedy rule, and then every candidate is
conditioned on the whole block at once (one matrix-matrix product and a ``b x b`` triangular
solve: the same arithmetic, ``b`` times fewer passes over memory). Blocks grow with the design
(``b = min(32, step // 8)``: the first 15 picks are exactly the plain greedy's, when each pick
changes the gains most); a block only differs from the plain greedy when a candidate outside
the shortlist would have overtaken every shortlisted one within the block. Measured
(benchmarks/bench_gp_shapley_scaling.py ``--design``): the same variance removed to 0.1% and
about 6x less CPU at 1,023 pairs of 30 players.

The prior is the isotropic odd Walsh kernel of :mod:`tribute.methods.gp_shapley` at a fixed
total scale (``Lambda = 6``) with a main-effect term (``tau = 10``), conditioned first on the
always-observed ``v(N) - v(empty)``. Candidates are drawn without replacement, stratified by
size with the Shapley-kernel allocation (:class:`._shapley_common.PairSampler`), ``16 m`` of them
(at least 2,048, at most 8,192, all pairs when there are fewer). The hyperparameters the
estimator then fits by marginal likelihood may differ from the design's: the design is only
good, not optimal, for them, and the posterior stays exact because the design does not depend
on the observations.

This is the non-adaptive (batch) counterpart of ShaplEIG (Rundel et al. 2026, "ShaplEIG:
Bayesian Experimental Design for Shapley Value Estimation"), which picks coalitions one at a
time by expected information gain under a GP with a weighted Hamming product kernel; with
fixed hyperparameters the expected information gain of a Gaussian model is likewise
observation-free. The greedy rank-one selection follows the pivoted-Cholesky form of greedy
variance reduction (e.g. Seeger, Williams & Lawrence 2003, "Fast forward selection to speed up
sparse Gaussian process regression").
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch

from ._shapley_common import PairSampler

__all__ = ["ALT_TAU", "DESIGN_TAU", "DESIGN_TOTAL", "clear_design_cache", "design_flops", "greedy_order",
           "mixed_designs", "optimal_pairs", "pool_size"]

#: Total kernel scale ``Lambda`` and main-effect weight ``tau`` of the design prior (chosen on
#: the wine, diabetes, tanh16, breast-cancer and relu14 games of
#: benchmarks/bench_shapley_accuracy.py among Lambda in {1.5, 3, 6, 12} x tau in {0, 1, 10, 1e6}).
DESIGN_TOTAL = 6.0
DESIGN_TAU = 10.0
#: Main-effect weight of the continuation in mixed_designs (gp_shapley passes its own, 0).
ALT_TAU = 0.0
_POOL_PER_PAIR = 16
_POOL_MIN = 2048
_POOL_MAX = 8192
#: Greedy picks per block and the shortlist each block picks from (see greedy_order).
GREEDY_BLOCK = 32
GREEDY_SHORTLIST = 128
_STEPS_PER_BLOCK_PICK = 8


def pool_size(n: int, m: int) -> int:
    """Candidates drawn for ``m`` pairs of ``n`` players (all ``2^(n-1) - 1`` pairs if fewer)."""
    total = 2 ** (n - 1) - 1 if n < 63 else 2**62
    return int(min(total, max(_POOL_PER_PAIR * m, _POOL_MIN), _POOL_MAX))


def design_flops(n: int, m: int) -> float:
    """Arithmetic of :func:`optimal_pairs`: per pick one kernel column (``C n``), the Cholesky
    update against the earlier picks (``C k``) and the covariance update and gains (``3 C n``).
    The blocked greedy does the same arithmetic, as matrix-matrix products (faster per flop, so
    this over-states its seconds)."""
    c = pool_size(n, m)
    return float(m * c * (4.0 * n + m / 2.0) + 16.0 * c * n)


def _shapley_terms(s: torch.Tensor, lam: float, tau: float) -> torch.Tensor:
    """``Cov(phi, d(x))`` under the prior for every row of ``s``: ``C x n``."""
    from .gp_shapley import _shapley_of_kernel  # the prior's closed forms live with the estimator

    n = s.shape[1]
    c = torch.full((1, n), math.tanh(lam / 2), dtype=torch.float64)
    out: torch.Tensor = _shapley_of_kernel(s, c)[0] + tau * s / n
    return out


def optimal_pairs(n: int, m: int, generator: torch.Generator, *, total: float = DESIGN_TOTAL,
                  tau: float = DESIGN_TAU) -> torch.Tensor:
    """``m`` complementary pairs (``m x n`` in ``{-1, +1}``), chosen greedily to minimise the
    prior-posterior trace of ``Var(phi)`` (see the module docstring).

    Args:
        n: players (``>= 2``).
        m: pairs to choose (at most ``2^(n-1) - 1``).
        generator: the local generator the candidate pool is drawn from.
        total: the design kernel's total scale ``Lambda`` (``lambda_j = Lambda / n``).
        tau: the design kernel's main-effect weight.
    """
    # The design depends on (n, m, the prior, the generator's state) only, never on the model:
    # a repeated call (same seed) reuses it and leaves the generator where a fresh run would.
    key = (n, m, float(total), float(tau), bytes(generator.get_state().numpy()))
    hit = _DESIGNS.get(key)
    if hit is not None:
        _DESIGNS.move_to_end(key)
        generator.set_state(hit[1].clone())
        return hit[0].clone()
    sampler = PairSampler(n, "kernel", generator)
    pool = sampler.grow(pool_size(n, m))
    if m >= pool.shape[0]:
        out = pool
    else:
        picked = torch.tensor(sorted(greedy_order(pool, m, total=total, tau=tau)), dtype=torch.int64)
        out = pool[picked]  # in pool order: stratum by stratum, as the sampled designs
    _DESIGNS[key] = (out.clone(), generator.get_state().clone())
    while len(_DESIGNS) > _DESIGNS_KEPT:
        _DESIGNS.popitem(last=False)
    return out


#: Designs kept in memory (least recently used dropped first); each is ``m x n`` float64.
_DESIGNS_KEPT = 16
_DESIGNS: OrderedDict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor]] = OrderedDict()


def clear_design_cache() -> None:
    """Forget the designs kept by :func:`optimal_pairs`."""
    _DESIGNS.clear()


def mixed_designs(n: int, m: int, k: int, generator: torch.Generator, *,
                  alt_tau: float = ALT_TAU) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(head k x n, rest_a, rest_b)``, each rest ``(m - k) x n``: ``head`` is the first ``k``
    greedy picks of the default design (``Lambda = 6``, ``tau = 10``) and ``rest_a`` the rest of
    that design (together: the default design's pairs); ``rest_b`` continues the same head
    greedily under ``tau = alt_tau`` from the same candidate pool (``0``: the ``n`` singleton
    pairs next). ``head`` and ``rest_b`` are the mixed design of ``gp_shapley``'s
    ``singletons_after``. No value is seen: all are fixed by ``(n, m, k, generator)``."""
    sampler = PairSampler(n, "kernel", generator)
    pool = sampler.grow(pool_size(n, m))
    if m >= pool.shape[0] or k >= m:
        return pool[:k], pool[k:m], pool[k:m]
    order_a = greedy_order(pool, m)
    head_idx = order_a[:k]
    rest_a = sorted(order_a[k:])
    # the head's rows first, then the remaining candidates: greedy_order(fixed=k) commits them
    keep = torch.ones(pool.shape[0], dtype=torch.bool)
    keep[torch.tensor(head_idx, dtype=torch.int64)] = False
    rest_pool = pool[keep]
    order_b = greedy_order(torch.cat([pool[head_idx], rest_pool]), m - k, tau=alt_tau, fixed=k)
    rest_b = rest_pool[torch.tensor(sorted(i - k for i in order_b), dtype=torch.int64)]
    return pool[sorted(head_idx)], pool[rest_a], rest_b


#: Gains within this relative distance of each other are a tie (see :func:`_first_best`).
_TIE_RTOL = 1e-9


def _first_best(gain: torch.Tensor) -> int:
    """The index of the largest gain, the first among those within :data:`_TIE_RTOL` of it.

    Candidates that tie in exact arithmetic (every pair of one size before the first pick,
    symmetric pairs after it) differ in their last bits by how the machine rounds (AVX2 and
    AVX-512 kernels sum in other orders), and an arg-max over those bits made the design, and
    so the credits, depend on the CPU (0.03-0.09 apart on a 9-player game with the same seed).
    """
    top = gain.max()
    near = gain >= top - _TIE_RTOL * top.abs()
    if not bool(near.any()):  # a NaN gain: the arg-max as before, whatever it says
        return int(gain.argmax())
    return int(near.nonzero()[0, 0])


def _best_first(gain: torch.Tensor, k: int) -> torch.Tensor:
    """The indices of the ``k`` largest gains, in index order (the shortlist's exact picks then
    break ties as :func:`_first_best` does). Gains are ranked by their distance below the
    largest in steps of :data:`_TIE_RTOL` of it, the largest's step starting at its own value
    (so gains that tie with it by rounding share its rank), equal ranks in index order."""
    top = gain.max()
    scale = _TIE_RTOL * float(top.abs()) or 1e-300
    key = torch.floor((top - gain) / scale)
    return torch.argsort(key, stable=True)[:k].sort().values


def greedy_order(pool: torch.Tensor, m: int, *, total: float = DESIGN_TOTAL,
                 tau: float = DESIGN_TAU, block: int = GREEDY_BLOCK,
                 shortlist: int = GREEDY_SHORTLIST, fixed: int = 0) -> list[int]:
    """Indices into ``pool`` (``C x n`` pairs) of the ``m`` greedy picks, in the order picked.

    Blocked (see the module docstring): ``block`` picks at a time, each the exact greedy pick
    among the ``shortlist`` candidates that ranked best at the start of the block, then one
    conditioning step of every candidate on the whole block. ``block=1`` is the plain greedy
    over the whole pool (every pick the best candidate given the picks before it).
    """
    if block < 1 or shortlist < block:
        raise ValueError(f"greedy_order: need block >= 1 and shortlist >= block, got "
                         f"block={block}, shortlist={shortlist}")
    n = pool.shape[1]
    cand = torch.cat([torch.ones(1, n, dtype=torch.float64), pool])  # row 0: v(N) - v(empty)
    size = cand.shape[0]
    lam = min(total / n, 30.0)
    g = _shapley_terms(cand, lam, tau)  # Cov(phi, d(x)), conditioned as picks are made
    # odd kernel from the Hamming distance; prior variance is the same for every pair
    kdiag = (1.0 - math.exp(-lam * n)) / 2.0 + tau
    var = torch.full((size,), kdiag, dtype=torch.float64)
    # column k: pick k's column of the Cholesky factor over the candidates (row-major per
    # candidate, so that a block's rows are one gather)
    factor = torch.zeros(size, m + 1 + fixed, dtype=torch.float64)
    chosen = torch.zeros(size, dtype=torch.bool)
    floor = 1e-10 * kdiag

    def prior(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Prior covariance of the pair differences at the codes ``a`` and ``b``."""
        dots = a @ b.T
        dist = lam * (n - dots) / 2.0
        return (torch.exp(-dist) - torch.exp(-(lam * n - dist))) / 2.0 + tau * dots / n

    def local_greedy(idx: torch.Tensor, picks: int, step: int) -> tuple[list[int], torch.Tensor]:
        """``picks`` exact greedy picks among the candidates ``idx`` (positions into ``idx``)
        and their ``picks x picks`` lower Cholesky factor of the conditioned kernel."""
        kss = prior(cand[idx], cand[idx])
        if step:
            fs = factor[idx, :step]
            kss -= fs @ fs.T
        gs, vs = g[idx].clone(), var[idx].clone()
        lf = torch.zeros(picks, len(idx), dtype=torch.float64)
        taken = torch.zeros(len(idx), dtype=torch.bool)
        local: list[int] = []
        for t in range(picks):
            gain = (gs**2).sum(1) / (vs.clamp_min(0.0) + floor)
            gain[taken] = -1.0
            j = _first_best(gain)
            col = kss[:, j] - lf[:t].T @ lf[:t, j] if t else kss[:, j].clone()
            piv = float(vs[j].clamp_min(floor)) ** 0.5
            u = col / piv
            lf[t] = u
            gs.sub_(u[:, None] * (gs[j] / piv)[None])
            vs.sub_(u**2)
            taken[j] = True
            local.append(j)
        return local, lf[:, local].T.contiguous()

    def commit(step: int, picks: torch.Tensor, chol: torch.Tensor) -> None:
        """Condition every candidate on the block ``picks`` (rows ``step:`` of the factor)."""
        cols = prior(cand, cand[picks])  # size x b
        if step:
            cols -= factor[:, :step] @ factor[picks, :step].T
        rows = torch.linalg.solve_triangular(chol, cols.T, upper=False)  # b x size
        factor[:, step : step + len(picks)] = rows.T
        h = torch.linalg.solve_triangular(chol, g[picks], upper=False)  # b x n
        g.sub_(rows.T @ h)
        var.sub_((rows**2).sum(0))
        chosen[picks] = True

    first = torch.zeros(1, dtype=torch.int64)
    commit(0, first, torch.full((1, 1), kdiag**0.5, dtype=torch.float64))
    order: list[int] = []
    step = 1
    if fixed:
        # the first ``fixed`` rows of ``pool`` are already observed: conditioned on, never picked
        idx = torch.arange(1, fixed + 1)
        kss = prior(cand[idx], cand[idx]) - factor[idx, :1] @ factor[idx, :1].T
        kss.diagonal().add_(floor)
        commit(step, idx, torch.linalg.cholesky(kss))
        step += fixed
    while len(order) < m:
        # early picks change the gains most: exact picks first, blocks growing with the design
        b = min(block, max(1, step // _STEPS_PER_BLOCK_PICK), m - len(order))
        gain = (g**2).sum(1) / (var.clamp_min(0.0) + floor)
        gain[chosen] = -1.0
        if b == 1:
            idx = torch.tensor([_first_best(gain)], dtype=torch.int64)
            chol = var[idx].clamp_min(floor).sqrt().reshape(1, 1)
        else:
            short = _best_first(gain, min(shortlist, size - step))
            local, chol = local_greedy(short, b, step)
            idx = short[local]
        commit(step, idx, chol)
        step += b
        order += [int(i) - 1 for i in idx]
    return order
