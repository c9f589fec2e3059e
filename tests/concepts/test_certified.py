"""Certified attribution robustness by uniform smoothing: geometry, closed forms, empirical bound."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats

import tribute
from tribute.errors import InputError
from tribute.methods.certified import (
    binomial_bounds,
    cosine_lower_bound,
    norm_deviation_bound,
    smoothing_radius,
    smoothing_tv,
)
from tribute_testing import RowCounter


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
    a1 = alpha / (2 * 5)  # 2 x 5 one-sided bounds (T is picked from the same draws)
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


def test_rows_at_the_model_match_n_evals_and_model_is_restored() -> None:
    net = RowCounter(_mlp())
    net.train()
    x = torch.randn(3, 4, dtype=torch.float64)
    r = tribute.certified_attribution(net, x, "saliency", n_samples=17, k=1, eps=0.01, clip_norm=0.5)
    assert net.rows == 3 * r.n_evals == 3 * (1 + 17)
    assert r.cosine_lower is not None and r.cosine_lower.shape == (3,)
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


# ---------------------------------------------------------------- Wang & Kong's cosine certificate


def test_cosine_lower_bound_is_attained_and_below_the_perpendicular_form() -> None:
    """Every w within rho of v (||v|| = m) has cos(v, w) >= sqrt(1 - rho^2 / m^2), attained on the
    tangent; the perpendicular form m / sqrt(m^2 + rho^2) is *not* a valid bound."""
    m = 1.3
    v = np.array([m, 0.0])
    theta = np.linspace(0.0, 2 * np.pi, 200_001)
    for rho in (0.1, 0.65, 1.2):
        w = v + rho * np.stack([np.cos(theta), np.sin(theta)], axis=1)  # the sphere holds the minimum
        cos = w @ v / (np.linalg.norm(w, axis=1) * m)
        bound = float(cosine_lower_bound(m, rho))
        assert bound == pytest.approx(np.sqrt(1 - (rho / m) ** 2))
        assert cos.min() >= bound - 1e-12 and cos.min() == pytest.approx(bound, abs=1e-9)
        assert cos.min() < m / np.sqrt(m**2 + rho**2) - (1e-3 if rho > 0.5 else 1e-7)
    inner = 0.5 * np.stack([np.cos(theta[::1000]), np.sin(theta[::1000])], axis=1)  # and inside the ball
    assert ((v + inner) @ v / (np.linalg.norm(v + inner, axis=1) * m)).min() >= float(cosine_lower_bound(m, 0.5))
    assert float(cosine_lower_bound(m, m)) == -1.0 and float(cosine_lower_bound(0.0, 0.0)) == -1.0
    np.testing.assert_array_equal(cosine_lower_bound(np.array([1.0, 2.0]), 0.0), [1.0, 1.0])


@pytest.mark.parametrize("smoothing", ["l2", "linf"])
def test_shift_of_the_smoothed_map_is_at_most_two_m_tv_and_attained(smoothing: str) -> None:
    """||g(x + delta) - g(x)|| <= 2 M TV(delta), with equality for c = +M v on the points only the
    shifted region holds and -M v on those only the original holds (Monte Carlo, D = 3)."""
    rng = np.random.default_rng(3)
    d, r, eps, big = 3, 0.5, 0.2, 400_000
    delta = np.full(d, eps) if smoothing == "linf" else np.array([eps, 0.0, 0.0])
    if smoothing == "l2":
        u, w = r * _uniform_ball(big, d, rng), r * _uniform_ball(big, d, rng)
        inside = lambda y, c: np.linalg.norm(y - c, axis=1) <= r  # noqa: E731
    else:
        u, w = rng.uniform(-r, r, (big, d)), rng.uniform(-r, r, (big, d))
        inside = lambda y, c: np.all(np.abs(y - c) <= r, axis=1)  # noqa: E731
    m_clip = 2.5

    def c(y: np.ndarray) -> np.ndarray:  # the worst base map (values in {-M, 0, M} along e1)
        return m_clip * (inside(y, delta).astype(float) - inside(y, 0.0).astype(float))

    shift = np.mean(c(w + delta)) - np.mean(c(u))
    bound = 2 * m_clip * float(smoothing_tv(eps, r, d, smoothing))
    assert abs(shift) == pytest.approx(bound, rel=0.02)


def test_norm_deviation_bound_covers_the_monte_carlo_error() -> None:
    """||g_hat - g|| <= beta fails with probability <= alpha (here far less: the bound is
    dimension-free and conservative); beta shrinks as 1 / sqrt(n) and scales with M."""
    rng = np.random.default_rng(0)
    n, alpha, dim, reps = 50, 0.05, 8, 4000
    beta = norm_deviation_bound(n, alpha)
    assert beta == pytest.approx((1 + np.sqrt(2 * np.log(20))) / np.sqrt(50))
    assert norm_deviation_bound(4 * n, alpha, 3.0) == pytest.approx(1.5 * beta)
    # unit vectors: +e1 w.p. 0.7, else a random signed axis (mean 0.7 e1 + 0.3 * 0)
    sign = rng.choice([-1.0, 1.0], size=(reps, n))
    axis = rng.integers(0, dim, size=(reps, n))
    vecs = np.zeros((reps, n, dim))
    np.put_along_axis(vecs, axis[..., None], sign[..., None], axis=2)
    keep = rng.uniform(size=(reps, n)) < 0.7
    vecs[keep] = np.eye(dim)[0]
    mean = np.zeros(dim)
    mean[0] = 0.7
    err = np.linalg.norm(vecs.mean(1) - mean, axis=1)
    assert np.mean(err > beta) <= alpha
    assert np.quantile(err, 0.95) > beta / 10  # and not absurdly loose (a sqrt(n) slip shows here)


class _AbsPlus(torch.nn.Module):
    """f(y) = |y_1| + y_2: saliency (sign(y_1), 1), normalised (sign(y_1), 1) / sqrt(2)."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return (y[:, 0].abs() + y[:, 1])[:, None]


