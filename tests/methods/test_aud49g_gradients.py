"""aud49g: gradient methods on models whose rows interact, and other truths computed outside tribute.

Regression (silent before the fix): ``integrated_hessians`` sends each node once per player and
differentiates, per pass, one entry of the gradient of the *sum* of the pass's values. The
engine's check that a model evaluates its rows independently looked at that derivative. On a
model that subtracts a batch mean before ReLUs it is blind (the sum over rows has zero second
derivatives), so the check passed on one input: the credits came from the mixed rows (0.00023 off
for a largest credit of 0.0475), and the model was marked checked for the process: saliency,
kernel_shap, integrated_gradients and deeplift on batches of the same model then ran with no
error (kernel_shap 0.235 off for a largest credit of 0.211). The check now reads the rows'
values.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import tribute
from tribute.errors import ModelOutputError
from tribute.methods.integrated_hessians import log_quadrature


class _InputMean(nn.Module):
    """``x - 0.5 mean_batch(x)`` then Linear -> ReLU -> Linear: the rows of a pass interact."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.r, self.b = nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - 0.5 * x.mean(0, keepdim=True)
        return self.b(self.r(self.a(x)))


def _mixing() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return _InputMean().double().eval(), torch.randn(4, 5, dtype=torch.float64)


def test_integrated_hessians_refuses_rows_mixed_before_relus() -> None:
    model, x = _mixing()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ModelOutputError, match="changes with the other rows of its batch"):
        tribute.explain(model, x[:1], "integrated_hessians", target=0, steps=4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training


@pytest.mark.parametrize("method", ["saliency", "kernel_shap", "integrated_gradients", "deeplift"])
def test_a_refused_hessian_pass_leaves_the_model_unchecked(method: str) -> None:
    # the blind check marked the model checked: these calls on a batch then ran silently
    model, x = _mixing()
    with pytest.raises(ModelOutputError):
        tribute.explain(model, x[:1], "integrated_hessians", target=0, steps=4)
    with pytest.raises(ModelOutputError, match="changes with the other rows of its batch"):
        tribute.explain(model, x, method, target=0)


def test_integrated_hessians_one_row_per_pass_is_the_rows_alone() -> None:
    # batch_size=1 (what the refusal suggests) evaluates each row alone: there the model is
    # f(0.5 x), so the credits are the log-quadrature IG of that function, by hand
    model, x = _mixing()
    steps = 6
    attr = tribute.explain(model, x[:1], "integrated_hessians", target=0, steps=steps, batch_size=1)
    nodes, weights = log_quadrature(steps)
    want = torch.zeros(5, dtype=torch.float64)
    for g, w in zip(nodes.tolist(), weights.tolist()):
        p = (g * x[:1]).clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(p)[0, 0], p)  # one row: alone
        want += w * grad[0] * x[0]
    assert torch.allclose(attr.values[0], want, atol=1e-12, rtol=0)


class _Quadratic(nn.Module):
    """``0.5 x^T H x + c^T x`` per row, plus a second output; row-wise."""

    def __init__(self, d: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        a = torch.randn(d, d, generator=g, dtype=torch.float64)
        self.h: torch.Tensor
        self.c: torch.Tensor
        self.register_buffer("h", a + a.T)
        self.register_buffer("c", torch.randn(d, generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = 0.5 * ((x @ self.h) * x).sum(1) + x @ self.c
        return torch.stack([q, -q + x[:, 0]], 1)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_integrated_hessians_on_rowwise_models_still_runs_exactly(n: int) -> None:
    # neighbours of the refusal: row-wise models at batch 1 / 2 / 5 run, and a quadratic gets
    # Gamma_ij = x_i x_j H_ij / 4 + delta_ij x_i ((H x)_i / 4 + c_i) (baseline 0; int -ln g = 1,
    # int -g ln g = 1/4), exact at any steps
    d = 4
    model = _Quadratic(d).eval()
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attr = tribute.explain(model, x, "integrated_hessians", target=0, steps=3)
    gamma = torch.as_tensor(attr.extra["shap_interaction_values"])[:, 0]
    h = model.h
    want = x[:, :, None] * x[:, None, :] * h / 4
    idx = torch.arange(d)
    want[:, idx, idx] += x * ((x @ h) / 4 + model.c)
    assert torch.allclose(gamma, want, atol=1e-12, rtol=0)


class _Tanh(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_integrated_hessians_batch_equals_rows_alone_on_a_rowwise_model() -> None:
    torch.manual_seed(1)
    model = _Tanh().double().eval()
    x = torch.randn(4, 5, dtype=torch.float64)
    whole = tribute.explain(model, x, "integrated_hessians", target=[0, 2], steps=5)
    for i in range(4):
        alone = tribute.explain(model, x[i:i + 1], "integrated_hessians", target=[0, 2], steps=5)
        assert torch.allclose(whole.values[i], alone.values[0], atol=1e-14, rtol=0)
