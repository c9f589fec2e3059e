"""Reference tests for occlusion, LIME, Sobol and RISE (float64, closed forms, enumeration)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import BudgetError, InputError
from tribute.methods._stderr import StderrWarning
from tribute.methods.lime import (
    lime_kernel,
    sample_coalitions,
    weighted_lasso,
    weighted_r2,
    weighted_ridge,
)
from tribute.methods.rise import smooth_masks
from tribute.methods.sobol import jansen_total

# ----------------------------------------------------------------------------- fixtures


def _linear_torch(shape: tuple[int, ...], seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    d = math.prod(shape)
    lin = nn.Linear(d, 1).double()
    return nn.Sequential(nn.Flatten(), lin), lin.weight.detach()[0].reshape(shape)


def _cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Tanh(),
        nn.Flatten(), nn.Linear(4 * 6 * 6, 3),
    ).double().eval()


def _mlp(d: int = 6, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, 3)).double().eval()


def _banzhaf(f, x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Banzhaf values by enumeration: mean over S of v(S + i) - v(S)."""
    n = x.shape[1]
    s = np.array(list(itertools.product([0.0, 1.0], repeat=n)))
    out = np.zeros_like(x)
    for r in range(x.shape[0]):
        v = f(b + s * (x[r] - b))
        for i in range(n):
            out[r, i] = v[s[:, i] == 1].mean() - v[s[:, i] == 0].mean()
    return out


def _occlusion_reference(f, x: torch.Tensor, base: torch.Tensor, win, st) -> torch.Tensor:
    """Slow sliding-window occlusion, straight from the definition."""
    shape = x.shape[1:]
    counts = [math.ceil((s - w) / t) + 1 for s, w, t in zip(shape, win, st)]
    full = f(x)
    acc = torch.zeros_like(x)
    cover = torch.zeros(shape, dtype=x.dtype)
    for pos in itertools.product(*[range(c) for c in counts]):
        m = torch.zeros(shape, dtype=x.dtype)
        m[tuple(slice(p * t, p * t + w) for p, t, w in zip(pos, st, win))] = 1.0
        drop = full - f(x * (1 - m) + base * m)
        acc += drop.reshape(-1, *([1] * len(shape))) * m
        cover += m
    return acc / cover


# ----------------------------------------------------------------------------- occlusion


