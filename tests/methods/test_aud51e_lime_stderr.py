"""aud51e: LIME ``alpha=0`` standard errors that the drawn coalitions cannot back.

Two holes of the sandwich standard error, where the draw misses part of the sampler's support:

* players whose credits the design cannot separate (rank-deficient normal matrix): the
  minimum-norm fit splits their credit by convention and the residuals say nothing about it;
* a fit that is exact on the drawn coalitions while some pair of players never shows one of
  its keep/remove combinations: an interaction between them is absorbed into their credits and
  leaves no residual, so the stderr read ~1e-12 for credits off by 0.4-0.8.

Truth: the weighted least-squares fit over all ``2^n`` coalitions with the sampler's expected
weights (the full coalition once plus ``(budget - 1) 2^-n`` times the cosine kernel), in numpy.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import numpy as np
import pytest

import tribute
from tribute.errors import StderrWarning

_A4 = np.array([1.0, -2.0, 0.5, 3.0])
_X4 = np.array([[1.0, 1.5, -2.0, 0.5]])


def _add4(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=float) @ _A4


_COEF = np.random.default_rng(103).normal(size=(3, 2))


def _lin3(x: np.ndarray) -> np.ndarray:
    """Additive plus ``1.5 x0 x1`` (target 0); target 1 has other interactions."""
    x = np.asarray(x, dtype=float)
    return np.asarray(x @ _COEF + np.stack([1.5 * x[:, 0] * x[:, 1],
                                            -x[:, 1] * x[:, 2] + 0.7 * x[:, 0] * x[:, 2] ** 2], 1))


def _population_fit(f: object, x: np.ndarray, budget: int) -> np.ndarray:
    """Credits (targets x n) of the kernel-weighted fit over every coalition, weighted as drawn."""
    n = x.shape[0]
    z = np.array(list(itertools.product([0.0, 1.0], repeat=n)))
    y = f(z * x[None, :])  # type: ignore[operator]
    s = z.sum(1)
    d = np.where(s > 0, 1.0 - np.sqrt(s / n), 1.0)
    p = (budget - 1) * 2.0**-n * np.exp(-(d**2) / (2 * 0.25**2))
    p[-1] += 1.0
    xa = np.c_[np.ones(len(z)), z]
    return np.asarray(np.linalg.solve((xa * p[:, None]).T @ xa, (xa * p[:, None]).T @ y)[1:].T)


def _explain(f: object, x: np.ndarray, budget: int, seed: int, **kw: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        a = tribute.explain(f, x, method="lime", baseline=0.0, budget=budget, seed=seed, alpha=0.0, **kw)
    msgs = [str(w.message) for w in ws if issubclass(w.category, StderrWarning)]
    return np.asarray(a.values), np.asarray(a.stderr), msgs


def test_lime_alpha0_unseparated_players_get_nan_stderr_not_zero() -> None:
    # seed 33 draws players 0 and 1 always together: the additive game's credits split as
    # (x0 a0 + x1 a1) / 2 each, off by 2.0 and -2.0, while the stderr said 0.0
    values, se, msgs = _explain(_add4, _X4, 8, 33)
    err = np.abs(values[0] - _A4 * _X4[0])
    assert err[0] > 1.0 and err[1] > 1.0
    assert np.isnan(se[0, :2]).all()
    assert any("cannot separate the credits of players 0, 1" in m for m in msgs)


def test_lime_alpha0_exact_fit_with_an_unseen_pair_combination_gives_nan() -> None:
    x = np.random.default_rng(10).normal(size=(3, 3)) + 0.8
    values, se, msgs = _explain(_lin3, x, 6, 125, target=[0, 1])
    truth = _population_fit(_lin3, x[2], 6)
    # target 0 of sample 2: credits off by 0.81 and 3.3 (1.5 x0 x1 absorbed into player 0's
    # credit); the stderr of every sample's target 0 was ~1e-12 (their residuals are all 0)
    assert np.abs(values[2, 0] - truth[0]).max() > 3.0
    assert np.isnan(se[:, 0]).all()
    assert any("player 0 is never drawn without player 1" in m for m in msgs)
    # target 1 has residuals: its stderr stays finite
    assert np.isfinite(se[:, 1]).all()


def test_lime_alpha0_additive_game_keeps_zero_stderr_where_the_design_sees_every_pair() -> None:
    # seed 13: the 8 drawn coalitions identify every player and show every pair in all four
    # keep/remove combinations; the credits are exact and so is the stderr ~0 (no warning)
    values, se, msgs = _explain(_add4, _X4, 8, 13)
    assert np.abs(values[0] - _A4 * _X4[0]).max() < 1e-12
    assert np.isfinite(se).all() and float(se.max()) < 1e-9
    assert msgs == []


@pytest.mark.parametrize("budget", [24, 64])
def test_lime_alpha0_larger_budgets_keep_finite_stderr_on_an_interaction_game(budget: int) -> None:
    # residuals exist (the game is not additive): nothing is refused by the new rules
    x = np.random.default_rng(10).normal(size=(3, 3)) + 0.8
    _values, se, msgs = _explain(_lin3, x, budget, 0, target=[0, 1])
    assert np.isfinite(se).all() and float(se.min()) > 0.0
    assert msgs == [], msgs
    assert not math.isnan(float(se.sum()))
