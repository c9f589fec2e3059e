"""aud40i: interaction indices, Banzhaf, permutation Shapley and TreeSHAP checked against truths
computed outside tribute (enumeration in numpy, closed forms); shapiq and shap parity was
checked offline (see /work/notes40/r_aud40i.md)."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch

import tribute
from tribute_testing import make_mlp


# ------------------------------------------------------------------- permutation Shapley
@pytest.mark.parametrize("n,budget", [(1, 4), (1, 9), (2, 4), (2, 6), (2, 11)])
def test_permutation_shapley_on_one_or_two_players_is_exact_with_zero_stderr(n: int, budget: int) -> None:
    # aud40i F1: a permutation and its reverse are every permutation of 1 or 2 players, so each
    # antithetic pair gives the exact Shapley values. The standard errors said otherwise: NaN
    # with a StderrWarning at one pair (budget 4), and the spread of the single permutations
    # (0.00098 at budget 6 on this model, for an error of 0.0) below 8 pairs
    model = make_mlp(n, 1, seed=2)
    x = torch.linspace(-1.0, 1.2, n, dtype=torch.float64)[None]
    exact = tribute.explain(model, x, method="exact_shapley", baseline=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no StderrWarning
        attr = tribute.explain(model, x, method="permutation_shapley", baseline=0.0, budget=budget)
    np.testing.assert_allclose(attr.values.numpy(), exact.values.numpy(), rtol=0, atol=1e-12)
    assert attr.stderr is not None
    np.testing.assert_array_equal(attr.stderr.numpy(), 0.0)


# ------------------------------------------------------------------------------- Banzhaf
class _And(torch.nn.Module):
    """``v(S) = 1`` iff every player is present (baseline 0, input 1): Banzhaf ``2^-(n-1)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.prod(1, keepdim=True)


def test_bernoulli_design_gives_every_player_both_sides() -> None:
    # aud40i F2: design='bernoulli' left a player's column all present (or all absent) with
    # probability 2^(1-k): its MSR value was NaN, under a warning about standard errors only
    # (6 players, budget 8 (k = 7), seed 3: player 1 in all 7 coalitions; 9% of seeds)
    from tribute.methods.banzhaf import banzhaf_masks

    for seed in range(200):
        m = banzhaf_masks(6, 7, torch.Generator().manual_seed(seed), "bernoulli")
        assert bool(((m.sum(0) >= 1) & (m.sum(0) <= 6)).all()), seed
    x = np.ones((1, 6))
    f = lambda a: np.asarray(a).sum(1) + np.asarray(a)[:, 0] * np.asarray(a)[:, 1]  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attr = tribute.explain(f, x, method="banzhaf", baseline=0.0, design="bernoulli", budget=8, seed=3)
    assert np.isfinite(np.asarray(attr.values)).all(), attr.values


