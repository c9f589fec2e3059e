"""rev50e: LIME ``alpha=0`` HC3 intervals (est50) at leverage 1 and near it.

At leverage 1 (a coalition the fit interpolates) HC3's ``r / (1 - h)^2`` is 0 / 0: the stderr
must be NaN with a StderrWarning, never 0 or inf. Just below (``1 - h`` ~ 1e-4: the empty
coalition's kernel weight 3.4e-4 is all that keeps the fit from interpolating) the interval
is finite and covers the budget's expected fit (HC2 gave 0.56 / 0.79 for errors 1.44 / 1.02).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np

import tribute


def _f(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.stack([x[:, 0] * x[:, 1] + x.sum(1), np.prod(x, 1)], 1)


def _x() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(2, 3)) + 1.0


def _truth(x: np.ndarray, target: int, budget: int) -> np.ndarray:
    # weighted least squares over all 8 coalitions: the full one (kernel 1) plus budget - 1
    # Bernoulli(1/2) draws weighted by the cosine kernel of width 0.25
    z = np.array(list(itertools.product([0.0, 1.0], repeat=3)))
    s = z.sum(1)
    d = np.where(s > 0, 1 - np.sqrt(s / 3), 1.0)
    p = (budget - 1) * np.exp(-(d**2) / (2 * 0.25**2)) / 8
    p[-1] += 1.0
    xa = np.c_[np.ones(8), z]
    y = _f(z * x[None, :])[:, target]
    return np.linalg.solve((xa * p[:, None]).T @ xa, (xa * p[:, None]).T @ y)[1:]


def test_lime_alpha0_leverage_one_gives_nan_and_a_warning_not_inf() -> None:
    seen_nan = 0
    for seed in range(12):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            a = tribute.explain(_f, _x(), method="lime", target=[0, 1], baseline=0.0, budget=5,
                                seed=seed, alpha=0.0)
        se = np.asarray(a.stderr)
        assert not np.isinf(se).any()
        assert np.isfinite(np.asarray(a.values)).all()
        if np.isnan(se).any():
            seen_nan += 1
            assert np.isnan(se).all()
            assert any(issubclass(r.category, tribute.StderrWarning) for r in rec)
        else:
            assert (se > 0).all()
    assert seen_nan >= 10  # 191 of 200 seeds at budget 5 leave no interval


def test_lime_alpha0_near_leverage_one_is_finite_and_covers() -> None:
    x = _x()
    truth = np.stack([_truth(x[b], b, 5) for b in range(2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", tribute.StderrWarning)
        a = tribute.explain(_f, x, method="lime", target=[0, 1], baseline=0.0, budget=5, seed=93,
                            alpha=0.0)
    se = np.asarray(a.stderr)[[0, 1], [0, 1]]  # sample b, target b
    err = np.abs(np.asarray(a.values)[[0, 1], [0, 1]] - truth)
    assert np.isfinite(se).all() and (se > 0).all()
    assert err.max() > 0.05  # the credits do move: an interval of ~0 would be wrong
    assert (err <= 1.96 * se).all(), (err, se)
