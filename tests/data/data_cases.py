"""Small seeded data-game cases with closed forms (ridge, logistic regression, an MLP)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.autograd.function import once_differentiable

import tribute
from tribute.games.data_fits import LogisticFit, MLPFit, RidgeFit


@dataclass
class Case:
    X: torch.Tensor
    y: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    fit: Any
    model: torch.nn.Module

    def data(self, **kw: Any) -> tribute.TrainingData:
        return tribute.TrainingData(self.X, self.y, fit=self.fit, **kw)


def ridge_case(n: int = 100, d: int = 5, n_test: int = 6, l2: float = 1.0, seed: int = 0) -> Case:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    y = X @ w + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    Xt = torch.randn(n_test, d, generator=g, dtype=torch.float64)
    fit = RidgeFit(l2=l2)
    return Case(X, y, Xt, Xt @ w, fit, fit(X, y, seed=0))


def logistic_case(n: int = 100, d: int = 5, n_test: int = 6, l2: float = 1.0, seed: int = 0) -> Case:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    noise = 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    y = (X[:, 0] + 0.5 * X[:, 1] + noise > 0).long() + (X[:, 2] > 1).long()
    Xt = torch.randn(n_test, d, generator=g, dtype=torch.float64)
    fit = LogisticFit(3, l2=l2)
    yt = (Xt[:, 0] + 0.5 * Xt[:, 1] > 0).long() + (Xt[:, 2] > 1).long()
    return Case(X, y, Xt, yt, fit, fit(X, y, seed=0))


def mlp_case(n: int = 40, d: int = 4, n_test: int = 3, seed: int = 0, steps: int = 60) -> Case:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = (X[:, 0] * X[:, 1] > 0).long()
    Xt = torch.randn(n_test, d, generator=g, dtype=torch.float64)
    fit = MLPFit(2, hidden=8, steps=steps, lr=0.3)
    return Case(X, y, Xt, (Xt[:, 0] * Xt[:, 1] > 0).long(), fit, fit(X, y, seed=0))


class CountingFit:
    """A case's fit, counting the models it trains."""

    def __init__(self, fit: Any) -> None:
        self.fit, self.calls = fit, 0

    def __call__(self, x: torch.Tensor, y: torch.Tensor, *, seed: int = 0, weights: Any = None) -> Any:
        self.calls += 1
        return self.fit(x, y, seed=seed, weights=weights)


class FuncTanh(torch.autograd.Function):
    """tanh as a torch.func-ready custom Function (twice-differentiable backward, no jvp)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: torch.Tensor) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


class OnceTanh(FuncTanh):
    """The same Function with its backward marked ``@once_differentiable`` (torch.func then drops
    its second derivative: aud51d, rev51d)."""

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        return FuncTanh.backward(ctx, g)
