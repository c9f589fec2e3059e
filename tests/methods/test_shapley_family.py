"""Reference tests for the Shapley family: exact, KernelSHAP, permutation sampling, Banzhaf,
Shapley interaction index and joint Shapley values (float64; enumeration, closed forms, axioms,
SHAP parity)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import BudgetError
from tribute.methods.interactions import joint_weights
from tribute_testing import LinearModel, gap_of

Fn = Callable[[np.ndarray], np.ndarray]

# ----------------------------------------------------------------------------- games

_W1 = np.random.default_rng(11).normal(size=(10, 8))
_W2 = np.random.default_rng(12).normal(size=8)


def _nonlinear(a: np.ndarray) -> np.ndarray:
    """A scalar model on up to 10 features with interactions of every order."""
    d = a.shape[1]
    return np.tanh(a @ _W1[:d]) @ _W2 + a[:, 0] * a[:, 1] - 0.5 * a[:, 1] * a[:, 2] ** 2


def _values(f: Fn, x: np.ndarray, b: np.ndarray) -> dict[frozenset[int], float]:
    """v(S) = f(x on S, b elsewhere) for every coalition of one sample."""
    n = x.shape[0]
    out = {}
    for r in range(n + 1):
        for s in itertools.combinations(range(n), r):
            z = b.copy()
            z[list(s)] = x[list(s)]
            out[frozenset(s)] = float(f(z[None])[0])
    return out


def _slow_shapley(f: Fn, x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Average marginal contribution over ALL n! orderings (obviously correct, n <= 6)."""
    n = x.shape[0]
    v = _values(f, x, b)
    phi = np.zeros(n)
    perms = list(itertools.permutations(range(n)))
    for p in perms:
        s: frozenset[int] = frozenset()
        for i in p:
            phi[i] += v[s | {i}] - v[s]
            s = s | {i}
    return phi / len(perms)


