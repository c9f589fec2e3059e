"""aud51d: training-data attribution audit of stop 51."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.autograd.function import once_differentiable

import tribute
from tribute.errors import UnsupportedModelError


class _Tanh(torch.autograd.Function):
    """tanh as a torch.func-ready custom Function (twice differentiable backward, no jvp)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.tanh(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: torch.Tensor) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


class _OnceTanh(_Tanh):
    """The same Function with its backward marked ``@once_differentiable``."""

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _Tanh.backward(ctx, g)


class _Net(torch.nn.Module):
    def __init__(self, act: Any) -> None:
        super().__init__()
        self.l1, self.l2, self.act = torch.nn.Linear(3, 4), torch.nn.Linear(4, 1), act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.l1(x)
        return self.l2(torch.tanh(h) if self.act is None else self.act(h))


def _tanh_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(12, 3, generator=g, dtype=torch.float64)
    y = torch.randn(12, generator=g, dtype=torch.float64)
    Xt = torch.randn(2, 3, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    return X, y, Xt, _Net(None).double().state_dict()


@pytest.mark.parametrize("solver", ["explicit", "cg"])
def test_influence_refuses_a_once_differentiable_function_in_the_hessian(solver: str) -> None:
    """Under torch.func a ``@once_differentiable`` backward's result carries no derivative, so
    the training loss's Hessian silently lost every term through it, with no error:
    ``influence`` (explicit) was up to 0.011 off with ``damping=1`` (credits up to 0.16) and
    1.74 off with ``damping=None`` (credits up to 0.32) against the same network with
    ``torch.tanh``, itself equal to a hand influence from ``torch.autograd.functional.hessian``."""
    X, y, Xt, state = _tanh_case()
    model = _Net(_OnceTanh.apply).double()
    model.load_state_dict(state)
    data = tribute.TrainingData(X, y, loss="mse", l2=0.5)
    with pytest.raises(UnsupportedModelError, match=r"'_OnceTanh'.*once_differentiable"):
        tribute.explain(model, Xt, method="influence", players=data, solver=solver, damping=1.0,
                        progress=False)
    # first-order estimators through the same Function stay exact
    ref = _Net(None).double()
    ref.load_state_dict(state)
    a = tribute.explain(model, Xt, method="grad_dot", players=data, progress=False)
    b = tribute.explain(ref, Xt, method="grad_dot", players=data, progress=False)
    assert torch.allclose(a.values, b.values, rtol=1e-10, atol=1e-12)


def test_influence_through_a_twice_differentiable_function_matches_torch_tanh() -> None:
    """The check refuses only the marker: the same Function with a differentiable backward
    gives torch.tanh's influence (explicit solver), and cg (forward mode, which the Function
    does not implement) is refused by name instead of torch's raw NotImplementedError."""
    X, y, Xt, state = _tanh_case()
    model, ref = _Net(_Tanh.apply).double(), _Net(None).double()
    model.load_state_dict(state)
    ref.load_state_dict(state)
    data = tribute.TrainingData(X, y, loss="mse", l2=0.5)
    a = tribute.explain(model, Xt, method="influence", players=data, solver="explicit", damping=1.0,
                        progress=False)
    b = tribute.explain(ref, Xt, method="influence", players=data, solver="explicit", damping=1.0,
                        progress=False)
    assert torch.allclose(a.values, b.values, rtol=1e-10, atol=1e-12)
    with pytest.raises(UnsupportedModelError, match=r"solver='explicit'"):
        tribute.explain(model, Xt, method="influence", players=data, solver="cg", damping=1.0,
                        progress=False)
