"""DeepLIFT where ``x - x0`` is zero (float16 models, ``eps=0``) and max pooling of 2-D inputs (audit aud34l)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import tribute


def _model(dtype: torch.dtype, channel_axis: bool = True) -> nn.Module:
    torch.manual_seed(0)
    pool: list[nn.Module] = ([nn.Unflatten(1, (1, 6)), nn.MaxPool1d(2), nn.Flatten()] if channel_axis
                             else [nn.MaxPool1d(2)])  # (N, 6) pooled like an unbatched (C, L) input
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), *pool, nn.Linear(3, 2)).to(dtype).eval()


def _inputs() -> torch.Tensor:
    # row 0 equals the baseline in every feature, so every unit has x - x0 == 0 there
    return torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.5, -1.0, 0.25, 2.0], [1.0, 0.0, -0.5, 0.75]])


@pytest.mark.parametrize(("dtype", "eps"), [(torch.float16, 1e-10), (torch.float64, 0.0)])
def test_zero_difference_uses_the_local_derivative(dtype: torch.dtype, eps: float) -> None:
    """float16: the default eps=1e-10 rounds to 0, so ``|dx| < eps`` never held and the rescale
    ratio was 0/0 (NaN in the forward value: a ModelOutputError); eps=0 did the same in float64."""
    model = _model(dtype)
    x = _inputs().to(dtype)
    attr = tribute.explain(model, x, method="deeplift", baseline=0.0, target=[0, 1], eps=eps, progress=False)
    ref = tribute.explain(_model(torch.float64), x.double(), method="deeplift", baseline=0.0, target=[0, 1],
                          progress=False)
    got = attr.values.double().numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref.values.numpy(), atol=5e-3 if dtype == torch.float16 else 1e-12)
    assert np.abs(got[0]).max() == 0.0  # x == x0: no difference to attribute
    with torch.no_grad():
        delta = (model(x) - model(torch.zeros_like(x))).double().numpy()
    np.testing.assert_allclose(got.sum(-1), delta, atol=5e-3 if dtype == torch.float16 else 1e-12)


def test_max_pool_of_a_two_dimensional_input() -> None:
    """MaxPool1d on (N, L) (no channel axis) raised an IndexError in the max-pool rule; its
    credits equal those of the same model with an explicit channel axis."""
    x = _inputs().double()
    flat = tribute.explain(_model(torch.float64, channel_axis=False), x, method="deeplift", baseline=0.5,
                           target=[0, 1], progress=False)
    ref = tribute.explain(_model(torch.float64), x, method="deeplift", baseline=0.5, target=[0, 1],
                          progress=False)
    np.testing.assert_allclose(flat.values.numpy(), ref.values.numpy(), rtol=1e-12, atol=1e-14)
    assert np.abs(np.asarray(flat.gap)).max() < 1e-12


def test_no_false_warning_from_16_bit_rounding() -> None:
    """aud34l: a float16 model built only from supported modules was warned about (summation-
    to-delta 'off by 50%', blaming functional nonlinearities) when S(x) - S(x0) was a few
    float16 steps: the gap was the output's own rounding. A real violation still warns."""
    import warnings

    model = _model(torch.float16)
    first = model.get_submodule("0")
    assert isinstance(first, nn.Linear)
    with torch.no_grad():
        first.bias.fill_(0.5)  # logits near 0.5: float16 steps of 5e-4
    x = 1e-3 * _inputs()[1:].to(torch.float16)  # a small difference: S(x) - S(x0) of a few steps
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tribute.explain(model, x, method="deeplift", baseline=0.0, target=[0, 1], progress=False)

    class Gated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.h = nn.Linear(4, 6), nn.Linear(4, 6), nn.Linear(6, 1)
            self.sig = nn.Sigmoid()

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return self.h(self.sig(self.a(t)) * self.b(t))  # a product DeepLIFT cannot see

    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="summation-to-delta is off"):
        tribute.explain(Gated().to(torch.float16), 3 * _inputs()[1:].to(torch.float16), method="deeplift",
                        baseline=0.0, target=0, progress=False)
