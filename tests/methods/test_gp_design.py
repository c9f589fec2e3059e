"""The Bayesian optimal pair design of `gp_shapley` (methods/_gp_design.py), against a slow
reference: the same prior written from its definition (odd part of a product kernel, Shapley
values by enumeration) and greedy selection by explicit solves."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

import tribute
from tribute.methods._gp_design import (
    DESIGN_TAU,
    DESIGN_TOTAL,
    greedy_order,
    optimal_pairs,
    pool_size,
)
from tribute.methods._shapley_common import PairSampler
from tribute_testing import LinearModel, gap_of, make_mlp


def _prior(n: int) -> tuple[torch.Tensor, np.ndarray, tuple[Callable[..., torch.Tensor],
                                                              Callable[..., torch.Tensor]]]:
    """Every coalition's code, and the prior covariances from their definitions."""
    lam = DESIGN_TOTAL / n
    c = math.tanh(lam / 2)
    codes = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=n)), dtype=torch.float64)

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # odd part of prod_j (1 + c a_j b_j) / (1 + c)^n, plus the main-effect term
        prod = lambda x: torch.prod(1 + c * x, dim=-1) / (1 + c) ** n  # noqa: E731
        x = a[:, None, :] * b[None, :, :]
        return (prod(x) - prod(-x)) / 2 + DESIGN_TAU * (a @ b.T) / n

    # Cov(phi_i, d(x)) = Shapley value of the game z -> k(s(z), x) / 2, by enumeration
    weights = {size: math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
               for size in range(n)}
    z = (codes > 0).numpy()

    w_of = np.array([weights[int(row.sum())] if row.sum() < n else 0.0 for row in z])

    def cov(x: torch.Tensor) -> torch.Tensor:
        v = (k(codes, x) / 2).numpy()  # 2^n x C; row r's code is r in binary, player 0 first
        out = np.zeros((x.shape[0], n))
        for i in range(n):
            rows = np.flatnonzero(~z[:, i])  # coalitions without i, then the same with i
            out[:, i] = w_of[rows] @ (v[rows + 2 ** (n - 1 - i)] - v[rows])
        return torch.from_numpy(out)

    return codes, z, (k, cov)


def _posterior_trace(design: torch.Tensor, k: Callable[..., torch.Tensor],
                     cov: Callable[..., torch.Tensor]) -> float:
    """``trace(G^T K^-1 G)`` for the design plus the all-ones pair: the variance removed."""
    n = design.shape[1]
    x = torch.cat([torch.ones(1, n, dtype=torch.float64), design])
    kk = k(x, x)
    g = cov(x)
    return float(torch.trace(g.T @ torch.linalg.solve(kk, g)))


def test_greedy_matches_a_slow_greedy_by_explicit_solves() -> None:
    n, m = 7, 9
    _, _, (k, cov) = _prior(n)
    pool = PairSampler(n, "kernel", torch.Generator().manual_seed(3)).grow(pool_size(n, m))
    assert pool.shape[0] == 2 ** (n - 1) - 1  # the pool is every pair at this size
    order = greedy_order(pool, m)
    assert len(set(order)) == m
    # each pick maximises the variance removed (explicit solve) given the picks before it;
    # symmetric pairs tie, so the pick is checked against the best value, not the best index
    for step, pick in enumerate(order):
        before = order[:step]
        best = max(_posterior_trace(pool[[*before, i]], k, cov)
                   for i in range(len(pool)) if i not in before)
        assert _posterior_trace(pool[[*before, pick]], k, cov) >= best * (1 - 1e-9)
    fast = optimal_pairs(n, m, torch.Generator().manual_seed(3))
    torch.testing.assert_close(fast, pool[sorted(order)], rtol=0, atol=0)


def test_plain_greedy_each_pick_best_beyond_the_shortlist() -> None:
    # 8 players: 127 candidates, more than a shortlist of 16: block=1 must still scan them all
    n, m = 8, 10
    _, _, (k, cov) = _prior(n)
    pool = PairSampler(n, "kernel", torch.Generator().manual_seed(4)).grow(pool_size(n, m))
    order = greedy_order(pool, m, block=1, shortlist=16)
    for step, pick in enumerate(order):
        before = order[:step]
        best = max(_posterior_trace(pool[[*before, i]], k, cov)
                   for i in range(len(pool)) if i not in before)
        assert _posterior_trace(pool[[*before, pick]], k, cov) >= best * (1 - 1e-9)


def test_blocked_greedy_removes_as_much_variance_as_the_plain_greedy() -> None:
    # 10 players, 100 of 511 pairs: blocks of up to 12 picks from shortlists of 16-128
    n, m = 10, 100
    _, _, (k, cov) = _prior(n)
    pool = PairSampler(n, "kernel", torch.Generator().manual_seed(0)).grow(pool_size(n, m))
    plain = _posterior_trace(pool[greedy_order(pool, m, block=1)], k, cov)
    for block, short in ((32, 128), (8, 16)):
        order = greedy_order(pool, m, block=block, shortlist=short)
        assert len(set(order)) == m
        assert _posterior_trace(pool[order], k, cov) >= plain * (1 - 1e-3)
    # the first 15 picks are the plain greedy's whatever the block (blocks grow with the design)
    assert greedy_order(pool, 20, block=32, shortlist=32)[:15] == greedy_order(pool, 15, block=1)
    with pytest.raises(ValueError, match="shortlist >= block"):
        greedy_order(pool, 5, block=8, shortlist=4)