def test_ablation_and_unit_occlusion_equal_w_times_delta_on_linear_model() -> None:
    model, w = _linear_torch((2, 4, 5))
    x = torch.randn(3, 2, 4, 5, dtype=torch.float64)
    base = torch.randn(2, 4, 5, dtype=torch.float64)
    expected = w * (x - base)
    abl = tribute.explain(model, x, method="feature_ablation", baseline=base)
    occ = tribute.explain(model, x, method="occlusion", baseline=base, window=(1, 1, 1))
    torch.testing.assert_close(abl.values, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(occ.values, expected, atol=1e-12, rtol=0)
    assert occ.n_evals == 2 * 4 * 5 + 1


def test_occlusion_matches_definition_with_overlapping_windows() -> None:
    model = _cnn()
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    base = torch.full((1, 8, 8), 0.3, dtype=torch.float64)
    for win, st in [((1, 3, 3), (1, 2, 2)), ((1, 4, 2), (1, 3, 1)), ((1, 8, 8), (1, 1, 1))]:
        attr = tribute.explain(model, x, method="occlusion", target=2, baseline=base,
                               window=win, stride=st)

        def f(z: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return model(z)[:, 2]

        ref = _occlusion_reference(f, x, base, win, st)
        torch.testing.assert_close(attr.values, ref, atol=1e-12, rtol=0)
        n_win = math.prod(math.ceil((s - w) / t) + 1 for s, w, t in zip((1, 8, 8), win, st))
        assert attr.n_evals == n_win + 1


def test_occlusion_multi_input_and_defaults() -> None:
    def f(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a.flatten(1) ** 2).sum(1, keepdim=True) + b.sum(1, keepdim=True)

    a = torch.randn(2, 3, 6, dtype=torch.float64)
    b = torch.randn(2, 5, dtype=torch.float64)
    attr = tribute.explain(f, (a, b), method="occlusion", window=((1, 2), (1,)), stride=((1, 2), (1,)))
    pair = (a**2).reshape(2, 3, 3, 2).sum(-1, keepdim=True).expand(2, 3, 3, 2).reshape(2, 3, 6)
    torch.testing.assert_close(attr.values[0], pair, atol=1e-12, rtol=0)
    torch.testing.assert_close(attr.values[1], b, atol=1e-12, rtol=0)
    assert attr.n_evals == 3 * 3 + 5 + 1
    # default window on images: all channels, ceil(H/8) x ceil(W/8) pixels
    model = _cnn()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    d = tribute.explain(model, x, method="occlusion")
    assert d.values.shape == x.shape and d.n_evals == 65


def test_occlusion_refuses_groups_and_bad_windows() -> None:
    model = _cnn()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(InputError, match="groups"):
        tribute.explain(model, x, method="occlusion", groups=tribute.patches(2))
    with pytest.raises(InputError, match="window"):
        tribute.explain(model, x, method="occlusion", window=(1, 9, 2))
    with pytest.raises(InputError, match="stride"):
        tribute.explain(model, x, method="occlusion", window=(1, 2, 2), stride=(1, 3, 3))
    with pytest.raises(InputError, match="axes"):
        tribute.explain(model, x, method="occlusion", window=(2, 2))
    with pytest.raises(BudgetError):
        tribute.explain(model, x, method="occlusion", window=(1, 2, 2), budget=10)


@pytest.mark.parametrize("window, stride, same", [
    (np.array([1, 3, 3]), np.array([1, 2, 2]), ((1, 3, 3), (1, 2, 2))),
    (range(1, 4), [1, 2, 2], ((1, 2, 3), (1, 2, 2))),
    ((1.0, 3.0, 3.0), (1.0, 2.0, 2.0), ((1, 3, 3), (1, 2, 2))),
    (torch.Size([1, 3, 3]), (np.int64(1), np.int32(2), 2), ((1, 3, 3), (1, 2, 2))),
    ([np.array([1, 3, 3])], [(1.0, 2.0, 2.0)], ((1, 3, 3), (1, 2, 2))),  # one per input
], ids=["ndarray", "range", "whole-floats", "torch-size", "per-input"])
def test_occlusion_takes_windows_as_arrays_ranges_and_whole_floats(window, stride, same) -> None:
    """Review finding 3: these forms were refused by the declared constraint; each gives the
    same windows as the tuples in ``same``."""
    model = _cnn()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    ref = tribute.explain(model, x, method="occlusion", target=1, window=same[0], stride=same[1])
    got = tribute.explain(model, x, method="occlusion", target=1, window=window, stride=stride)
    assert got.n_evals == ref.n_evals
    torch.testing.assert_close(got.values, ref.values, atol=0, rtol=0)
    with pytest.raises(InputError, match=r"window=\(1, 2\.5, 2\) is not allowed"):
        tribute.explain(model, x, method="occlusion", window=(1, 2.5, 2))


# ----------------------------------------------------------------------------- LIME


def test_lime_exhaustive_constant_kernel_recovers_linear_model_exactly() -> None:
    rng = np.random.default_rng(0)
    w, x, b = rng.normal(size=6), rng.normal(size=(4, 6)), rng.normal(size=6)
    attr = tribute.explain(lambda z: z @ w, x, method="lime", sampling="exhaustive",
                           kernel_width=float("inf"), alpha=0.0, baseline=b)
    np.testing.assert_allclose(attr.values, w * (x - b), atol=1e-12)
    np.testing.assert_allclose(attr.extra["score"], 1.0, atol=1e-12)
    np.testing.assert_allclose(attr.extra["intercept"], b @ w, atol=1e-12)
    assert attr.n_evals == 64 and attr.stderr is None


def test_lime_exhaustive_unweighted_fit_is_the_banzhaf_value() -> None:
    rng = np.random.default_rng(1)
    w, x, b = rng.normal(size=5), rng.normal(size=(3, 5)), rng.normal(size=5)

    def f(z: np.ndarray) -> np.ndarray:
        return np.tanh(z @ w) + z[:, 0] * z[:, 3]

    attr = tribute.explain(f, x, method="lime", sampling="exhaustive",
                           kernel_width=float("inf"), alpha=0.0, baseline=b)
    np.testing.assert_allclose(attr.values, _banzhaf(f, x, b), atol=1e-12)


@pytest.mark.parametrize("sampling", ["bernoulli", "uniform_size", "stratified"])
def test_lime_sampled_recovers_linear_model(sampling: str) -> None:
    model, w = _linear_torch((7,))
    x = torch.randn(3, 7, dtype=torch.float64)
    attr = tribute.explain(model, x, method="lime", sampling=sampling, alpha=0.0, budget=120)
    torch.testing.assert_close(attr.values, w * x, atol=1e-10, rtol=0)
    assert attr.n_evals <= 120
    assert attr.stderr is not None and float(attr.stderr.abs().max()) < 1e-8


@pytest.mark.parametrize("surrogate,alpha", [("ridge", 1.0), ("ridge", 0.0), ("lasso", 0.01)])
def test_lime_equals_sklearn_fit_on_the_same_samples(surrogate: str, alpha: float) -> None:
    from sklearn.linear_model import Lasso, Ridge

    rng = np.random.default_rng(2)
    w, x = rng.normal(size=8), rng.normal(size=(2, 8))

    def f(z: np.ndarray) -> np.ndarray:
        return np.sin(z @ w) + 0.5 * z[:, 1] * z[:, 2]

    attr = tribute.explain(f, x, method="lime", surrogate=surrogate, alpha=alpha, budget=300,
                           seed=5, distance="hamming", kernel_width=0.5)
    masks, adj = sample_coalitions(8, 300, "bernoulli", torch.Generator().manual_seed(5))
    wt = (lime_kernel(masks, "hamming", 0.5) * adj).numpy()
    z = masks.numpy()
    for r in range(2):
        y = f(z * x[r])
        reg = (Ridge(alpha=alpha) if surrogate == "ridge"
               else Lasso(alpha=alpha, tol=1e-12, max_iter=200000)).fit(z, y, sample_weight=wt)
        np.testing.assert_allclose(attr.values[r], reg.coef_, atol=1e-8)
        np.testing.assert_allclose(attr.extra["intercept"][r], reg.intercept_, atol=1e-8)
        np.testing.assert_allclose(attr.extra["score"][r], reg.score(z, y, sample_weight=wt), atol=1e-8)


def test_weighted_solvers_multi_rhs() -> None:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(200, 10, generator=g, dtype=torch.float64) < 0.5).double()
    y = x @ torch.randn(10, 4, generator=g, dtype=torch.float64) + 0.3
    w = torch.rand(200, generator=g, dtype=torch.float64)
    beta, c, _ = weighted_ridge(x, y, w, 0.0)
    torch.testing.assert_close(x @ beta + c, y, atol=1e-10, rtol=0)
    torch.testing.assert_close(weighted_r2(x, y, w, beta, c), torch.ones(4, dtype=torch.float64))
    b2, c2 = weighted_lasso(x, y, w, 1e-9)
    torch.testing.assert_close(b2, beta, atol=1e-5, rtol=0)
    torch.testing.assert_close(c2, c, atol=1e-5, rtol=0)


def test_lime_stratified_allocation_and_adjustment() -> None:
    n, m = 6, 1 + 7 * 20
    masks, adj = sample_coalitions(n, m, "stratified", torch.Generator().manual_seed(0))
    sizes = masks[1:].sum(1).long()
    assert torch.bincount(sizes, minlength=n + 1).tolist() == [20] * (n + 1)
    # adjusted stratum weights reproduce the Bernoulli(1/2) size distribution
    mass = torch.zeros(n + 1, dtype=torch.float64).index_add_(0, sizes, adj[1:]) / (m - 1)
    binom = torch.tensor([math.comb(n, k) / 2**n for k in range(n + 1)], dtype=torch.float64)
    torch.testing.assert_close(mass, binom)
    assert adj[0] == 1 and bool((masks[0] == 1).all())


def test_lime_kernel_values() -> None:
    masks = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.float64)
    d_cos = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(lime_kernel(masks, "cosine", 0.25), torch.exp(-d_cos**2 / (2 * 0.0625)))
    d_ham = torch.tensor([0.0, 0.75, 1.0], dtype=torch.float64)
    torch.testing.assert_close(lime_kernel(masks, "hamming", 0.5), torch.exp(-d_ham**2 / 0.5))