def _disk_mean_sign(t: np.ndarray) -> np.ndarray:
    """E sign(u_1 + t) for u uniform in the unit disk (t = x_1 / r): 1 - 2 * area(u_1 < -t) / pi."""
    t = np.clip(t, -1.0, 1.0)
    return np.asarray(1.0 - 2.0 * (np.arccos(t) - t * np.sqrt(1.0 - t**2)) / np.pi)


def test_cosine_certificate_on_a_2d_toy_with_a_closed_form_smoothed_map() -> None:
    """g(x) = (E sign(y_1), 1) / sqrt(2) over the disk, in closed form: the estimate is within
    beta of it, and the certified bound is below the exact smallest cosine over the eps-disk."""
    r, n, alpha = 0.5, 400, 0.05
    x = torch.tensor([[0.1, 0.3], [-0.05, 1.0], [0.4, -0.2], [0.8, 0.0]], dtype=torch.float64)
    res = tribute.certified_attribution(_AbsPlus(), x, "saliency", noise=r, k=1, n_samples=n, alpha=alpha,
                                        min_cosine=0.95, eps=0.1)
    g = np.stack([_disk_mean_sign(x[:, 0].numpy() / r), np.ones(4)], axis=1) / np.sqrt(2)
    assert res.normalised and res.clip_norm == 1.0
    assert res.norm_error == pytest.approx(norm_deviation_bound(n, alpha))
    assert (np.linalg.norm(res.clipped - g, axis=1) <= res.norm_error).all()
    np.testing.assert_allclose(res.norm_lower, np.linalg.norm(res.clipped, axis=1) - res.norm_error)
    # the radius solves 2 M TV(eps) = norm_lower * sqrt(1 - 0.95^2) (bisection of the disk TV)
    for i in range(4):
        tv = float(smoothing_tv(res.cosine_radius[i], r, 2))
        assert 2 * tv == pytest.approx(res.norm_lower[i] * np.sqrt(1 - 0.95**2), rel=1e-6)
    assert res.cosine_lower is not None
    np.testing.assert_allclose(res.cosine_lower, res.cosine_bound(0.1))
    for i in range(4):
        for eps in (0.02, 0.1, float(res.cosine_radius[i])):
            d1 = np.linspace(-eps, eps, 2001)  # g depends on x_1 only: the eps-disk's x_1 range
            gp = np.stack([_disk_mean_sign((x[i, 0].item() + d1) / r), np.ones_like(d1)], axis=1) / np.sqrt(2)
            exact = (gp @ g[i] / (np.linalg.norm(gp, axis=1) * np.linalg.norm(g[i]))).min()
            assert float(res.cosine_bound(eps)[i]) <= exact
        assert exact >= 0.95  # at the cosine radius


