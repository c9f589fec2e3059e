"""Symbolic and correlated tabular data: analytic truth against independent references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import tribute.datasets as td
from tribute.datasets import SymbolicFunction, Term


def brute_force_semivalue(f: SymbolicFunction, x: np.ndarray, b: np.ndarray,
                          kind: str = "shapley") -> np.ndarray:
    """Enumerate all 2^d coalitions of the baseline game v(S) = f(x_S, b_rest), float64."""
    d = x.shape[0]
    masks = np.array(list(itertools.product([0, 1], repeat=d)), dtype=bool)
    values = f.numpy(np.where(masks, x, b))
    index = {tuple(m): v for m, v in zip(masks, values)}
    phi = np.zeros(d)
    for m, v in zip(masks, values):
        s = int(m.sum())
        for i in np.flatnonzero(~m):
            with_i = m.copy()
            with_i[i] = True
            if kind == "shapley":
                w = math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d)
            else:
                w = 0.5 ** (d - 1)
            phi[i] += w * (index[tuple(with_i)] - v)
    return phi


def custom_function() -> SymbolicFunction:
    """Every transform, a pair of non-identity transforms and a three-way product."""
    return SymbolicFunction(6, [
        Term(1.5, (0,), ("sin",)),
        Term(-0.7, (1,), ("square",)),
        Term(2.0, (2, 3), ("tanh", "sin")),
        Term(0.9, (1, 4, 5), ("identity", "square", "tanh")),
        Term(-1.1, (5,), ("identity",)),
    ], bias=0.3)


def functions() -> list[SymbolicFunction]:
    add = td.tabular_symbolic(n=5, n_relevant=4, n_noise=2, seed=0).meta["model"]
    inter = td.tabular_symbolic(n=5, n_relevant=4, n_noise=2, kind="interaction",
                                seed=1).meta["model"]
    return [add, inter, custom_function()]


def test_symbolic_layout_and_target() -> None:
    ds = td.tabular_symbolic(n=300, n_relevant=4, n_noise=16, seed=5)
    f = ds.meta["model"]
    assert ds.X.shape == (300, 20) and ds.feature_names == [f"x{j}" for j in range(20)]
    assert ds.ground_truth is not None
    assert np.flatnonzero(ds.ground_truth[0]).tolist() == list(ds.meta["relevant"])
    assert np.all(ds.ground_truth == ds.ground_truth[0])
    assert f.relevant == ds.meta["relevant"] and len(f.relevant) == 4
    np.testing.assert_allclose(ds.y, f.numpy(ds.X), rtol=1e-6, atol=1e-5)
    assert abs(ds.X.mean()) < 0.05 and abs(ds.X.std() - 1) < 0.05
    inter = td.tabular_symbolic(n=10, kind="interaction", seed=5).meta["model"]
    assert sum(len(t.features) == 2 for t in inter.terms) == 2
    noisy = td.tabular_symbolic(n=300, noise_std=0.5, seed=5)
    assert 0.3 < np.std(noisy.y - f.numpy(noisy.X)) < 0.7
    with pytest.raises(ValueError, match="kind"):
        td.tabular_symbolic(kind="multiplicative")  # type: ignore[arg-type]


@pytest.mark.parametrize("f", functions(), ids=["additive", "interaction", "custom"])
def test_torch_forward_matches_numpy(f: SymbolicFunction) -> None:
    X = np.random.default_rng(0).standard_normal((7, f.n_features))
    out = f(torch.from_numpy(X))
    assert out.shape == (7, 1) and out.dtype == torch.float64
    np.testing.assert_allclose(out[:, 0].numpy(), f.numpy(X), rtol=1e-12)
    assert f(torch.from_numpy(X).float()).dtype == torch.float32


@pytest.mark.parametrize("f", functions(), ids=["additive", "interaction", "custom"])
def test_gradient_equals_autograd(f: SymbolicFunction) -> None:
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((9, f.n_features)))
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x).sum(), x)
    np.testing.assert_allclose(f.gradient(x.detach().numpy()), grad.numpy(), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("f", functions(), ids=["additive", "interaction", "custom"])
@pytest.mark.parametrize("kind", ["shapley", "banzhaf"])
def test_semivalues_equal_brute_force(f: SymbolicFunction, kind: str) -> None:
    rng = np.random.default_rng(2)
    X = rng.standard_normal((4, f.n_features))
    b = rng.standard_normal(f.n_features)  # a non-trivial baseline
    closed = f.shapley(X, b) if kind == "shapley" else f.banzhaf(X, b)
    brute = np.stack([brute_force_semivalue(f, x, b, kind) for x in X])
    np.testing.assert_allclose(closed, brute, rtol=1e-10, atol=1e-12)
    if kind == "shapley":  # efficiency
        np.testing.assert_allclose(closed.sum(1), f.numpy(X) - f.numpy(b[None]), atol=1e-12)
    irrelevant = np.setdiff1d(np.arange(f.n_features), f.relevant)
    assert np.all(closed[:, irrelevant] == 0)


def test_pairwise_formula_splits_interaction_equally() -> None:
    f = SymbolicFunction(2, [Term(1.7, (0, 1), ("identity", "identity"))])
    x, b = np.array([[0.8, -1.3]]), np.array([0.4, 2.0])
    expected_a = 1.7 * (x[0, 0] - b[0]) * (x[0, 1] + b[1]) / 2
    expected_b = 1.7 * (x[0, 1] - b[1]) * (x[0, 0] + b[0]) / 2
    np.testing.assert_allclose(f.shapley(x, b)[0], [expected_a, expected_b], rtol=1e-14)


def test_shapley_baseline_forms() -> None:
    f = custom_function()
    X = np.random.default_rng(3).standard_normal((5, 6))
    np.testing.assert_array_equal(f.shapley(X), f.shapley(X, np.zeros(6)))
    B = np.random.default_rng(4).standard_normal((5, 6))
    per_row = np.stack([f.shapley(X[i:i + 1], B[i])[0] for i in range(5)])
    np.testing.assert_allclose(f.shapley(X, B), per_row, rtol=1e-14)
    with pytest.raises(ValueError, match="baseline"):
        f.shapley(X, np.zeros(4))
    with pytest.raises(ValueError, match="shape"):
        f.shapley(np.zeros((2, 5)))


@pytest.mark.parametrize("f", functions(), ids=["additive", "interaction", "custom"])
def test_ablation_is_leave_one_out(f: SymbolicFunction) -> None:
    rng = np.random.default_rng(5)
    X, b = rng.standard_normal((3, f.n_features)), rng.standard_normal(f.n_features)
    loo = f.ablation(X, b)
    for i in range(f.n_features):
        Xi = X.copy()
        Xi[:, i] = b[i]
        np.testing.assert_allclose(loo[:, i], f.numpy(X) - f.numpy(Xi), rtol=1e-12)


@pytest.mark.parametrize("f", functions(), ids=["additive", "interaction", "custom"])
def test_integrated_gradients_against_riemann_sum(f: SymbolicFunction) -> None:
    rng = np.random.default_rng(6)
    X, b = rng.standard_normal((3, f.n_features)), rng.standard_normal(f.n_features)
    ig = f.integrated_gradients(X, b)
    steps = 4000
    alphas = (np.arange(steps) + 0.5) / steps  # midpoint rule with autograd gradients
    path = torch.from_numpy(b + alphas[:, None, None] * (X - b)).requires_grad_(True)
    (grad,) = torch.autograd.grad(f(path.reshape(-1, f.n_features)).sum(), path)
    riemann = (X - b) * grad.numpy().mean(0)
    np.testing.assert_allclose(ig, riemann, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ig.sum(1), f.numpy(X) - f.numpy(b[None]), atol=1e-10)


def test_additive_ig_equals_shapley() -> None:
    f = td.tabular_symbolic(n=2, seed=7).meta["model"]
    X = np.random.default_rng(7).standard_normal((5, f.n_features))
    np.testing.assert_allclose(f.integrated_gradients(X), f.shapley(X), atol=1e-12)


def test_term_validation() -> None:
    with pytest.raises(ValueError, match="transform"):
        Term(1.0, (0, 1), ("sin",))
    with pytest.raises(ValueError, match="unknown"):
        Term(1.0, (0,), ("cube",))
    with pytest.raises(ValueError, match="distinct"):
        Term(1.0, (0, 0), ("sin", "sin"))
    with pytest.raises(ValueError, match="outside"):
        SymbolicFunction(2, [Term(1.0, (2,), ("sin",))])
    assert "sin(x0)" in custom_function().formula()


# -- correlated -------------------------------------------------------------------------


def test_correlated_structure() -> None:
    ds = td.tabular_correlated(n=20000, n_relevant=3, n_correlated=3, n_noise=2, rho=0.8,
                               seed=1)
    cov, w, roles = ds.meta["covariance"], ds.meta["weights"], ds.meta["roles"]
    np.testing.assert_allclose(np.cov(ds.X.T), cov, atol=0.04)
    np.testing.assert_allclose(ds.y, ds.X.astype(np.float64) @ w, rtol=1e-5, atol=1e-5)
    assert ds.ground_truth is not None
    relevant = np.flatnonzero(ds.ground_truth[0])
    assert [roles[j] for j in relevant] == ["relevant"] * 3
    assert sum(r.startswith("correlated:") for r in roles) == 3
    for j, role in enumerate(roles):
        if role.startswith("correlated:"):
            source = int(role.split(":x")[1])
            assert roles[source] == "relevant" and w[j] == 0
            assert cov[j, source] == pytest.approx(0.8)
    obs = ds.meta["ground_truth_observational"][0]
    assert obs.tolist() == [r != "noise" for r in roles]


def test_true_to_model_vs_true_to_data() -> None:
    ds = td.tabular_correlated(n=50, rho=0.9, seed=2)
    X = ds.X[:20].astype(np.float64)
    w, cov, roles = ds.meta["weights"], ds.meta["covariance"], ds.meta["roles"]
    interventional = ds.meta["model"].shapley(X)
    observational = td.conditional_shapley_linear_gaussian(X, w, cov)
    unused_correlated = [j for j, r in enumerate(roles) if r.startswith("correlated:")]
    noise = [j for j, r in enumerate(roles) if r == "noise"]
    np.testing.assert_allclose(interventional, X * w, atol=1e-12)
    assert np.all(interventional[:, unused_correlated] == 0)
    assert np.all(np.abs(observational[:, unused_correlated]) > 1e-6)
    np.testing.assert_allclose(observational[:, noise], 0, atol=1e-10)
    np.testing.assert_allclose(observational.sum(1), X @ w, atol=1e-9)


def test_observational_shapley_two_feature_closed_form() -> None:
    # y = x1, x2 = rho x1 + noise: v({2}) = rho x2, so phi_2 = rho x2 / 2, phi_1 = x1 - phi_2.
    rho, w = 0.6, np.array([1.0, 0.0])
    cov = np.array([[1.0, rho], [rho, 1.0]])
    X = np.random.default_rng(8).standard_normal((6, 2))
    phi = td.conditional_shapley_linear_gaussian(X, w, cov)
    np.testing.assert_allclose(phi[:, 1], rho * X[:, 1] / 2, rtol=1e-12)
    np.testing.assert_allclose(phi[:, 0], X[:, 0] - rho * X[:, 1] / 2, rtol=1e-12)
    mu = np.array([1.0, -2.0])
    shifted = td.conditional_shapley_linear_gaussian(X + mu, w, cov, mean=mu)
    np.testing.assert_allclose(shifted, phi, atol=1e-12)


def test_correlated_validation() -> None:
    with pytest.raises(ValueError, match="rho"):
        td.tabular_correlated(rho=1.0)


# -- real tabular -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "shape", "task"), [
    ("wine", (178, 13), "classification"),
    ("breast_cancer", (569, 30), "classification"),
    ("diabetes", (442, 10), "regression"),
])
def test_real_tabular(name: str, shape: tuple[int, int], task: str) -> None:
    ds = getattr(td, name)()
    assert ds.X.shape == shape and ds.task == task and ds.X.dtype == np.float32
    assert ds.feature_names is not None and len(ds.feature_names) == shape[1]
    np.testing.assert_allclose(ds.X.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.X.std(0), 1, atol=1e-4)
    if task == "regression":
        assert abs(ds.y.mean()) < 1e-5 and abs(ds.y.std() - 1) < 1e-4
    sub = getattr(td, name)(n=50, seed=1)
    assert len(sub) == 50
    with pytest.raises(ValueError, match="n must be"):
        getattr(td, name)(n=10**6)