def test_lime_stderr_tracks_seed_to_seed_spread() -> None:
    rng = np.random.default_rng(3)
    w, x = rng.normal(size=5), rng.normal(size=(1, 5))

    def f(z: np.ndarray) -> np.ndarray:
        return np.tanh(z @ w) * 2 + z[:, 0] * z[:, 1]

    runs = [tribute.explain(f, x, method="lime", budget=150, seed=s, kernel_width=0.5) for s in range(60)]
    spread = np.std([r.values[0] for r in runs], axis=0, ddof=1)
    mean_se = np.mean([r.stderr[0] for r in runs], axis=0)
    ratio = mean_se / spread
    assert np.all((ratio > 0.6) & (ratio < 1.6)), ratio


def test_lime_options_and_errors() -> None:
    x = np.random.default_rng(4).normal(size=(2, 4))
    rows: list[int] = []

    def f(z: np.ndarray) -> np.ndarray:
        rows.append(len(z))
        return z.sum(1)

    a = tribute.explain(f, x, method="lime", n_samples=50)
    # 50 draws of 4 players hold at most 16 distinct coalitions: each runs once (eng46), and
    # n_evals is the rows the model saw per input (v(N) included), never more than the budget
    assert a.params["budget"] == 50
    assert sum(rows) == 2 * a.n_evals and a.n_evals <= 1 + 2**4
    f = lambda z: z.sum(1)  # noqa: E731
    with pytest.raises(InputError, match="disagree"):
        tribute.explain(f, x, method="lime", n_samples=50, budget=60)
    with pytest.raises(InputError, match="sampling"):
        tribute.explain(f, x, method="lime", sampling="sobol")
    with pytest.raises(BudgetError, match="exhaustive"):
        tribute.explain(f, np.zeros((1, 21)), method="lime", sampling="exhaustive")
    multi = tribute.explain(_mlp(4), torch.randn(3, 4, dtype=torch.float64), method="lime", target=[0, 2])
    assert multi.values.shape == (3, 2, 4) and multi.extra["score"].shape == (3, 2)


