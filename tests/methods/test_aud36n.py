"""Audit aud36n: noise wrappers over a stochastic base, DeepLIFT / LRP on architectures the other
tests never used (in-place activations whose input is read again, shared modules, GELU/SiLU/Mish).

Truths are computed outside tribute: DeepLIFT's rescale rule written out by hand on small
networks (per-call multipliers ``(f(h) - f(h0)) / (h - h0)`` chained through the weights), and
integrated gradients with 64 Gauss-Legendre nodes for the limit of SmoothGrad over expected
gradients at noise 0. Every comparison reads the model's own weights, so no tolerance depends on
the random draws of this machine's CPU.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pytest
import torch
from torch import nn

import tribute

M = TypeVar("M", bound=nn.Module)


def _double(seed: int, build: Callable[[], M]) -> M:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        m = build()
    return m.double().eval()


def _rescale(f: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """DeepLIFT's rescale multiplier of an elementwise ``f`` (the derivative where ``h == h0``)."""
    dh = h - h0
    same = dh.abs() <= 1e-10
    with torch.enable_grad():
        hg = h.detach().clone().requires_grad_(True)
        (deriv,) = torch.autograd.grad(f(hg).sum(), hg)
    return torch.where(same, deriv, (f(h) - f(h0)) / torch.where(same, torch.ones_like(dh), dh))


# ------------------------------------------------------------------------------------- DeepLIFT
class _PreActSkip(nn.Module):
    """``o(l1(relu_(h)) + h)`` with ``h = l0(x)``: the in-place ReLU overwrites ``h``, so the
    skip adds ``relu(h)`` (what the model computes, with or without hooks)."""

    def __init__(self) -> None:
        super().__init__()
        self.l0, self.relu, self.l1, self.o = nn.Linear(4, 6), nn.ReLU(inplace=True), nn.Linear(6, 6), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.l0(x)
        out = self.l1(self.relu(h))
        return self.o(out + h)


def test_deeplift_inplace_activation_whose_input_is_read_again() -> None:
    """The rescale hook ran an in-place ReLU on a clone of ``h``, so ``h`` kept its
    pre-activation value and the skip added ``h`` instead of ``relu(h)``: the hooked model was
    another function. Its own outputs gave the gap, so the gap read 1e-17 while the credits
    summed to -0.114 for S(x) - S(x0) = -0.047 (first sample)."""
    model = _double(0, _PreActSkip)
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x0 = torch.zeros(1, 4, dtype=torch.float64)
    a = tribute.explain(model, x, method="deeplift", target=1, baseline=x0[0], progress=False)
    phi = a.flat().reshape(3, 4)
    with torch.no_grad():
        delta = (model(x.clone())[:, 1] - model(x0.clone())[:, 1]).numpy()
        w0, b0, w1, wo = model.l0.weight, model.l0.bias, model.l1.weight, model.o.weight
        h, h0 = x @ w0.T + b0, x0 @ w0.T + b0
        m = _rescale(torch.relu, h, h0)
        d_out_d_r = wo[1] @ (w1 + torch.eye(6, dtype=torch.float64))  # l1(r) + r
        ref = ((x - x0) * ((d_out_d_r * m) @ w0)).numpy()
    np.testing.assert_allclose(phi.sum(1), delta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(phi, ref, rtol=1e-9, atol=1e-12)
    assert model.relu.inplace  # the model is left as it was


def _chain_reference(layers: list[tuple[str, object]], x: torch.Tensor, x0: torch.Tensor, t: int) -> np.ndarray:
    """Rescale-rule DeepLIFT of a chain of ``("lin", nn.Linear)`` / ``("act", f)`` calls."""
    h, h0 = x, x0
    factors: list[tuple[str, torch.Tensor]] = []
    with torch.no_grad():
        for kind, op in layers:
            if kind == "lin":
                assert isinstance(op, nn.Linear)
                h, h0 = op(h), op(h0)
                factors.append(("W", op.weight))
            else:
                f = op
                assert callable(f)
                factors.append(("m", _rescale(f, h, h0)))
                h, h0 = f(h), f(h0)
        g = torch.zeros(x.shape[0], h.shape[1], dtype=x.dtype)
        g[:, t] = 1.0
        for kind, mat in reversed(factors):
            g = g @ mat if kind == "W" else g * mat
        return ((x - x0) * g).numpy()


@pytest.mark.parametrize("act", [nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Softplus, nn.ELU])
def test_deeplift_smooth_activations_match_the_rescale_rule(act: type[nn.Module]) -> None:
    """GELU/SiLU/Mish/Hardswish (which Captum's DeepLift treats as plain gradients: 1e-2 off the
    rescale rule here) follow the rescale rule to rounding, summation-to-delta included."""
    model = _double(2, lambda: nn.Sequential(nn.Linear(5, 8), act(), nn.Linear(8, 8), act(),
                                             nn.Dropout(0.5), nn.Linear(8, 3)))
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 5, dtype=torch.float64, generator=gen)
    x0 = 0.1 * torch.randn(1, 5, dtype=torch.float64, generator=gen)
    a = tribute.explain(model, x, method="deeplift", target=1, baseline=x0[0], progress=False)
    f = act()
    ref = _chain_reference([("lin", model[0]), ("act", f), ("lin", model[2]), ("act", f), ("lin", model[5])], x, x0, 1)
    np.testing.assert_allclose(a.flat().reshape(4, 5), ref, rtol=1e-9, atol=1e-13)
    assert np.abs(np.asarray(a.gap)).max() < 1e-12


