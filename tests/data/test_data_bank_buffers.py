"""Retrained subsets run with their own non-persistent buffers (audit aud30d).

A ``fit`` may keep what it learned from the data in a non-persistent buffer (an input
normaliser, ``register_buffer(..., persistent=False)``). The retrain bank stored only
``state_dict`` entries, so every retrained subset ran with the explained model's buffer:
leave-one-out credits were off by 0.159 on a scale of 0.166, with no warning.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.games.data_fits import RidgeFit


class _Standardised(nn.Module):
    def __init__(self, mu: torch.Tensor, persistent: bool) -> None:
        super().__init__()
        self.lin = nn.Linear(mu.numel(), 1).double()
        self.register_buffer("mu", mu, persistent=persistent)

    mu: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.lin(x - self.mu)
        return out


@pytest.mark.parametrize("persistent", [True, False])
def test_leave_one_out_uses_each_subsets_own_buffers(persistent: bool) -> None:
    rng = np.random.default_rng(8)
    X = torch.tensor(rng.normal(size=(10, 2)) + 3.0)
    y = X @ torch.tensor([1.0, -1.0], dtype=torch.float64) + 0.1 * torch.tensor(rng.normal(size=10))
    Xt = torch.tensor(rng.normal(size=(2, 2)) + 3.0)

    def fit(Xs: torch.Tensor, ys: torch.Tensor, *, seed: int,
            weights: torch.Tensor | None = None) -> nn.Module:
        Xs = torch.as_tensor(Xs)
        mu = Xs.mean(0) if len(Xs) else torch.zeros(2, dtype=torch.float64)
        lin = RidgeFit(l2=0.5)(Xs - mu, ys, seed=seed, weights=weights)
        model = _Standardised(mu.clone(), persistent)
        model.lin.load_state_dict(lin.state_dict())
        return model

    fit.loss = "mse"  # type: ignore[attr-defined]
    fit.l2 = 0.5  # type: ignore[attr-defined]
    fit.reduction = "sum"  # type: ignore[attr-defined]

    def v(idx: list[int]) -> torch.Tensor:
        with torch.no_grad():
            out: torch.Tensor = fit(X[idx], y[idx], seed=0)(Xt)[:, 0]
        return out

    everyone = list(range(10))
    loo = torch.stack([v(everyone) - v([j for j in everyone if j != i]) for i in everyone], 1)
    attr = tribute.explain(fit(X, y, seed=0), Xt, method="feature_ablation",
                           players=tribute.TrainingData(X, y, fit=fit))
    got = torch.as_tensor(np.asarray(attr.values)).reshape(2, 10)
    torch.testing.assert_close(got, loo, atol=1e-12, rtol=0)