def test_cosine_bound_closed_form_and_monotone_on_a_linear_model() -> None:
    """Saliency of a linear model is w everywhere: g = w / ||w|| exactly, so ||g_hat|| = 1 and the
    bound is sqrt(1 - (2 TV(eps) / (1 - beta))^2): decreasing in eps, increasing in the noise."""
    net = _linear_net()
    x = torch.randn(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    n, alpha = 200, 0.05
    beta = norm_deviation_bound(n, alpha)
    eps = np.linspace(0.0, 0.3, 31)
    prev = None
    for noise in (0.2, 0.4, 0.8):
        r = tribute.certified_attribution(net, x, "saliency", noise=noise, n_samples=n, alpha=alpha, k=2)
        w = np.array([3.0, -2.5, 1.0, 0.2, 0.1])
        np.testing.assert_allclose(r.clipped, np.tile(w / np.linalg.norm(w), (2, 1)), atol=1e-12)
        np.testing.assert_allclose(r.norm_lower, 1 - beta)
        curve = r.cosine_bound(eps)
        rho = 2 * smoothing_tv(eps, noise, 5)
        expected = np.where(rho < 1 - beta, np.sqrt(np.clip(1 - (rho / (1 - beta)) ** 2, 0, 1)), -1.0)
        np.testing.assert_allclose(curve, np.tile(expected, (2, 1)), atol=1e-12)
        assert (np.diff(curve, axis=1) <= 1e-15).all()  # monotone in eps
        if prev is not None:
            assert (curve >= prev - 1e-15).all() and (curve[:, 5:] > prev[:, 5:]).any()  # and in r
        prev = curve
        radii = [r.radius_at(c)[0] for c in (0.99, 0.9, 0.5, 0.0)]
        assert radii == sorted(radii) and radii[0] > 0
        np.testing.assert_allclose(r.cosine_radius, r.radius_at(0.9))
    # clipping at M = 2 (below ||w|| = 4.03) scales g and beta alike: the same radius;
    # a loose M = 10 (no clipping) leaves g = w and certifies less
    base = tribute.certified_attribution(net, x, "saliency", noise=0.4, n_samples=n, k=2)
    tight = tribute.certified_attribution(net, x, "saliency", noise=0.4, n_samples=n, k=2, clip_norm=2.0)
    loose = tribute.certified_attribution(net, x, "saliency", noise=0.4, n_samples=n, k=2, clip_norm=10.0)
    assert not tight.normalised and tight.clip_norm == 2.0
    np.testing.assert_allclose(tight.cosine_radius, base.cosine_radius, rtol=1e-9)
    np.testing.assert_allclose(loose.clipped[0], [3.0, -2.5, 1.0, 0.2, 0.1], atol=1e-12)
    assert (loose.cosine_radius < base.cosine_radius).all()


def test_cosine_certificate_holds_against_random_perturbations_at_the_radius() -> None:
    """Brute force on a tanh MLP: at 0.99 x the certified cosine radius, the smoothed map
    re-estimated with 5x the draws keeps a cosine >= min_cosine with g_hat(x) (up to MC error)."""
    net = _mlp()
    x = torch.tensor([[0.28, -0.48, -0.28, -0.37], [0.69, -0.09, -0.28, -0.35]], dtype=torch.float64)
    noise, c0 = 0.3, 0.9
    r = tribute.certified_attribution(net, x, "input_x_gradient", noise=noise, k=1, n_samples=400, seed=1,
                                      min_cosine=c0)
    assert (r.cosine_radius > 0).all()
    rng = np.random.default_rng(0)
    for i in range(2):
        ref = tribute.certified_attribution(net, x[i:i + 1], "input_x_gradient", noise=noise, k=1,
                                            n_samples=2000, seed=7).clipped[0]
        for _ in range(2):
            d = rng.normal(size=4)
            d *= 0.99 * r.cosine_radius[i] / np.linalg.norm(d)
            big = tribute.certified_attribution(net, x[i:i + 1] + torch.as_tensor(d[None]), "input_x_gradient",
                                                noise=noise, k=1, n_samples=2000, seed=11).clipped[0]
            cos = float(ref @ big / (np.linalg.norm(ref) * np.linalg.norm(big)))
            assert cos >= c0 - 0.02
            # and the shift stays within 2 M TV (+ the two estimates' error)
            assert np.linalg.norm(big - ref) <= float(r.max_shift(0.99 * r.cosine_radius[i])) + 0.1


def test_cosine_settings_are_validated_by_name_and_plot() -> None:
    net = _linear_net()
    x = torch.randn(2, 5, dtype=torch.float64)
    for bad in (-1.0, 1.5, float("nan"), "0.9"):
        with pytest.raises(InputError, match=r"min_cosine=.* must be a number in \(-1, 1\]"):
            tribute.certified_attribution(net, x, min_cosine=bad)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"eps=-0.1 must be a number >= 0"):
        tribute.certified_attribution(net, x, eps=-0.1)
    with pytest.raises(InputError, match=r"clip_norm=0.0 must be a number > 0"):
        tribute.certified_attribution(net, x, clip_norm=0.0)
    with pytest.raises(InputError, match=r"noise=-0.5 must be a number > 0"):
        tribute.certified_attribution(net, x, noise=-0.5)
    r = tribute.certified_attribution(net, x, n_samples=20, k=2, min_cosine=1.0)
    np.testing.assert_array_equal(r.cosine_radius, 0.0)  # cosine 1 is only certified at eps = 0
    assert r.cosine_lower is None and r.eps is None
    with pytest.raises(InputError, match=r"eps=-0.2 must be finite and >= 0"):
        r.cosine_bound(-0.2)
    with pytest.raises(InputError, match=r"min_cosine=2 must be a number in \(-1, 1\]"):
        r.radius_at(2)
    with pytest.raises(InputError, match="kind='bars' must be 'topk' or 'cosine'"):
        r.plot(0, kind="bars")
    r = tribute.certified_attribution(net, x, n_samples=200, k=2)
    fig = r.plot(1, kind="cosine")
    assert len(fig.axes) == 2 and "cosine >= 0.9" in fig._suptitle.get_text()


