"""Audit aud42d: training sets holding a NaN or an infinity, for the estimators that mix every
example into each credit (influence's Hessian, TRAK's kernel, FreeShap's eNTK).

Before: a NaN feature in one training example failed inside LAPACK (``linalg.eigh`` /
``linalg.svd`` / ``linalg.cholesky`` ``_LinAlgError``), ``solver="cg"`` returned NaN for every
credit with no message, and LiSSA blamed the damping ("H + nan I is not positive definite").
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.games.data_fits import RidgeFit

L2 = 0.5


def _ridge() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    X = torch.randn(6, 2, generator=g, dtype=torch.float64)
    y = torch.randn(6, generator=g, dtype=torch.float64)
    return X, y, torch.randn(2, 2, generator=g, dtype=torch.float64)


CASES = [("influence", {"solver": "explicit"}), ("influence", {"solver": "cg"}),
         ("influence", {"solver": "lissa"}), ("influence", {"solver": "ekfac"}),
         ("trak", {"proj_dim": 3}), ("freeshap", {"n_permutations": 2})]


@pytest.mark.parametrize(("method", "kw"), CASES)
@pytest.mark.parametrize("where", ["X", "y"])
def test_non_finite_training_example_is_named(method: str, kw: dict[str, Any], where: str) -> None:
    X, y, Xt = _ridge()
    model = RidgeFit(l2=L2)(X, y, seed=0)
    if where == "X":
        X = X.clone()
        X[2, 0] = float("nan")
    else:
        y = y.clone()
        y[2] = float("inf")
    data = tribute.TrainingData(X, y, loss="mse", l2=L2, reduction="sum")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InputError, match=r"not finite for training example\(s\) \[2\]"):
        tribute.explain(model, Xt, method=method, players=data, **kw)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and all(p.requires_grad for p in model.parameters())


class _Imputing(torch.nn.Module):
    """A linear model that reads a NaN feature as 0 (its loss is finite on every example)."""

    def __init__(self, lin: torch.nn.Module) -> None:
        super().__init__()
        self.lin = lin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.nan_to_num(x, nan=0.0))


def test_a_model_that_imputes_nan_features_is_not_refused() -> None:
    # closed-form ridge influence -a_t^T H^-1 a_i r_i on the imputed features (summed objective)
    X, y, Xt = _ridge()
    Xn = X.clone()
    Xn[2, 0] = float("nan")
    Xi = torch.nan_to_num(Xn, nan=0.0)
    lin = RidgeFit(l2=L2)(Xi, y, seed=0)
    A = torch.cat([Xi, torch.ones(6, 1, dtype=torch.float64)], 1)
    At = torch.cat([Xt, torch.ones(2, 1, dtype=torch.float64)], 1)
    H = A.T @ A + L2 * torch.eye(3, dtype=torch.float64)
    theta = torch.linalg.solve(H, A.T @ y)
    r = A @ theta - y
    truth = -(At @ torch.linalg.solve(H, A.T)) * r[None, :]
    data = tribute.TrainingData(Xn, y, loss="mse", l2=L2, reduction="sum")
    attr = tribute.explain(_Imputing(lin), Xt, method="influence", players=data, damping=0.0)
    got = torch.as_tensor(attr.values).reshape(truth.shape)
    assert torch.allclose(got, truth, rtol=1e-8, atol=1e-12)