# ----------------------------------------------------------------------------- Sobol


def test_sobol_additive_model_matches_analytic_total_indices() -> None:
    x = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    # 256 designs x (n + 2) evaluations, plus v(N) (the reference pass)
    f = lambda z: 2 * z[:, 0] + 1.5 * z[:, 1]  # noqa: E731
    share = np.stack([(2 * x[:, 0]) ** 2, (1.5 * x[:, 1]) ** 2, 0 * x[:, 0]], 1)
    share /= share.sum(1, keepdims=True)
    # one scrambled sequence of 256 points: QMC-accurate, no standard error
    with pytest.warns(StderrWarning, match="one scrambled Sobol sequence"):
        one = tribute.explain(f, x, method="sobol", budget=256 * 5 + 1, replicates=1)
    np.testing.assert_allclose(one.values, share, atol=1e-3)
    assert np.isnan(one.stderr).all()
    # the default: 8 independent sequences of 32 points, less accurate, with standard errors
    attr = tribute.explain(f, x, method="sobol", budget=256 * 5 + 1)
    assert attr.params["n_replicates"] == 8
    np.testing.assert_allclose(attr.values, share, atol=1e-2)
    assert np.all(np.abs(attr.values - share)[:, :2] <= 3 * attr.stderr[:, :2])
    assert np.all(attr.values[:, 2] == 0) and attr.n_evals == 256 * 5 + 1


def test_sobol_interaction_and_ignored_feature() -> None:
    x = np.ones((1, 3))
    attr = tribute.explain(lambda z: z[:, 0] * z[:, 1], x, method="sobol", budget=1024 * 5)
    # f = m1 m2, m ~ U[0,1]^2: S_T = E[m2^2 / 12] / Var(m1 m2) = (1/36) / (7/144) = 4/7
    np.testing.assert_allclose(attr.values[0, :2], 4 / 7, atol=0.03)  # 8 sequences of 128 points
    assert np.all(np.abs(attr.values[0, :2] - 4 / 7) <= 3 * attr.stderr[0, :2])
    assert attr.values[0, 2] == 0
    assert np.all(attr.stderr[0, :2] > 0) and np.all(attr.stderr[0, :2] < 0.05)
    with pytest.warns(StderrWarning):  # one sequence of 1024 points: QMC-accurate
        one = tribute.explain(lambda z: z[:, 0] * z[:, 1], x, method="sobol", budget=1024 * 5,
                              replicates=1)
    np.testing.assert_allclose(one.values[0, :2], 4 / 7, atol=0.01)