def test_bernoulli_design_stays_unbiased_at_small_budgets() -> None:
    # the redrawn columns keep every entry present with probability 1/2 and the columns
    # independent: the 5-player AND game's Banzhaf value 1/16 is still the mean over seeds
    n, seeds = 5, 300
    x = torch.ones(1, n, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vals = np.array([tribute.explain(_And(), x, method="banzhaf", baseline=0.0, budget=6, seed=s,
                                         target=0, design="bernoulli").values.numpy()[0]
                         for s in range(seeds)])
    assert np.isfinite(vals).all()
    se = vals.std(0) / np.sqrt(seeds)
    assert np.all(np.abs(vals.mean(0) - 2.0 ** -(n - 1)) < 4.5 * se + 1e-12), (vals.mean(0), se)


# ------------------------------------------------------------------ interaction indices
def _table(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, bg: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """``2^n x T`` values ``v(S) = mean_b f(x_S, b_-S)`` over the groups' coalitions (bitmask order)."""
    n = len(groups)
    out = []
    for m in range(2**n):
        z = bg.copy()
        for p in range(n):
            if m >> p & 1:
                z[:, groups[p]] = x[groups[p]]
        out.append(f(z).mean(0))
    return np.array(out)


def _sii_and_shapley(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grabisch-Roubens pair index and Shapley values by their definitions (``v``: ``2^n``)."""
    n = int(np.log2(len(v)))
    phi, inter = np.zeros(n), np.zeros((n, n))
    for i in range(n):
        for s in range(n):
            for rest in itertools.combinations([p for p in range(n) if p != i], s):
                m = sum(1 << p for p in rest)
                phi[i] += math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) * (v[m | 1 << i] - v[m])
    for i, j in itertools.combinations(range(n), 2):
        for s in range(n - 1):
            for rest in itertools.combinations([p for p in range(n) if p not in (i, j)], s):
                m = sum(1 << p for p in rest)
                d = v[m | 1 << i | 1 << j] - v[m | 1 << i] - v[m | 1 << j] + v[m]
                inter[i, j] += math.factorial(s) * math.factorial(n - s - 2) / math.factorial(n - 1) * d
        inter[j, i] = inter[i, j]
    return inter, phi


def test_shapley_interactions_with_a_background_groups_and_two_outputs() -> None:
    # non-symmetric quadratic + a 3-way product + a non-polynomial second output; a 3-row
    # background, 4 groups over 6 columns: every index against its definition (shapiq 1.8's
    # SII / k-SII / STII / JointSV agreed to 2e-15 on the same tables, offline)
    rng = np.random.default_rng(0)
    a, c = rng.normal(size=(6, 6)), rng.normal(size=6)

    def f(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        return np.stack([np.einsum("bi,ij,bj->b", z, a, z) + 1.3 * z[:, 0] * z[:, 2] * z[:, 5],
                         np.tanh(z @ c) * z[:, 1]], 1)

    groups = [[0, 1], [2], [3, 4], [5]]
    x, bg = rng.normal(size=(2, 6)), rng.normal(size=(3, 6))
    attr = tribute.explain(f, x, method="shapley_interactions", baseline=tribute.Background(bg),
                           groups=[0, 0, 1, 2, 2, 3], target=[0, 1])
    for r in range(2):
        v = _table(f, x[r], bg, groups)
        for t in range(2):
            inter, phi = _sii_and_shapley(v[:, t])
            got = attr.extra["interactions"][r, t]
            np.testing.assert_allclose(got[~np.eye(4, dtype=bool)], inter[~np.eye(4, dtype=bool)], atol=1e-12)
            np.testing.assert_allclose(np.diag(got), phi, atol=1e-12)
            total = v[-1, t] - v[0, t]
            # k-SII (shap convention): rows sum to phi, all to v(N) - v(empty); STII likewise
            np.testing.assert_allclose(attr.extra["shap_interaction_values"][r, t].sum(-1), phi, atol=1e-12)
            assert abs(attr.extra["shapley_taylor"][r, t].sum() - total) < 1e-12


# ------------------------------------------------------------------- Integrated Hessians
def test_integrated_hessians_of_a_cubic_from_a_non_zero_baseline() -> None:
    # f = c x0 x1 x2 from baseline b (d = x - b): on the path b + g d, d2f/dx0 dx1 = c (b2 + g d2),
    # and the weight of g = a c is -ln g, whose moments are E[g^k] = 1/(k+1)^2, so
    #   Gamma_01 = c d0 d1 (b2 / 4 + d2 / 9),
    #   Gamma_00 = c d0 (b1 b2 + (b1 d2 + d1 b2) / 4 + d1 d2 / 9).
    # The quadrature is exact for piecewise-linear integrands; this one is quadratic in g,
    # so the error falls as steps^-2 (1.3e-5 at 256 steps here)
    class Cubic(torch.nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return 1.5 * (z[:, 0] * z[:, 1] * z[:, 2])[:, None]

    x = torch.tensor([[0.7, -1.1, 1.3]], dtype=torch.float64)
    b = torch.tensor([0.4, 0.2, -0.5], dtype=torch.float64)
    d, bb = (x[0] - b).numpy(), b.numpy()
    want = np.zeros((3, 3))
    for i, j, k in itertools.permutations(range(3)):
        want[i, j] = 1.5 * d[i] * d[j] * (bb[k] / 4 + d[k] / 9)
        want[i, i] = 1.5 * d[i] * (bb[j] * bb[k] + (bb[j] * d[k] + d[j] * bb[k]) / 4 + d[j] * d[k] / 9)
    for steps, tol in ((64, 2e-3), (256, 1.5e-4)):
        attr = tribute.explain(Cubic(), x, method="integrated_hessians", baseline=b, steps=steps)
        got = attr.extra["shap_interaction_values"][0, 0]
        np.testing.assert_allclose(got, want, rtol=0, atol=tol)
        # completeness up to the quadrature error, reported as the gap
        total = float(Cubic()(x) - Cubic()(b[None]))
        assert abs(float(got.sum()) - total - float(np.asarray(attr.gap).ravel()[0])) < 1e-12


# ------------------------------------------------------------------------------ TreeSHAP
def test_tree_shap_interventional_interactions_over_groups_and_a_weighted_background() -> None:
    ensemble = pytest.importorskip("sklearn.ensemble")
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 6))
    y = (X[:, 0] * X[:, 1] + np.sin(X[:, 2]) + X[:, 3] * (X[:, 4] > 0) > 0.3).astype(int)
    model = ensemble.GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0).fit(X, y)
    x, bg, w = X[:2], X[10:14], np.array([1.0, 2.0, 0.5, 3.0])
    groups = [[0, 1], [2], [3, 4], [5]]
    for target, sign in ((0, -1.0), (1, 1.0)):  # class 0: the negated margin
        attr = tribute.explain(model, x, method="tree_shap", feature_perturbation="interventional",
                               interactions=True, baseline=tribute.Background(bg, weights=w),
                               groups=[0, 0, 1, 2, 2, 3], target=target)
        got = np.asarray(attr.extra["interactions"]).reshape(2, 4, 4)
        for r in range(2):
            want = np.zeros((4, 4))
            for row, wr in zip(bg, w):
                inter, phi = _sii_and_shapley(sign * _table(lambda z: model.decision_function(z)[:, None],
                                                            x[r], row[None], groups)[:, 0])
                shap_conv = inter / 2
                np.fill_diagonal(shap_conv, phi - inter.sum(1) / 2)
                want += wr * shap_conv / w.sum()
            np.testing.assert_allclose(got[r], want, atol=1e-12)
