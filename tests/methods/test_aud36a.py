"""aud36a: Banzhaf, Integrated Hessians, conductance, guided backprop checked against truths
computed outside tribute (enumeration, closed forms, Captum), on models tribute's other tests
do not use."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch

import tribute
from tribute import components
from tribute.methods.banzhaf import banzhaf_masks


# ----------------------------------------------------------------------------- Banzhaf
@pytest.mark.parametrize("k", [3, 7, 15])
def test_balanced_design_present_with_probability_one_half_at_odd_k(k: int) -> None:
    # aud36a F1: for an odd number k of coalitions every column held ceil(k/2) ones, so every
    # player was present with probability (k + 1) / (2k) (4/7 at k = 7), not 1/2
    gen = torch.Generator().manual_seed(0)
    n, draws = 6, 2000
    share = torch.stack([banzhaf_masks(n, k, gen).mean() for _ in range(draws)])
    # a column's share is (k // 2 + coin) / k: sd 0.5 / k per column, n columns per draw
    se = 0.5 / k / np.sqrt(draws * n)
    assert abs(float(share.mean()) - 0.5) < 5 * se
    # every player still on both sides of every draw
    m = banzhaf_masks(n, k, gen)
    assert bool(((m.sum(0) >= 1) & (m.sum(0) <= k - 1)).all())


def test_balanced_design_unchanged_at_even_k() -> None:
    # an even k keeps the former draws (k/2 ones per column, same generator stream)
    gen = torch.Generator().manual_seed(3)
    got = banzhaf_masks(5, 8, gen)
    gen = torch.Generator().manual_seed(3)
    order = torch.rand(8, 5, generator=gen, dtype=torch.float64).argsort(dim=0)
    want = (torch.arange(8) < 4).to(torch.float64)[order]
    assert torch.equal(got, want)


class _And(torch.nn.Module):
    """``v(S) = 1`` iff every player is present (baseline 0, input 1): Banzhaf ``2^-(n-1)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.prod(1, keepdim=True)


