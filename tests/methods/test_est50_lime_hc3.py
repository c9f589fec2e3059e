"""est50: LIME's ``alpha=0`` intervals where the draw misses part of the support.

HC2 residuals with the distinct-coalition t factor (aud49e) still left +-1.96 stderr covering
the budget's expected fit only 0.82 of the time at 3 players and budget 8 (0.70 at budget 5,
200 seeds): with a handful of distinct coalitions HC2 underestimates the spread of the fit over
draws. HC3 there covers 0.93-1.00. The truth is test_aud49e_sampling's numpy solution of the
expected weighted normal equations over all ``2^n`` coalitions.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_aud49e_sampling import _coverage, _expected_fit

import tribute


@pytest.mark.parametrize("n, budget, least", [(3, 8, 0.93), (4, 9, 0.94)])
def test_lime_alpha0_hc3_covers_at_few_distinct_coalitions(n: int, budget: int, least: float) -> None:
    # HC2: 0.810 (3 players, budget 8) and 0.899 (4 players, budget 9) over these 120 seeds
    cov, finite = _coverage(n, budget, 120)
    assert finite > 0.3 * 120 * 3 * n
    assert cov >= least, cov


def test_lime_alpha0_hc3_covers_a_held_out_sigmoid_game() -> None:
    # a game the rule was not chosen on: HC2 0.856 over these 120 seeds (0.865 over 200; HC3 0.978)
    w = np.random.default_rng(11).normal(size=(3, 2)) * 1.5

    def f(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        s = 1 / (1 + np.exp(-(x @ w)))
        return s + np.stack([x[:, 0] * x[:, 1], -x[:, 2] * x[:, 0]], 1)

    x = np.random.default_rng(12).normal(size=(2, 3)) + 0.3
    targets = np.array([0, 1])
    truth = np.stack([_expected_fit(f, x[b], int(targets[b]), 8) for b in range(2)])
    hit = total = 0
    for seed in range(120):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tribute.StderrWarning)
            a = tribute.explain(f, x, method="lime", target=targets, baseline=0.0, budget=8, seed=seed, alpha=0.0)
        v, se = np.asarray(a.values), np.asarray(a.stderr)
        fin = np.isfinite(se)
        hit += int(((np.abs(v - truth) <= 1.96 * se) & fin).sum())
        total += int(fin.sum())
    assert total > 0.3 * 120 * 6
    assert hit / total >= 0.93, hit / total