def _slow_banzhaf(f: Fn, x: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    v = _values(f, x, b)
    return np.array([np.mean([v[s | {i}] - v[s] for s in v if i not in s]) for i in range(n)])


def _slow_interaction(f: Fn, x: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    v = _values(f, x, b)
    out = np.zeros((n, n))
    for i, j in itertools.permutations(range(n), 2):
        for s in v:
            if i in s or j in s:
                continue
            w = math.factorial(len(s)) * math.factorial(n - len(s) - 2) / math.factorial(n - 1)
            out[i, j] += w * (v[s | {i, j}] - v[s | {i}] - v[s | {j}] + v[s])
    return out


def _joint_by_process(f: Fn, x: np.ndarray, b: np.ndarray, k: int) -> dict[tuple[int, ...], float]:
    """Joint Shapley values as the expected contribution of a set when it joins, in the random
    process where non-empty sets of <= k missing players join one at a time, each admissible
    set equally likely: computed by propagating state probabilities (no q-weights)."""
    n = x.shape[0]
    v = _values(f, x, b)
    prob: dict[frozenset[int], float] = {frozenset(): 1.0}
    out: dict[tuple[int, ...], float] = {}
    for r in range(n):
        for s, p in [(s, p) for s, p in prob.items() if len(s) == r]:
            missing = [i for i in range(n) if i not in s]
            options = [frozenset(t) for size in range(1, min(k, len(missing)) + 1)
                       for t in itertools.combinations(missing, size)]
            for t in options:
                key = tuple(sorted(t))
                out[key] = out.get(key, 0.0) + p / len(options) * (v[s | t] - v[s])
                prob[s | t] = prob.get(s | t, 0.0) + p / len(options)
    return out


def _x(b: int, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(b, n))


# ----------------------------------------------------------------------------- exact Shapley

def test_exact_shapley_equals_average_over_all_permutations() -> None:
    x, base = _x(2, 6), np.random.default_rng(1).normal(size=6)
    attr = tribute.explain(_nonlinear, x, method="exact_shapley", baseline=base)
    ref = np.stack([_slow_shapley(_nonlinear, r, base) for r in x])
    np.testing.assert_allclose(attr.values, ref, atol=1e-12)


def test_kernel_shap_with_full_budget_is_exact() -> None:
    x = _x(3, 7)
    exact = tribute.explain(_nonlinear, x, method="exact_shapley")
    ks = tribute.explain(_nonlinear, x, method="kernel_shap", budget=2**7)
    np.testing.assert_allclose(ks.values, exact.values, atol=1e-10)
    assert ks.n_evals <= 2**7


def _errors(method: str, budget: int, seeds: range, x: np.ndarray, exact: np.ndarray,
            ) -> tuple[float, np.ndarray]:
    z, err = [], []
    for s in seeds:
        a = tribute.explain(_nonlinear, x, method=method, budget=budget, seed=s)
        assert a.n_evals <= budget
        err.append(np.abs(a.values - exact).mean())
        z.append((a.values - exact) / a.stderr)
    return float(np.mean(err)), np.array(z)


@pytest.mark.parametrize("method,unit", [("kernel_shap", 1), ("permutation_shapley", 18)])
def test_sampling_error_shrinks_with_budget(method: str, unit: int) -> None:
    x = _x(1, 10, seed=3)
    exact = tribute.explain(_nonlinear, x, method="exact_shapley").values
    # kernel_shap: 100 -> 800 coalitions; permutation_shapley: 6 -> 48 antithetic pairs
    small = 2 + (100 if unit == 1 else 2 * unit * 6)
    large = 2 + (800 if unit == 1 else 2 * unit * 48)
    e_small, _ = _errors(method, small, range(6), x, exact)
    e_large, _ = _errors(method, large, range(6), x, exact)
    assert e_large < 0.6 * e_small, (e_small, e_large)


@pytest.mark.parametrize("method,budget", [
    ("kernel_shap", 2 + 150),  # >= 100 sampled coalitions beyond the enumerated sizes
    ("permutation_shapley", 2 + 2 * 9 * 12),  # 12 antithetic pairs
])
def test_stderr_is_roughly_calibrated(method: str, budget: int) -> None:
    x = _x(1, 10, seed=4)
    exact = tribute.explain(_nonlinear, x, method="exact_shapley").values
    _, z = _errors(method, budget, range(30), x, exact)
    assert np.isfinite(z).all()
    rms = float(np.sqrt(np.mean(z**2)))
    assert 0.5 < rms < 2.0, rms


def test_kernel_shap_efficiency_is_exact() -> None:
    x = _x(3, 10, seed=5)
    attr = tribute.explain(_nonlinear, x, method="kernel_shap", budget=200, seed=1)
    total = _nonlinear(x) - _nonlinear(np.zeros((1, 10)))
    np.testing.assert_allclose(attr.values.sum(-1), total, atol=1e-10)
    np.testing.assert_allclose(gap_of(attr), 0.0, atol=1e-10)


# ----------------------------------------------------------------------------- linear models

LINEAR_METHODS = [("exact_shapley", None), ("kernel_shap", 40), ("permutation_shapley", 34),
                  ("banzhaf", None), ("shapley_interactions", None), ("joint_shapley_k1", None)]


def _explain(model: object, x: object, method: str, budget: int | None, **kw: object) -> tribute.Attribution:
    if method == "joint_shapley_k1":
        return tribute.explain(model, x, method="joint_shapley", order=1, **kw)  # type: ignore[arg-type]
    return tribute.explain(model, x, method=method, budget=budget, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("method,budget", LINEAR_METHODS)
def test_linear_model_gets_w_times_x_minus_baseline(method: str, budget: int | None) -> None:
    model = LinearModel(n_in=5, n_out=3)
    w = model.lin.weight.detach().numpy()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 5, generator=g, dtype=torch.float64)
    base = torch.randn(5, generator=g, dtype=torch.float64)
    attr = _explain(model, x, method, budget, baseline=base, target=[0, 1, 2])
    expect = w[None] * (x - base).numpy()[:, None, :]
    np.testing.assert_allclose(attr.flat(), expect, atol=1e-10)
    # background set: credits are relative to the background mean
    bg = torch.randn(7, 5, generator=g, dtype=torch.float64)
    attr = _explain(model, x, method, budget, baseline=bg, target=[0, 2])
    expect = w[[0, 2]][None] * (x - bg.mean(0)).numpy()[:, None, :]
    np.testing.assert_allclose(attr.flat(), expect, atol=1e-10)


def test_sampled_methods_are_exact_on_linear_models_with_many_players() -> None:
    w = np.random.default_rng(0).normal(size=12)
    x = _x(2, 12, seed=6)
    f = lambda a: a @ w  # noqa: E731
    for method, budget in [("kernel_shap", 120), ("permutation_shapley", 2 + 2 * 11 * 3)]:
        attr = tribute.explain(f, x, method=method, budget=budget, seed=3)
        np.testing.assert_allclose(attr.values, w * x, atol=1e-9)


# ----------------------------------------------------------------------------- Banzhaf

def test_banzhaf_full_budget_equals_enumeration() -> None:
    x, base = _x(3, 6, seed=7), np.random.default_rng(8).normal(size=6)
    attr = tribute.explain(_nonlinear, x, method="banzhaf", baseline=base)
    ref = np.stack([_slow_banzhaf(_nonlinear, r, base) for r in x])
    np.testing.assert_allclose(attr.values, ref, atol=1e-12)
    assert attr.n_evals == 2**6
    np.testing.assert_array_equal(attr.stderr, 0.0)
    assert attr.extra["exact"]


@pytest.mark.parametrize("kw", [{"design": "bernoulli"}, {"design": "balanced"}, {"estimator": "ols"}],
                         ids=["msr-bernoulli", "msr-balanced", "ols"])
def test_banzhaf_sampled_is_unbiased_with_calibrated_stderr(kw: dict[str, Any]) -> None:
    x = _x(1, 10, seed=9)
    exact = tribute.explain(_nonlinear, x, method="banzhaf", budget=2**10).values
    est = []
    z = []
    for s in range(30):
        a = tribute.explain(_nonlinear, x, method="banzhaf", budget=128, seed=s, **kw)
        assert a.n_evals <= 128
        est.append(a.values)
        z.append((a.values - exact) / a.stderr)
    rms = float(np.sqrt(np.mean(np.square(z))))
    assert 0.6 < rms < 1.6, rms
    # (nearly) unbiased: the mean over 30 seeds is within 4 standard errors of the exact value
    est_a = np.array(est)
    se_mean = est_a.std(0, ddof=1) / math.sqrt(len(est))
    assert (np.abs(est_a.mean(0) - exact) < 4 * se_mean + 1e-12).all()


def test_banzhaf_error_shrinks_and_ols_beats_msr() -> None:
    x = _x(1, 10, seed=10)
    exact = tribute.explain(_nonlinear, x, method="banzhaf", budget=2**10).values

    def err(budget: int, **kw: Any) -> float:
        return float(np.mean([np.abs(tribute.explain(_nonlinear, x, method="banzhaf", budget=budget,
                                                     seed=s, **kw).values - exact).mean()
                              for s in range(8)]))

    assert err(512, design="bernoulli") < 0.7 * err(64, design="bernoulli")
    assert err(512) < 0.7 * err(64)
    assert err(128, estimator="ols") < 0.6 * err(128)


def test_banzhaf_ols_is_exact_on_additive_models_from_n_plus_2_coalitions() -> None:
    w = np.random.default_rng(1).normal(size=12)
    x = _x(2, 12, seed=19)
    # n + 2 sampled coalitions, plus v(N) (the reference pass, the first evaluation of a budget)
    attr = tribute.explain(lambda a: a @ w + 3.0, x, method="banzhaf", estimator="ols", budget=15)
    np.testing.assert_allclose(attr.values, w * x, atol=1e-9)
    assert attr.n_evals == 15
    with pytest.raises(BudgetError, match="at least 15"):
        tribute.explain(lambda a: a @ w, x, method="banzhaf", estimator="ols", budget=14)


def test_banzhaf_same_coalitions_for_every_sample_and_min_budget() -> None:
    x = _x(3, 9, seed=12)
    batch = tribute.explain(_nonlinear, x, method="banzhaf", budget=40, seed=5)
    one = tribute.explain(_nonlinear, x[1:2], method="banzhaf", budget=40, seed=5)
    np.testing.assert_allclose(batch.values[1:2], one.values, atol=1e-12)
    with pytest.raises(BudgetError, match="at least 5"):
        tribute.explain(_nonlinear, x, method="banzhaf", budget=4)
    # 4 coalitions (every player on both sides twice) + v(N)
    tiny = tribute.explain(_nonlinear, x, method="banzhaf", budget=5)
    assert np.isfinite(tiny.values).all() and np.isfinite(tiny.stderr).all()


# ----------------------------------------------------------------------------- interactions

def test_interaction_index_axioms_on_a_product_game() -> None:
    # v(S) = x0 x1 + x2 (removed features at baseline): only the pair (0, 1) interacts, 3 and 4
    # are dummies
    f = lambda a: a[:, 0] * a[:, 1] + a[:, 2] + 0.0 * a[:, 3]  # noqa: E731
    x, base = _x(2, 5, seed=13), np.random.default_rng(14).normal(size=5)
    attr = tribute.explain(f, x, method="shapley_interactions", baseline=base)
    inter = attr.extra["interactions"][:, 0]  # B x n x n
    np.testing.assert_allclose(inter, np.swapaxes(inter, 1, 2), atol=1e-12)  # symmetry
    off = inter.copy()
    d = np.arange(5)
    off[:, d, d] = 0.0
    expect = np.zeros_like(off)
    expect[:, 0, 1] = expect[:, 1, 0] = (x[:, 0] - base[0]) * (x[:, 1] - base[1])
    np.testing.assert_allclose(off, expect, atol=1e-12)
    np.testing.assert_allclose(inter[:, 3], 0.0, atol=1e-12)  # dummy: zero row and column
    np.testing.assert_allclose(inter[:, :, 4], 0.0, atol=1e-12)
    exact = tribute.explain(f, x, method="exact_shapley", baseline=base)
    np.testing.assert_allclose(attr.values, exact.values, atol=1e-12)  # diag = Shapley values
    np.testing.assert_allclose(inter[:, d, d], exact.values, atol=1e-12)


def test_interaction_index_equals_slow_reference_and_shap_convention_sums() -> None:
    x = _x(2, 5, seed=15)
    attr = tribute.explain(_nonlinear, x, method="shapley_interactions")
    for r in range(2):
        ref = _slow_interaction(_nonlinear, x[r], np.zeros(5))
        got = attr.extra["interactions"][r, 0].copy()
        np.fill_diagonal(got, 0.0)
        np.testing.assert_allclose(got, ref, atol=1e-12)
    shap_iv = attr.extra["shap_interaction_values"][:, 0]
    np.testing.assert_allclose(shap_iv.sum(-1), attr.values, atol=1e-12)
    total = _nonlinear(x) - _nonlinear(np.zeros((1, 5)))
    np.testing.assert_allclose(shap_iv.sum((1, 2)), total, atol=1e-12)
    np.testing.assert_allclose(attr.extra["shapley_taylor"][:, 0].sum((1, 2)), total, atol=1e-12)


# ----------------------------------------------------------------------------- joint Shapley

def test_joint_weights_reduce_to_shapley_weights_for_order_one() -> None:
    n = 7
    ref = [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
    np.testing.assert_allclose(joint_weights(n, 1), ref, rtol=1e-14)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_joint_shapley_matches_arrival_process_and_is_efficient(order: int) -> None:
    x, base = _x(2, 5, seed=16), np.random.default_rng(17).normal(size=5)
    attr = tribute.explain(_nonlinear, x, method="joint_shapley", order=order, baseline=base)
    joint = attr.extra["joint"]
    assert len(joint) == sum(math.comb(5, t) for t in range(1, order + 1))
    for r in range(2):
        ref = _joint_by_process(_nonlinear, x[r], base, order)
        assert set(ref) == set(joint)
        for t, val in ref.items():
            assert abs(joint[t][r, 0] - val) < 1e-12, (t, joint[t][r, 0], val)
    # joint efficiency (Harris et al. 2022): credits of all sets of size 1..order add up to
    # v(N) - v(empty)
    total = sum(val[:, 0] for val in joint.values())
    np.testing.assert_allclose(total, _nonlinear(x) - _nonlinear(base[None]), atol=1e-12)
    np.testing.assert_allclose(gap_of(attr), 0.0, atol=1e-12)
    if order >= 2:
        pairs = attr.extra["joint_pairs"][:, 0]
        np.testing.assert_allclose(pairs[:, 0, 1], joint[(0, 1)][:, 0], atol=0)
        np.testing.assert_allclose(pairs[:, 3, 3], attr.values[:, 3], atol=0)


def test_joint_shapley_symmetry_and_dummy() -> None:
    # players 0 and 1 are symmetric (x0 = x1 and symmetric f), player 3 is a dummy
    f = lambda a: np.tanh(a[:, 0] + a[:, 1]) * a[:, 2] + a[:, 4]  # noqa: E731
    x = _x(1, 5, seed=18)
    x[:, 1] = x[:, 0]
    attr = tribute.explain(f, x, method="joint_shapley", order=2)
    j = attr.extra["joint"]
    assert abs(j[(0,)][0, 0] - j[(1,)][0, 0]) < 1e-12
    assert abs(j[(0, 2)][0, 0] - j[(1, 2)][0, 0]) < 1e-12
    assert abs(j[(3,)][0, 0]) < 1e-12  # null player
    # (a set holding a dummy and a useful player is NOT credited like the useful player alone:
    # joint values are not interaction indices)


# ----------------------------------------------------------------------------- SHAP parity

def _logreg() -> tuple[object, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    X = data.data[:, :6]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, data.target)
    return clf, X[:4], X[100:101]


@pytest.mark.slow  # shap's Exact explainer JIT-compiles with numba on first use (~40 s)
def test_exact_shapley_matches_shap_exact_explainer() -> None:
    shap = pytest.importorskip("shap")
    clf, x, bg = _logreg()
    f = clf.predict_proba  # type: ignore[attr-defined]
    ours = tribute.explain(f, x, method="exact_shapley", baseline=bg[0], target=[0, 1])
    ref = shap.explainers.Exact(f, shap.maskers.Independent(bg, max_samples=1))(x).values  # B x n x 2
    np.testing.assert_allclose(ours.flat(), np.transpose(ref, (0, 2, 1)), atol=1e-10)
    # shap's Exact interactions are the order-2 Shapley-Taylor index (not Grabisch-Roubens)
    g = lambda a: 4 * f(a)[:, 0] * f(a)[:, 1]  # noqa: E731 (a scalar game with interactions)
    inter = tribute.explain(g, x, method="shapley_interactions", baseline=bg[0])
    ref_st = shap.explainers.Exact(g, shap.maskers.Independent(bg, max_samples=1))(x, interactions=True).values
    np.testing.assert_allclose(inter.extra["shapley_taylor"][:, 0], ref_st, atol=1e-10)
    np.testing.assert_allclose(ref_st.sum(-1), inter.values, atol=1e-10)  # rows sum to Shapley


def test_kernel_shap_full_budget_matches_shap_kernel_explainer() -> None:
    shap = pytest.importorskip("shap")
    clf, x, bg = _logreg()
    f = clf.predict_proba  # type: ignore[attr-defined]
    ours = tribute.explain(f, x, method="kernel_shap", baseline=bg[0], target=[0, 1], budget=2**6)
    explainer = shap.KernelExplainer(f, bg)
    ref = np.asarray(explainer.shap_values(x, nsamples=2**6, l1_reg=False, silent=True))
    ref = ref if ref.shape[-1] != 2 else np.transpose(ref, (0, 2, 1))  # -> B x 2 x n
    np.testing.assert_allclose(ours.flat(), ref, atol=1e-8)
    # shap's full enumeration is exact Shapley: so is exact_shapley (fast stand-in for the slow
    # shap.explainers.Exact parity test above)
    exact = tribute.explain(f, x, method="exact_shapley", baseline=bg[0], target=[0, 1])
    np.testing.assert_allclose(exact.flat(), ref, atol=1e-8)
