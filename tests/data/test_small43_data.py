"""small43: data methods on bfloat16 / float16 models (torch's ``Got unsupported ScalarType
BFloat16`` before) give the credits of the same rounded model in float64, returned in float32."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from data_cases import ridge_case

import tribute


def _ridge_half(dtype: torch.dtype) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor,
                                             torch.Tensor, torch.Tensor, torch.Tensor]:
    """A ridge model and data rounded to ``dtype``, plus the closed-form gradients in float64
    of that rounded model: test-output gradients ``[x, 1]`` and training-loss gradients
    ``(f(x_i) - y_i) [x_i, 1]``, and ``H = A^T A + l2 I`` (l2 = 1)."""
    case = ridge_case(n=40, n_test=3)
    model = copy.deepcopy(case.model).to(dtype)
    X, Xt = case.X.to(dtype), case.X_test.to(dtype)
    W = model.weight.detach().double().reshape(-1)
    b = model.bias.detach().double().reshape(())
    A = torch.cat([X.double(), torch.ones(len(X), 1, dtype=torch.float64)], 1)
    At = torch.cat([Xt.double(), torch.ones(len(Xt), 1, dtype=torch.float64)], 1)
    resid = X.double() @ W + b - case.y
    H = A.T @ A + torch.eye(A.shape[1], dtype=torch.float64)
    return model, X, case.y, Xt, At, resid[:, None] * A, H


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models_get_float64_credits_returned_in_float32(dtype: torch.dtype) -> None:
    model, X, y, Xt, g_test, g_train, H = _ridge_half(dtype)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = tribute.TrainingData(X, y, loss="mse", l2=1.0, reduction="sum")
    dot = tribute.explain(model, Xt, method="grad_dot", players=data, lr=1.0).values
    inf = tribute.explain(model, Xt, method="influence", players=data, solver="explicit").values
    assert dot.dtype == torch.float32 and inf.dtype == torch.float32  # not rounded to 8 bits
    want_dot = -(g_test @ g_train.T)
    want_inf = -(g_test @ torch.linalg.solve(H, g_train.T))
    # float32 rounding of float64 credits only: relative 6e-8 (bfloat16 would be 4e-3)
    np.testing.assert_allclose(dot.double().numpy(), want_dot.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(inf.double().numpy(), want_inf.numpy(), rtol=1e-6, atol=1e-6)
    # distinct truths stay distinct (bfloat16 credits tied several training examples)
    for row, truth in zip(dot, want_dot, strict=True):
        assert len(torch.unique(row)) == len(torch.unique(truth.float()))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).dtype == dtype


@pytest.mark.parametrize("method,kw", [("trak", {"proj_dim": 5}), ("freeshap", {"n_permutations": 2}),
                                       ("grad_cos", {}), ("tracin", {}), ("representer", {}),
                                       ("influence", {"solver": "cg"})])
def test_bfloat16_model_equals_its_float64_copy(method: str, kw: dict[str, Any]) -> None:
    model, X, y, Xt, *_ = _ridge_half(torch.bfloat16)
    got = tribute.explain(model, Xt, method=method, seed=3, **kw,
                          players=tribute.TrainingData(X, y, loss="mse", l2=1.0, reduction="sum")).values
    ref = tribute.explain(copy.deepcopy(model).double(), Xt.double(), method=method, seed=3, **kw,
                          players=tribute.TrainingData(X.double(), y, loss="mse", l2=1.0, reduction="sum")).values
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.double().numpy(), ref.numpy(), rtol=1e-6, atol=1e-6)