def test_sklearn_class_labels_are_labels_as_in_explain() -> None:
    """classes_ = [1, 2, 3]: target=2 is label 2 (predict_proba column 1), as tribute.explain
    reads it. Truth: occlusion of P(label 2) by hand (noise 1e-9: the smoothing is the identity)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = 1 + np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5])
    clf = LogisticRegression(max_iter=2000).fit(X, y)
    x = X[:3]
    r = tribute.certified_attribution(clf, x, method="occlusion", k=1, n_samples=4, noise=1e-9,
                                      baseline=0.0, output="prob", target=2)

    def p2(z: np.ndarray) -> float:
        return float(clf.predict_proba(z[None])[0, 1])  # classes_[1] == 2

    truth = np.array([[p2(x[b]) - p2(np.where(np.arange(3) == i, 0.0, x[b])) for i in range(3)]
                      for b in range(3)])
    np.testing.assert_allclose(r.smoothed, truth, atol=1e-7)


def test_bounds_are_clopper_pearson_at_alpha_over_twice_the_players() -> None:
    # T is chosen from the same draws, so each player may need either side: all 2 x players
    # one-sided bounds must hold together, each at alpha / (2 players). At alpha / players per
    # side, 1,000 seeds of a quadratic model covered the true frequencies only 94.1% of the time.
    net = _mlp()
    x = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    n, alpha = 60, 0.05
    r = tribute.certified_attribution(net, x, "saliency", noise=0.5, k=2, n_samples=n, alpha=alpha)
    counts = np.rint(r.frequency * n)
    a = alpha / (2 * 4)
    lo = np.where(counts > 0, stats.beta.ppf(a, counts, n - counts + 1), 0.0)
    hi = np.where(counts < n, stats.beta.ppf(1 - a, counts + 1, n - counts), 1.0)
    np.testing.assert_allclose(r.lower, lo, rtol=1e-12)
    np.testing.assert_allclose(r.upper, hi, rtol=1e-12)


def test_seed_must_be_an_integer() -> None:
    with pytest.raises(InputError, match="seed=None must be a non-negative int"):
        tribute.certified_attribution(_mlp(), torch.randn(2, 4, dtype=torch.float64), seed=None)  # type: ignore[arg-type]


def test_a_model_in_train_mode_runs_in_eval_mode_and_is_restored() -> None:
    """Dropout active during the noise draws made the base maps (and every radius) random,
    different from tribute.explain's (eval mode): the model runs in eval mode, as in explain,
    and its training flags are restored."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Dropout(0.5),
                              torch.nn.Linear(16, 2)).double()
    x = torch.randn(2, 4, dtype=torch.float64)
    kw: dict[str, Any] = {"target": 0, "n_samples": 40, "k": 2, "noise": 0.2}
    net.eval()
    ref = tribute.certified_attribution(net, x, **kw)
    net.train()
    got = tribute.certified_attribution(net, x, **kw)
    assert net.training and all(m.training for m in net.modules())
    np.testing.assert_allclose(got.smoothed, ref.smoothed, atol=1e-12)
    np.testing.assert_array_equal(got.radius, ref.radius)
    np.testing.assert_array_equal(got.cosine_radius, ref.cosine_radius)