@pytest.mark.parametrize("estimator,budget", [("msr", 8), ("ols", 12)])
def test_banzhaf_unbiased_at_an_odd_number_of_coalitions(estimator: str, budget: int) -> None:
    # aud36a F1: budget 8 is v(N) plus 7 coalitions; on the 5-player AND game (Banzhaf value
    # 1/16) the fixed ceil(k/2) design gave the semivalue at p = 4/7: (4/7)^4 = 0.107 (MSR, 0.107
    # over 3000 seeds) and 0.100 with OLS at 11 coalitions; the mean over seeds must be 1/16
    n, seeds = 5, 300
    x = torch.ones(1, n, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vals = np.array([tribute.explain(_And(), x, method="banzhaf", baseline=0.0, budget=budget, seed=s,
                                         target=0, estimator=estimator).values.numpy()[0]
                         for s in range(seeds)])
    exact = 2.0 ** -(n - 1)
    se = vals.std(0) / np.sqrt(seeds)
    assert np.all(np.abs(vals.mean(0) - exact) < 4.5 * se + 1e-12), (vals.mean(0), se)


def _exact_banzhaf(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, bg: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    vals = {}
    for bits in itertools.product([0, 1], repeat=n):
        m = np.array(bits, dtype=bool)
        z = bg.copy()
        z[:, m] = x[m]
        vals[bits] = float(f(z).mean())
    return np.array([np.mean([v for b, v in vals.items() if b[i]]) - np.mean([v for b, v in vals.items() if not b[i]])
                     for i in range(n)])


def test_banzhaf_exact_on_a_boosted_model_with_a_background_set() -> None:
    ensemble = pytest.importorskip("sklearn.ensemble")
    rs = np.random.RandomState(0)
    X = rs.randn(200, 6)
    y = np.sin(X[:, 0]) * X[:, 1] + X[:, 2] ** 2 + (X[:, 3] > 0)
    model = ensemble.GradientBoostingRegressor(n_estimators=20, random_state=0).fit(X, y)
    bg, xs = X[:5], X[10:12]
    attr = tribute.explain(model, xs, method="banzhaf", baseline=tribute.Background(bg))
    want = np.stack([_exact_banzhaf(model.predict, x, bg) for x in xs])
    np.testing.assert_allclose(np.asarray(attr.values), want, atol=1e-10)
    assert attr.n_evals == 2**6 and attr.n_rows == 2 * (1 + 63 * 5)


# ----------------------------------------------------------------------------- Integrated Hessians
def test_integrated_hessians_closed_form_of_an_asymmetric_quadratic() -> None:
    # f(x) = x^T A x + b^T x with A not symmetric: Hessian A + A^T; E[a c] = 1/4 on the path
    g = torch.Generator().manual_seed(3)
    n = 4
    a = torch.randn(n, n, dtype=torch.float64, generator=g)
    b = torch.randn(n, dtype=torch.float64, generator=g)

    class Quad(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (((x @ a) * x).sum(-1) + x @ b)[:, None]

    x = torch.randn(2, n, dtype=torch.float64, generator=g)
    base = torch.randn(n, dtype=torch.float64, generator=g)
    h = a + a.T
    for steps in (1, 5):
        attr = tribute.explain(Quad(), x, method="integrated_hessians", baseline=base, steps=steps, target=0)
        gamma = np.asarray(attr.extra["shap_interaction_values"])[:, 0]
        for s in range(2):
            d = x[s] - base
            want = d[:, None] * d[None, :] * h / 4 + torch.diag(d * (h @ base + b + h @ d / 4))
            np.testing.assert_allclose(gamma[s], want.numpy(), atol=1e-12)


# ----------------------------------------------------------------------------- conductance
class _ResCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.a1 = torch.nn.Softplus()
        self.c2 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.a2 = torch.nn.Tanh()
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a1(self.c1(x))
        h = h + self.a2(self.c2(h))
        return self.fc(self.pool(h).flatten(1))


@pytest.mark.parametrize("layer", ["a1", "c2"])
def test_conductance_captum_parity_on_a_residual_cnn_with_a_baseline(layer: str) -> None:
    captum = pytest.importorskip("captum.attr")
    net = _ResCNN().double().eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # float64 draws: the same model on every CPU (the gap check reads its numbers)
        for p in net.parameters():
            p.copy_(0.5 * torch.randn(p.shape, dtype=torch.float64, generator=g))
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64, generator=g)
    base = 0.3 * torch.randn(2, 6, 6, dtype=torch.float64, generator=g)
    attr = tribute.explain(net, x, method="conductance", players=components(net, layer, unit="channel"),
                           target=2, n_steps=30, baseline=base)
    ref = captum.LayerConductance(net, getattr(net, layer)).attribute(
        x, baselines=base[None].expand_as(x), target=2, n_steps=30, method="riemann_trapezoid").sum((2, 3))
    np.testing.assert_allclose(attr.values.numpy(), ref.detach().numpy(), atol=1e-10)
    if layer == "a1":
        # every path crosses a1: the layer's credits sum to v(x) - v(x') up to the left Riemann
        # sum's O(1 / n_steps) error, so 10x the steps leaves a fifth of the gap or less
        total = (net(x)[:, 2] - net(base[None])[0, 2]).detach().numpy()
        fine = tribute.explain(net, x, method="conductance", players=components(net, layer, unit="channel"),
                               target=2, n_steps=300, baseline=base)
        gap30 = np.abs(attr.values.sum(1).numpy() - total)
        gap300 = np.abs(fine.values.sum(1).numpy() - total)
        assert np.all(gap300 <= gap30 / 5 + 1e-12), (gap30, gap300)


# ----------------------------------------------------------------------------- guided backprop
@pytest.mark.filterwarnings("ignore:Setting backward hooks:UserWarning")  # Captum's own notice
def test_guided_backprop_and_deconvolution_captum_parity_on_a_residual_cnn_with_a_reused_relu() -> None:
    captum = pytest.importorskip("captum.attr")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = torch.nn.Conv2d(3, 6, 3, padding=1)
            self.r = torch.nn.ReLU(inplace=True)  # called twice
            self.c2 = torch.nn.Conv2d(6, 6, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(6)
            self.pool = torch.nn.MaxPool2d(2)
            self.fc = torch.nn.Linear(6 * 4 * 4, 5)
            self.r2 = torch.nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.r(self.c1(x))
            h = h + self.r(self.bn(self.c2(h)))
            return self.fc(self.r2(self.pool(h)).flatten(1))

    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = Net().double()
    mean, var = net.bn.running_mean, net.bn.running_var
    assert mean is not None and var is not None
    with torch.no_grad():
        mean.uniform_(-0.5, 0.5)
        var.uniform_(0.5, 2.0)
    net.train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    tgt = torch.tensor([0, 3, 4])
    for method, cls in (("guided_backprop", captum.GuidedBackprop), ("deconvolution", captum.Deconvolution)):
        attr = tribute.explain(net, x, method=method, target=tgt)
        net.eval()
        ref = cls(net).attribute(x.clone().requires_grad_(), target=tgt)
        net.train()
        np.testing.assert_allclose(attr.values.numpy(), ref.detach().numpy(), atol=1e-12)
        assert net.training and net.r.inplace and not net.r._forward_hooks
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
