"""Stop-32 audit of the sampling estimators: each option converges to its own definition
(truth by enumeration or closed form) and its standard errors cover it."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

import tribute
from stderr_calibration import and_game


def _rise_centred_truth(game, p: float = 0.5) -> np.ndarray:
    """``Cov(v, M_i) / p = E[v M_i] / p - E[v]`` of a toy polynomial game."""
    ev = np.array([sum(c * np.prod(xi[list(t)]) * p ** len(t) for c, t in game.terms) for xi in game.x])
    return game.rise(p) - ev[:, None]


def test_rise_centred_is_unbiased_for_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact expectation of centred RISE over every sequence of 3 masks (2 players, p=1/2):
    the sample covariance of v and M_i over p is unbiased for ``Cov(v, M_i) / p``; dividing by
    N (as before) gave 2/3 of it."""
    import importlib

    rise = importlib.import_module("tribute.methods.rise")
    w = np.array([1.0, -2.0])
    x = np.array([[1.5, 0.5]])

    def f(a: np.ndarray) -> np.ndarray:
        return a @ w + 3.0 * a[:, 0] * a[:, 1] + 1.0

    singles = [torch.tensor(m, dtype=torch.float64) for m in itertools.product([0.0, 1.0], repeat=2)]
    total = np.zeros((1, 2))
    seqs = list(itertools.product(singles, repeat=3))
    for seq in seqs:
        fixed = torch.stack(seq)
        monkeypatch.setattr(rise, "bernoulli_masks", lambda k, n, p, g, fixed=fixed: fixed[:k])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            total += np.asarray(tribute.explain(f, x, method="rise", budget=4, center=True).values)
    mean = total / len(seqs)
    # truth by enumeration of the 4 coalitions, each with probability 1/4
    masks = np.array(list(itertools.product([0.0, 1.0], repeat=2)))
    v = f(masks * x)
    truth = np.array([(v * masks[:, i]).mean() / 0.5 - v.mean() for i in range(2)])
    np.testing.assert_allclose(mean[0], truth, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("n", "budget", "low"), [(6, 12, 0.91), (9, 18, 0.95)])
def test_rise_centred_stderr_covers_a_rare_strong_interaction(n: int, budget: int, low: float) -> None:
    """Centred RISE on the AND game (150 seeds x 4 inputs, within 2 stderr): 0.902 and 0.941
    without the skewness correction of its influence terms and the unbiased covariance, 0.921
    and 0.955 with them."""
    game = and_game(n, n_inputs=4, seed=n)
    truth = _rise_centred_truth(game)
    hit = tot = 0
    for seed in range(150):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attr = tribute.explain(game, game.x, method="rise", budget=budget, seed=seed, center=True)
        err = np.abs(np.asarray(attr.values) - truth)
        se = np.asarray(attr.stderr)
        assert np.isfinite(se).all()
        hit += int((err <= 2 * se).sum())
        tot += err.size
    assert low <= hit / tot <= 0.99, hit / tot


@pytest.mark.parametrize("budget", [8, 10])
def test_banzhaf_ols_rank_deficient_draws_are_redrawn_on_additive_games(budget: int) -> None:
    """4 players, 7 or 9 sampled coalitions: a balanced draw can leave the intercept and the
    four indicators linearly dependent (seeds 3 and 28: rank 4); the pseudo-inverse then picks
    a wrong solution whose residuals, hence standard errors, are ~1e-16 (errors 0.49 and 0.55:
    |error| / stderr ~1e15). Such draws are redrawn, so additive games are exact at every seed."""
    w = np.array([0.5, -1.0, 2.0, 0.3])
    x = np.array([[1.0, 2.0, -1.0, 0.5], [0.3, -0.7, 1.2, 2.0]])
    for seed in range(60):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attr = tribute.explain(lambda a: a @ w + 1.0, x, method="banzhaf", estimator="ols",
                                   budget=budget, seed=seed)
        np.testing.assert_allclose(attr.values, w * x, atol=1e-9, err_msg=f"seed {seed}")


def test_banzhaf_ols_below_three_residual_dof_is_nan_with_a_warning() -> None:
    """At 2 residual dof (4 players, budget 8) the HC2 standard errors covered 0.79-0.81 within
    1.96 stderr (additive and MLP games, 60 seeds), half of the draws NaN by chance (leverage
    1): now NaN for every seed, from budget n + 5 (3 dof) defined for every seed."""
    from tribute.methods._stderr import StderrWarning

    x = np.array([[1.0, 2.0, -1.0, 0.5]])

    def f(a: np.ndarray) -> np.ndarray:
        return np.tanh(a @ np.array([0.5, -1.0, 2.0, 0.3])) + a[:, 0] * a[:, 1]

    for seed in range(10):
        with pytest.warns(StderrWarning, match="at least 9"):
            attr = tribute.explain(f, x, method="banzhaf", estimator="ols", budget=8, seed=seed)
        assert np.isnan(attr.stderr).all()
        with warnings.catch_warnings():
            warnings.simplefilter("error", StderrWarning)
            attr = tribute.explain(f, x, method="banzhaf", estimator="ols", budget=9, seed=seed)
        assert np.isfinite(attr.stderr).all()


@pytest.mark.parametrize("replicates", [None, 8])
def test_sobol_total_indices_of_an_additive_game_are_unbiased(replicates: int | None) -> None:
    """An additive game's total indices sum to exactly 1. Jansen's ratio of two means is biased
    by O(1/N): over 4,000 draws of 32 i.i.d. designs (8 players) the plain ratio's indices
    summed to 1.04 on average (each ~4% high); jackknifed over the replicates (each design, or
    8 groups of 4), within 0.01 of 1."""
    from tribute.methods.sobol import jansen_total

    g = torch.Generator().manual_seed(0)
    reps, n, n_designs = 4000, 8, 32
    c = torch.linspace(0.5, 1.5, n, dtype=torch.float64)
    a = torch.rand(reps, n_designs, n, generator=g, dtype=torch.float64)
    b = torch.rand(reps, n_designs, n, generator=g, dtype=torch.float64)
    fa, fb = a @ c, b @ c  # reps x N
    # hybrids C_i: A with column i from B
    fc = fa[:, None, :] + (c[None, :, None] * (b - a).transpose(1, 2))  # reps x n x N
    st, se = jansen_total(fa, fb, fc, replicates)
    truth = c**2 / (c**2).sum()
    total = st.sum(-1)
    assert abs(float(total.mean()) - 1.0) < 0.01, float(total.mean())
    np.testing.assert_allclose(st.mean(0).numpy(), truth.numpy(), rtol=0.03)
    assert bool(torch.isfinite(se).all())