def test_removes_more_variance_than_random_designs_of_the_same_size() -> None:
    n, m = 8, 12
    _, _, (k, cov) = _prior(n)
    opt = _posterior_trace(optimal_pairs(n, m, torch.Generator().manual_seed(0)), k, cov)
    for seed in range(5):
        for alloc in ("kernel", "leverage"):
            rand = PairSampler(n, alloc, torch.Generator().manual_seed(seed)).grow(m)
            assert opt > _posterior_trace(rand, k, cov)


def test_distinct_pairs_deterministic_per_seed_and_all_pairs_when_the_budget_allows() -> None:
    n, m = 12, 40
    a = optimal_pairs(n, m, torch.Generator().manual_seed(1))
    b = optimal_pairs(n, m, torch.Generator().manual_seed(1))
    assert a.shape == (m, n) and torch.equal(a, b)
    assert set(a.unique().tolist()) == {-1.0, 1.0}
    # distinct pairs: no row equals another row or its complement
    canon = torch.where(a[:, :1] > 0, a, -a)
    assert len({tuple(r) for r in canon.tolist()}) == m
    assert (a.sum(1).abs() < n).all()  # never the empty/grand pair (observed separately)
    every = optimal_pairs(5, 15, torch.Generator().manual_seed(0))
    assert every.shape == (15, 5)


def test_shapley_default_is_the_optimal_design_and_exact_on_linear_games() -> None:
    m = LinearModel(9, 2)
    x = torch.randn(3, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = tribute.explain(m, x, method="shapley", target=1, budget=40, baseline=0.3)
    assert a.params["allocation"] == "optimal" and a.params["design"] == "optimal"
    want = m.lin.weight[1].detach() * (x - 0.3)
    np.testing.assert_allclose(a.values, want, atol=1e-6)
    assert np.abs(gap_of(a)).max() < 1e-8
    assert a.n_rows == a.n_evals * len(x) and a.n_evals <= 40


def test_beyond_max_pairs_the_design_falls_back_to_sampling_and_says_so() -> None:
    m = make_mlp(8, 3)
    x = torch.randn(2, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    a = tribute.explain(m, x, method="shapley", target=0, budget=60, max_pairs=10)
    assert a.params["path"] == "gp+adjustment" and a.params["design"] == "singletons"
    assert a.n_evals <= 60


def test_more_accurate_than_the_sampled_design_on_an_mlp() -> None:
    # not a tuning game: a fresh random MLP (tribute_testing.make_mlp), 9 players
    m = make_mlp(9, 3, seed=21)
    x = torch.randn(4, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(22))
    exact = tribute.explain(m, x, method="exact_shapley", target=2).values
    err = {}
    for alloc in ("optimal", "singletons"):
        errs = [float((tribute.explain(m, x, method="shapley", target=2, budget=64, seed=s,
                                       allocation=alloc).values - exact).norm() / exact.norm())
                for s in range(2)]
        err[alloc] = np.mean(errs)
    assert err["optimal"] < err["singletons"]


def test_the_design_falls_back_to_sampling_beyond_its_share_of_all_pairs() -> None:
    # 9 players: 255 pairs; the optimal design is used up to 40% of them (102 pairs)
    m = LinearModel(9, 2)
    x = torch.randn(1, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    small = tribute.explain(m, x, method="shapley", target=0, budget=2 + 2 * 102)
    large = tribute.explain(m, x, method="shapley", target=0, budget=2 + 2 * 103)
    assert small.params["design"] == "optimal" and large.params["design"] == "singletons"
    assert large.params["allocation"] == "optimal"  # what was asked stays recorded


def test_repeated_designs_come_from_the_cache_and_leave_the_generator_as_a_fresh_run() -> None:
    from tribute.methods import _gp_design

    _gp_design.clear_design_cache()
    g1 = torch.Generator().manual_seed(5)
    first = _gp_design.optimal_pairs(9, 60, g1)
    after_fresh = torch.rand(3, generator=g1)
    g2 = torch.Generator().manual_seed(5)
    again = _gp_design.optimal_pairs(9, 60, g2)
    assert torch.equal(first, again)
    assert torch.equal(torch.rand(3, generator=g2), after_fresh)  # same generator state after
    again[0, 0] = 7.0  # callers get copies: the cached design cannot be changed from outside
    assert torch.equal(_gp_design.optimal_pairs(9, 60, torch.Generator().manual_seed(5)), first)
    other = _gp_design.optimal_pairs(9, 60, torch.Generator().manual_seed(6))
    assert not torch.equal(other, first)
