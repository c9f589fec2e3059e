"""The reference trainers train the objective their ``reduction`` declares (audit aud30d).

``TrainingData`` reads ``fit.reduction`` as the objective the influence estimators
differentiate; before, ``RidgeFit``/``LogisticFit`` always trained a sum and ``MLPFit``/``ConvFit``
always a mean, whatever ``reduction=`` said, and ``loss=`` was ignored by all four.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.games.data_fits import ConvFit, LogisticFit, MLPFit, RidgeFit


def _ridge_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 3))
    y = X @ rng.normal(size=3) + 0.3 * rng.normal(size=12)
    return X, y, rng.normal(size=(4, 3))


def test_ridge_mean_trains_the_mean_objective_and_influence_matches_it() -> None:
    X, y, Xt = _ridge_data()
    n, l2 = len(X), 0.7
    A, At = np.c_[X, np.ones(n)], np.c_[Xt, np.ones(len(Xt))]
    H = A.T @ A / n + l2 * np.eye(4)
    theta = np.linalg.solve(H, A.T @ y / n)
    fit = RidgeFit(l2=l2, reduction="mean")
    model = fit(torch.tensor(X), torch.tensor(y), seed=0)
    got = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
    np.testing.assert_allclose(got, theta, atol=1e-12)  # before: the summed objective's
    # Koh & Liang by hand, the penalty inside each example's loss (L_i = loss_i + l2/2 |theta|^2,
    # the mean objective = mean_i L_i): -(1/n) grad_test^T H^-1 grad L_i. Leaving example i out
    # of a mean objective renormalises the others (aud40d): grad loss_i alone was 41% off
    # leave-one-out retraining at every n
    r = A @ theta - y
    truth = -(At @ np.linalg.solve(H, (A * r[:, None] + l2 * theta).T)) / n
    attr = tribute.explain(model, Xt, method="influence",
                           players=tribute.TrainingData(X, y, fit=fit))
    np.testing.assert_allclose(np.asarray(attr.values).reshape(truth.shape), truth, atol=1e-12)


def test_logistic_mean_is_stationary_for_the_mean_objective() -> None:
    rng = np.random.default_rng(1)
    X, y = torch.tensor(rng.normal(size=(15, 2))), torch.tensor(rng.integers(0, 3, 15))
    w = torch.tensor(rng.uniform(0.5, 2.0, 15))
    fit = LogisticFit(3, l2=0.5, reduction="mean")
    model = fit(X, y, seed=0, weights=w)
    params = list(model.parameters())
    ce = torch.nn.functional.cross_entropy(model(X), y, reduction="none")
    obj = (w * ce).sum() / w.sum() + 0.25 * sum((p * p).sum() for p in params)
    grads = torch.autograd.grad(obj, params)
    assert max(float(g.abs().max()) for g in grads) < 1e-9


@pytest.mark.parametrize("trainer", [MLPFit(3, hidden=4, steps=1, momentum=0.0, reduction="sum"),
                                     ConvFit(3, height=4, width=4, channels=2, steps=1,
                                             momentum=0.0, reduction="sum")])
def test_mlp_and_conv_sum_take_a_step_on_the_summed_objective(trainer: MLPFit | ConvFit) -> None:
    rng = np.random.default_rng(2)
    X, y = torch.tensor(rng.normal(size=(6, 16))), torch.tensor(rng.integers(0, 3, 6))
    start = trainer.init(16, 0) if isinstance(trainer, MLPFit) else trainer.init(0)
    params = list(start.parameters())
    ce = torch.nn.functional.cross_entropy(start(X), y, reduction="none")
    obj = ce.sum() + 0.5 * trainer.l2 * sum((p * p).sum() for p in params)
    want = [p - trainer.lr * g for p, g in zip(params, torch.autograd.grad(obj, params))]
    got = list(trainer(X, y, seed=0).parameters())
    for a, b in zip(got, want):  # before: a step on the mean (n = 6 times smaller)
        torch.testing.assert_close(a, b.detach(), atol=1e-12, rtol=0)


@pytest.mark.parametrize("make", [lambda: RidgeFit(reduction="median"),
                                  lambda: RidgeFit(loss="cross_entropy"),
                                  lambda: LogisticFit(3, loss="mse"),
                                  lambda: MLPFit(3, loss="binary_cross_entropy"),
                                  lambda: ConvFit(3, reduction="none")])
def test_options_the_trainer_cannot_train_are_refused(make: object) -> None:
    with pytest.raises(tribute.InputError, match=r"(reduction|loss)="):
        make()  # type: ignore[operator]

