"""influence with TrainingData(groups=...): first order is additive over a group; the
leave-one-out Newton step is not, and is refused instead of summed (checked against
leave-group-out retraining written here in numpy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.games.data_fits import RidgeFit


def _case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(12, 2))
    y = X @ np.array([1.0, -1.0]) + 0.3 * rng.normal(size=12)
    return X, y, rng.normal(size=(2, 2)), np.repeat(np.arange(4), 3)


def _ridge(X: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    A = np.hstack([X, np.ones((len(X), 1))])
    return np.linalg.solve(A.T @ A + l2 * np.eye(A.shape[1]), A.T @ y)


def test_first_order_influence_is_the_sum_over_a_group() -> None:
    X, y, Xt, groups = _case()
    fit = RidgeFit(l2=0.5)
    model = fit(torch.tensor(X), torch.tensor(y), seed=0)
    A, At = np.hstack([X, np.ones((12, 1))]), np.hstack([Xt, np.ones((2, 1))])
    th = _ridge(X, y, 0.5)
    H = A.T @ A + 0.5 * np.eye(3)
    per_example = -At @ np.linalg.solve(H, ((A @ th - y)[:, None] * A).T)  # Koh & Liang, sum objective
    want = np.stack([per_example[:, groups == k].sum(1) for k in range(4)], 1)
    data = tribute.TrainingData(torch.tensor(X), torch.tensor(y), fit=fit, groups=groups)
    a = tribute.explain(model, torch.tensor(Xt), method="influence", players=data)
    np.testing.assert_allclose(a.values.numpy().reshape(2, 4), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loo_iters", [1, 5])
def test_loo_step_with_groups_is_refused(loo_iters: int) -> None:
    X, y, Xt, groups = _case()
    fit = RidgeFit(l2=0.5)
    model = fit(torch.tensor(X), torch.tensor(y), seed=0)
    # what summing the examples' exact leave-one-out changes would miss: leave-group-out
    At = np.hstack([Xt, np.ones((2, 1))])
    th = _ridge(X, y, 0.5)
    group_out = np.stack([At @ th - At @ _ridge(X[groups != k], y[groups != k], 0.5) for k in range(4)], 1)
    summed = np.stack([sum(At @ th - At @ _ridge(np.delete(X, i, 0), np.delete(y, i), 0.5)
                           for i in np.flatnonzero(groups == k)) for k in range(4)], 1)
    assert np.abs(summed - group_out).max() > 0.1 * np.abs(group_out).max()
    data = tribute.TrainingData(torch.tensor(X), torch.tensor(y), fit=fit, groups=groups)
    with pytest.raises(InputError, match=r"loo_step=True.*groups.*feature_ablation"):
        tribute.explain(model, torch.tensor(Xt), method="influence", players=data, loo_step=True,
                        loo_iters=loo_iters)