def test_jansen_estimator_on_constant_output_is_zero() -> None:
    fa = torch.ones(2, 8, dtype=torch.float64)
    st, se = jansen_total(fa, fa, torch.ones(2, 3, 8, dtype=torch.float64))
    assert bool((st == 0).all()) and bool((se == 0).all())


# ----------------------------------------------------------------------------- RISE


def test_rise_puts_mass_on_the_region_the_model_reads() -> None:
    def f(z: torch.Tensor) -> torch.Tensor:
        return z[:, :, 2:6, 8:13].mean((1, 2, 3))[:, None]

    x = torch.ones(2, 3, 16, 16, dtype=torch.float64)
    attr = tribute.explain(f, x, method="rise", s=4, budget=1500, center=True)
    sal = attr.values[0]
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[2:6, 8:13] = True
    assert sal[:, inside].mean() > 3 * sal[:, ~inside].abs().mean()
    raw = tribute.explain(f, x, method="rise", s=4, budget=1500)
    # the raw saliency is the centred one plus mean(v) * sum_k m_k / (N p)
    assert float(raw.values[0][:, inside].mean()) > float(raw.values[0][:, ~inside].mean())


def test_rise_bernoulli_on_tabular_is_conditional_mean() -> None:
    x = np.ones((2, 5))
    attr = tribute.explain(lambda z: 2 * z[:, 0] - z[:, 3], x, method="rise", budget=4000, center=True)
    np.testing.assert_allclose(attr.values[0], [1.0, 0, 0, -0.5, 0], atol=4 * attr.stderr.max())


def test_rise_centred_stderr_is_the_centred_estimators_error() -> None:
    # center=True: an offset added to the output leaves the centred saliency unchanged, so it
    # must leave its standard error unchanged; and the standard error must match the spread
    # of the estimate over independent seeds (own reference: 120 runs), not the uncentred
    # estimator's (which grows with the offset: 20-30x the error at an offset of 3)
    w = np.array([1.5, -2.0, 0.5, 0.0, 1.0])

    def f(z: np.ndarray) -> np.ndarray:
        return np.tanh(z @ w)

    x = np.ones((1, 5))
    plain = tribute.explain(f, x, method="rise", budget=64, center=True, seed=4)
    shifted = tribute.explain(lambda z: f(z) + 50.0, x, method="rise", budget=64, center=True, seed=4)
    np.testing.assert_allclose(shifted.values, plain.values, atol=1e-9)
    np.testing.assert_allclose(shifted.stderr, plain.stderr, rtol=1e-6)
    runs = [tribute.explain(lambda z: f(z) + 3.0, x, method="rise", budget=64, center=True, seed=s)
            for s in range(120)]
    spread = np.std([r.values[0] for r in runs], axis=0, ddof=1)
    reported = np.mean([r.stderr[0] for r in runs], axis=0)
    assert np.all(reported < 1.5 * spread) and np.all(reported > 0.67 * spread), (reported, spread)


def test_rise_smooth_masks_shape_range_and_shift() -> None:
    grid = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    m = smooth_masks(grid, torch.tensor([[0, 0]]), 8, 8)
    assert m.shape == (1, 8, 8) and float(m.min()) >= 0 and float(m.max()) <= 1
    assert m[0, 0, 0] > 0.9 and m[0, 0, 7] < 0.5
    shifted = smooth_masks(grid, torch.tensor([[2, 3]]), 8, 8)
    assert not torch.equal(m, shifted)


# ----------------------------------------------------------------------------- common rules

STOCHASTIC = [("lime", {}), ("lime", {"sampling": "stratified"}), ("sobol", {}), ("rise", {}),
              ("occlusion", {"window": (1, 3, 3), "stride": (1, 2, 2)})]


