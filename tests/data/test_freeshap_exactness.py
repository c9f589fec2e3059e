"""FreeShap on ridge regression against data Shapley enumerated in numpy (Wang et al. 2024).

On ``nn.Linear`` the eNTK is the linear kernel ``x.x' + 1``: with a summed objective the kernel
regression on a coalition *is* ridge retraining on it, so FreeShap is exact data Shapley; with
a mean objective the surrogate keeps the full set's penalty ``n l2`` for every coalition (the
documented surrogate), which retraining does not.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.games.data_fits import LogisticFit, RidgeFit

N, D = 7, 2


def _problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(N, D))
    y = X @ np.array([1.0, -2.0]) + 0.5 * rng.normal(size=N)
    return X, y, rng.normal(size=(2, D))


def _ridge_value(X: np.ndarray, y: np.ndarray, Xt: np.ndarray, lam: Callable[[int], float]
                 ) -> Callable[[tuple[int, ...]], np.ndarray]:
    def v(S: tuple[int, ...]) -> np.ndarray:
        if not S:
            return np.zeros(len(Xt))  # the trainers' empty model: all zeros
        A = np.hstack([X[list(S)], np.ones((len(S), 1))])
        th = np.linalg.solve(A.T @ A + lam(len(S)) * np.eye(D + 1), A.T @ y[list(S)])
        return np.hstack([Xt, np.ones((len(Xt), 1))]) @ th
    return v


def _shapley(v: Callable[[tuple[int, ...]], np.ndarray], n: int) -> np.ndarray:
    vals = {S: v(S) for r in range(n + 1) for S in itertools.combinations(range(n), r)}
    out = np.zeros((len(vals[()]), n))
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for r in range(n):
            w = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
            for S in itertools.combinations(others, r):
                out[:, i] += w * (vals[tuple(sorted((*S, i)))] - vals[S])
    return out


@pytest.mark.parametrize("at", ["trained", "init"])
def test_freeshap_is_retraining_shapley_for_a_summed_ridge(at: str) -> None:
    X, y, Xt = _problem()
    fit = RidgeFit(l2=0.5, reduction="sum")
    model = fit(torch.tensor(X), torch.tensor(y), seed=0)
    data = tribute.TrainingData(torch.tensor(X), torch.tensor(y), fit=fit)
    a = tribute.explain(model, torch.tensor(Xt), method="freeshap", players=data,
                        estimator="exact_shapley", at=at)
    want = _shapley(_ridge_value(X, y, Xt, lambda k: 0.5), N)  # sum: the penalty is l2 for any S
    np.testing.assert_allclose(a.values.numpy().reshape(want.shape), want, rtol=1e-10, atol=1e-12)


def test_freeshap_mean_ridge_is_the_fixed_lambda_surrogate() -> None:
    X, y, Xt = _problem()
    l2 = 0.1
    fit = RidgeFit(l2=l2, reduction="mean")
    model = fit(torch.tensor(X), torch.tensor(y), seed=0)
    data = tribute.TrainingData(torch.tensor(X), torch.tensor(y), fit=fit)
    a = tribute.explain(model, torch.tensor(Xt), method="freeshap", players=data,
                        estimator="exact_shapley")
    got = a.values.numpy().reshape(2, N)
    surrogate = _shapley(_ridge_value(X, y, Xt, lambda k: N * l2), N)
    np.testing.assert_allclose(got, surrogate, rtol=1e-10, atol=1e-12)
    retrain = _shapley(_ridge_value(X, y, Xt, lambda k: k * l2), N)  # what retraining on S is
    gap = np.abs(got - retrain).max() / np.abs(retrain).max()
    assert gap > 0.05  # the docstring's stated gap (15% here); a future exact rule changes this test


def test_freeshap_one_training_example() -> None:
    """n_train = 1: the permutation and its reverse are the same one-element order (a reversed
    numpy view torch refused: 'negative strides'); the credit is v({0}) - v({})."""
    X, y, Xt = _problem()
    fit = RidgeFit(l2=0.5)
    model = fit(torch.tensor(X[:1]), torch.tensor(y[:1]), seed=0)
    data = tribute.TrainingData(torch.tensor(X[:1]), torch.tensor(y[:1]), fit=fit)
    a = tribute.explain(model, torch.tensor(Xt), method="freeshap", players=data, n_permutations=2)
    want = _ridge_value(X[:1], y[:1], Xt, lambda k: 0.5)((0,))
    np.testing.assert_allclose(a.values.numpy().reshape(-1), want, rtol=1e-10)


def test_trak_one_training_example_names_a_possible_fix() -> None:
    X, _, Xt = _problem()
    yc = np.array([0])
    fit = LogisticFit(2)
    model = fit(torch.tensor(X[:1]), torch.tensor(yc), seed=0)
    data = tribute.TrainingData(torch.tensor(X[:1]), torch.tensor(yc), fit=fit)
    with pytest.raises(InputError, match="Pass regularization > 0") as err:
        tribute.explain(model, torch.tensor(Xt), method="trak", players=data, target=0)
    assert "proj_dim < 1" not in str(err.value)
