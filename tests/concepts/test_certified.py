"""Certified attribution robustness by uniform smoothing: geometry, closed forms, empirical bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.methods.certified import binomial_bounds, smoothing_radius, smoothing_tv


def _uniform_ball(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    g = rng.normal(size=(n, d))
    return g / np.linalg.norm(g, axis=1, keepdims=True) * rng.uniform(size=(n, 1)) ** (1.0 / d)


@pytest.mark.parametrize("d", [1, 3, 7])
def test_total_variation_of_shifted_uniform_laws_matches_monte_carlo(d: int) -> None:
    rng = np.random.default_rng(d)
    r, eps = 0.5, 0.3
    delta = np.zeros(d)
    delta[0] = eps
    u = r * _uniform_ball(200_000, d, rng)  # points of the ball around 0 outside the ball around delta
    mc = float(np.mean(np.linalg.norm(u - delta, axis=1) > r))
    assert float(smoothing_tv(eps, r, d, "l2")) == pytest.approx(mc, abs=4e-3)
    c = rng.uniform(-r, r, size=(200_000, d))
    shift = np.full(d, eps / 2)  # L-inf size eps / 2 in every coordinate
    mc_cube = float(np.mean(np.any(np.abs(c - shift) > r, axis=1)))
    assert float(smoothing_tv(eps / 2, r, d, "linf")) == pytest.approx(mc_cube, abs=4e-3)
    if d == 1:
        assert float(smoothing_tv(eps, r, 1, "l2")) == pytest.approx(eps / (2 * r))
    for sm in ("l2", "linf"):
        tv = float(smoothing_tv(0.2, r, d, sm))
        assert smoothing_radius(tv, r, d, sm) == pytest.approx(0.2, rel=1e-6)


def test_binomial_bounds_clopper_pearson_and_hoeffding() -> None:
    lo, hi = binomial_bounds(np.array([0, 5, 10]), 10, 0.05)
    assert lo[0] == 0.0 and hi[2] == 1.0
    assert lo[2] == pytest.approx(0.05 ** (1 / 10)) and hi[0] == pytest.approx(1 - 0.05 ** (1 / 10))
    lo_h, hi_h = binomial_bounds(np.array([5]), 10, 0.05, "hoeffding")
    half = np.sqrt(np.log(1 / 0.05) / 20)
    assert lo_h[0] == pytest.approx(0.5 - half) and hi_h[0] == pytest.approx(0.5 + half)


def _linear_net() -> torch.nn.Module:
    net = torch.nn.Linear(5, 1).double()
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[3.0, -2.5, 1.0, 0.2, 0.1]], dtype=torch.float64))
        net.bias.zero_()
    return net


@pytest.mark.parametrize("smoothing", ["l2", "linf"])
def test_linear_model_closed_form_radius(smoothing: str) -> None:
    """Saliency of a linear model is w everywhere: the top-k never changes under noise, so
    every count is n or 0 and the radius has a closed form in (n, alpha, players, noise, D)."""
    net = _linear_net()
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    n, alpha, k, noise = 100, 0.05, 2, 0.4
    r = tribute.certified_attribution(net, x, "saliency", noise=noise, k=k, n_samples=n, alpha=alpha,
                                      smoothing=smoothing)
    assert r.topk.tolist() == [[0, 1]] * 3
    a1 = alpha / 5
    gap = 2 * a1 ** (1 / n) - 1  # CP lower of n/n minus CP upper of 0/n
    np.testing.assert_allclose(r.gap, gap)
    tau = gap / 2
    expected = 2 * noise * (1 - (1 - tau) ** (1 / 5)) if smoothing == "linf" else smoothing_radius(tau, noise, 5)
    np.testing.assert_allclose(r.radius, expected, rtol=1e-9)
    np.testing.assert_allclose(r.smoothed, np.tile([3.0, -2.5, 1.0, 0.2, 0.1], (3, 1)), atol=1e-12)
    assert r.certified.all() and r.confidence == pytest.approx(0.95)
    # the radius shrinks with the noise level (same gap: linear in the noise)
    small = tribute.certified_attribution(net, x, "saliency", noise=noise / 4, k=k, n_samples=n, alpha=alpha,
                                          smoothing=smoothing)
    np.testing.assert_allclose(small.radius, r.radius / 4, rtol=1e-6)
    assert (small.radius < r.radius).all()


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()


def test_certified_top_k_survives_random_perturbations_inside_the_radius() -> None:
    net = _mlp()
    # inputs whose top-1 is uncertain under the noise (frequencies near 0.8 / 0.2, not 1 / 0),
    # so the certificate is not trivially true
    x = torch.tensor([[0.28, -0.48, -0.28, -0.37], [0.69, -0.09, -0.28, -0.35]], dtype=torch.float64)
    noise, k = 0.3, 1
    r = tribute.certified_attribution(net, x, "input_x_gradient", noise=noise, k=k, n_samples=400, seed=1)
    assert r.certified.all() and (r.frequency.max(1) < 0.9).all()
    rng = np.random.default_rng(0)
    checked = 0
    for i in np.nonzero(r.certified)[0]:
        top = set(r.topk[i].tolist())
        ref = tribute.certified_attribution(net, x[i:i + 1], "input_x_gradient", noise=noise, k=k,
                                            n_samples=4000, seed=7)
        for _ in range(2):
            d = rng.normal(size=4)
            d *= 0.99 * r.radius[i] / np.linalg.norm(d)
            xp = x[i:i + 1] + torch.as_tensor(d[None])
            big = tribute.certified_attribution(net, xp, "input_x_gradient", noise=noise, k=k,
                                                n_samples=4000, seed=11)
            f = big.frequency[0]
            rest = [j for j in range(4) if j not in top]
            # the certified set still outranks every other player (up to Monte-Carlo error)
            assert min(f[list(top)]) - max(f[rest]) > -0.05
            # each frequency moved by at most TV(delta) (+ Monte-Carlo error)
            assert np.abs(f - ref.frequency[0]).max() <= r.max_change(0.99 * r.radius[i]) + 0.05
            checked += 1
    assert checked == 4


def test_settings_are_validated_and_result_plots() -> None:
    net = _linear_net()
    x = torch.randn(2, 5, dtype=torch.float64)
    with pytest.raises(InputError, match=r"k=5 must be below the number of players \(5\)"):
        tribute.certified_attribution(net, x, k=5)
    with pytest.raises(InputError, match=r"noise=0.0 must be a number > 0"):
        tribute.certified_attribution(net, x, noise=0.0)
    with pytest.raises(InputError, match="smoothing='l1' must be one of"):
        tribute.certified_attribution(net, x, smoothing="l1")
    with pytest.raises(InputError, match=r"unknown parameter\(s\) \['steps'\] for method='saliency'"):
        tribute.certified_attribution(net, x, method_params={"steps": 3})
    r = tribute.certified_attribution(net, x, n_samples=20, k=2)
    assert "radius" in r.plot(0).axes[0].get_title()
    img = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 2)).double()
    ri = tribute.certified_attribution(img, torch.randn(1, 1, 6, 6, dtype=torch.float64), n_samples=10, k=3,
                                       target=0, method="occlusion")
    assert ri.smoothed.shape == (1, 36) and ri.plot(0).axes
    info = tribute.analyses()["certified_attribution"]
    assert info.kind == "robustness" and info.returns == "CertifiedResult"


class _Counting(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += int(x.shape[0])
        out: torch.Tensor = self.inner(x)
        return out


def test_rows_at_the_model_match_n_evals_and_model_is_restored() -> None:
    net = _Counting(_mlp())
    net.train()
    x = torch.randn(3, 4, dtype=torch.float64)
    r = tribute.certified_attribution(net, x, "saliency", n_samples=17, k=1)
    assert net.rows == 3 * r.n_evals == 3 * (1 + 17)
    assert net.training and all(p.requires_grad for p in net.parameters())

    class Boom(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 1).double()
            self.calls = 0

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("planted failure")
            out: torch.Tensor = self.lin(z)
            return out

    boom = Boom()
    boom.train()
    with pytest.raises(Exception, match="planted failure"):
        tribute.certified_attribution(boom, x, "saliency", n_samples=5, k=1)
    assert boom.training and not boom._forward_hooks and not boom.lin._forward_hooks