@pytest.mark.parametrize("inplace", [False, True])
def test_deeplift_module_called_twice(inplace: bool) -> None:
    """One Linear and one ReLU used twice in forward: per-call multipliers, as written out."""

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin, self.relu, self.out = nn.Linear(5, 5), nn.ReLU(inplace=inplace), nn.Linear(5, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.relu(self.lin(self.relu(self.lin(x)))))

    model = _double(4, Shared)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(6, 5, dtype=torch.float64, generator=gen)
    x0 = 0.3 * torch.randn(1, 5, dtype=torch.float64, generator=gen)
    a = tribute.explain(model, x, method="deeplift", target=1, baseline=x0[0], progress=False)
    ref = _chain_reference([("lin", model.lin), ("act", torch.relu), ("lin", model.lin),
                            ("act", torch.relu), ("lin", model.out)], x, x0, 1)
    np.testing.assert_allclose(a.flat().reshape(6, 5), ref, rtol=1e-9, atol=1e-13)


# ------------------------------------------------------------------------------ noise wrappers
def _tanh_mlp() -> nn.Module:
    return _double(0, lambda: nn.Sequential(nn.Linear(4, 10), nn.Tanh(), nn.Linear(10, 8),
                                            nn.Softplus(), nn.Linear(8, 2)))


def _x() -> torch.Tensor:
    return 1.5 * torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))


def test_smoothgrad_over_a_stochastic_base_draws_per_copy() -> None:
    """At noise 0 every copy is ``x``: with the base's draws shared by the copies (one view,
    one seed), the copies were identical, VarGrad was exactly 0 and SmoothGrad's standard error
    1e-18 while its value was expected gradients with 2 draws, 2e-3 off the limit."""
    model, x = _tanh_mlp(), _x()
    v = tribute.explain(model, x, method="vargrad", base="expected_gradients",
                        base_params={"n_samples": 2}, n_samples=8, noise=0.0, target=1, progress=False)
    assert float(np.asarray(v.values).min()) > 0.0  # 2-draw estimates differ between copies


def test_smoothgrad_over_expected_gradients_stderr_covers_the_limit() -> None:
    """+-2 standard errors cover the limit (integrated gradients, 64 Gauss-Legendre nodes; noise
    0.01 moves it by ~1e-4 of a 1e-3 stderr) in most of 30 seeds x 8 credits: 0% before."""
    model, x = _tanh_mlp(), _x()
    limit = tribute.explain(model, x, method="integrated_gradients", steps=64, target=1,
                            progress=False).flat().reshape(2, 4)
    hits = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(30):
            a = tribute.explain(model, x, method="smoothgrad", base="expected_gradients",
                                base_params={"n_samples": 2}, n_samples=8, noise=0.0, target=1,
                                seed=seed, progress=False)
            se = np.asarray(a.stderr).reshape(2, 4)
            hits.append(np.abs(a.flat().reshape(2, 4) - limit) <= 2 * se)
    coverage = float(np.mean(hits))
    assert coverage >= 0.85, coverage  # 95% nominal; 240 correlated draws


def test_stochastic_base_keeps_batch_independence_and_seeds() -> None:
    """Explaining one sample alone gives the batch's numbers; the same seed repeats them."""
    model, x = _tanh_mlp(), _x()
    kw: dict[str, Any] = dict(method="smoothgrad", base="expected_gradients", base_params={"n_samples": 3},
              n_samples=5, noise=0.2, target=1, seed=11, progress=False)
    both = tribute.explain(model, x, **kw).flat()
    again = tribute.explain(model, x, **kw).flat()
    alone = tribute.explain(model, x[1:2], **kw).flat()
    np.testing.assert_array_equal(both, again)
    np.testing.assert_allclose(alone[0], both[1], rtol=0, atol=1e-15)