@pytest.mark.parametrize("method,params", STOCHASTIC)
def test_seeded_and_batch_equals_per_sample(method: str, params: dict) -> None:
    model = _cnn()
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    budget = None if method == "occlusion" else 200 if method != "sobol" else 4 * 66
    a = tribute.explain(model, x, method=method, target=1, budget=budget, seed=7, **params)
    b = tribute.explain(model, x, method=method, target=1, budget=budget, seed=7, **params)
    torch.testing.assert_close(a.values, b.values, atol=0, rtol=0)
    parts = [tribute.explain(model, x[i : i + 1], method=method, target=1, budget=budget, seed=7, **params)
             for i in range(3)]
    torch.testing.assert_close(a.values, torch.cat([p.values for p in parts]), atol=1e-6, rtol=0)
    if a.stderr is not None:
        torch.testing.assert_close(a.stderr, torch.cat([p.stderr for p in parts]), atol=1e-6, rtol=0)
    if budget is not None:
        assert a.n_evals <= budget


@pytest.mark.parametrize("method", ["occlusion", "lime", "sobol", "rise"])
def test_defaults_run_on_mlp_cnn_and_numpy(method: str) -> None:
    from sklearn.linear_model import LogisticRegression

    xt = torch.randn(2, 6, dtype=torch.float64)
    a = tribute.explain(_mlp(), xt, method=method)
    assert a.values.shape == (2, 6) and torch.isfinite(a.values).all()
    xi = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    b = tribute.explain(_cnn(), xi, method=method)
    assert b.values.shape == (2, 1, 8, 8) and torch.isfinite(b.values).all()
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(40, 5)), rng.integers(0, 2, 40)
    clf = LogisticRegression().fit(xs, ys)
    c = tribute.explain(clf, xs[:3], method=method, target=1)
    assert c.values.shape == (3, 5) and np.isfinite(c.values).all()
    if a.params.get("budget") is not None:
        assert a.n_evals <= a.params["budget"]


@pytest.mark.parametrize("method", ["lime", "sobol", "rise"])
def test_grouped_players(method: str) -> None:
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    a = tribute.explain(_cnn(), x, method=method, groups=tribute.patches(4), budget=120, target=0)
    assert a.values.shape == (2, 4) and torch.isfinite(a.values).all()
    assert a.n_evals <= 120


def test_lime_fit_and_score_match_the_public_solvers_per_sample_and_target() -> None:
    # the method fits from coalition-major values and reuses the fit's residuals for R²: the
    # coefficients, intercepts and standard errors equal weighted_ridge's on the same values,
    # the score weighted_r2's (to rounding), for every sample and target
    from tribute.games import FeatureGame
    from tribute.methods.lime import Lime, _cached_design
    from tribute.models import as_model

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    x = torch.randn(4, 6, dtype=torch.float64)
    game = FeatureGame(as_model(net, "torch"), x, target=[0, 2])
    attr = Lime().attribute(game, budget=64, seed=3)
    me = Lime()
    masks, w = _cached_design(6, 64, me.sampling, 3, me.distance, float(me.kernel_width))
    vals = game.value(masks)  # batch x K x targets
    y = vals.permute(1, 0, 2).reshape(64, 8)  # K x (batch, target): one multi-column fit
    beta, c, se = weighted_ridge(masks, y, w, float(me.alpha))
    r2 = weighted_r2(masks, y, w, beta, c)
    assert torch.equal(torch.as_tensor(attr.values), beta.T.reshape(4, 2, 6))
    assert torch.equal(torch.as_tensor(attr.stderr), se.T.reshape(4, 2, 6))
    assert np.array_equal(attr.extra["intercept"], c.reshape(4, 2).numpy())
    np.testing.assert_allclose(attr.extra["score"], r2.reshape(4, 2).numpy(), rtol=0, atol=1e-12)


# ----------------------------------------------------------- lime at scale (issue #9)
@pytest.mark.parametrize("shape", [(1, 5, 1), (7, 5, 1), (20, 9, 1), (9, 4, 3), (30, 6, 2)])
def test_lime_transpose_into_is_the_transposed_copy(shape):
    """The blocked sample-major -> coalition-major copy gives exactly ``src.transpose(0, 1)``
    (blocks of a few samples; sizes not a multiple of the block; several targets)."""
    from tribute.methods.lime import _transpose_into

    src = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    dst = torch.full((shape[1], shape[0], shape[2]), float("nan"), dtype=torch.float64)
    _transpose_into(dst, src)
    assert torch.equal(dst, src.transpose(0, 1))
