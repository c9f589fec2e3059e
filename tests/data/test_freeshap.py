"""FreeShap: the eNTK, its exactness on linear models, the Cholesky-prefix permutation path."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch
from data_cases import mlp_case, ridge_case

import tribute
from tribute.errors import InputError, UnsupportedModelError
from tribute.methods.data_freeshap import (
    KernelRegressionGame,
    entk,
    ntk_regression,
    permutation_marginals,
)


def _game(case: Any, **kw: Any) -> Any:
    return tribute.build_game(case.model, case.X_test, target=case.y_test, players=case.data(**kw))


def test_entk_equals_an_explicit_jacobian_product() -> None:
    case = mlp_case(n=7, d=3, n_test=2, steps=20)
    game = _game(case)
    K, K_test = entk(game)
    model = case.model
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().double().clone() for _, p in model.named_parameters())

    def jac(x: torch.Tensor) -> torch.Tensor:  # C x n_params, by torch.autograd.functional
        def f(*ps: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(model, dict(zip(names, ps)), (x[None],))[0]

        J = torch.autograd.functional.jacobian(f, params)
        return torch.cat([j.reshape(j.shape[0], -1) for j in J], 1)

    Jtr = torch.stack([jac(x) for x in case.X])  # n x C x P
    Jte = torch.stack([jac(x) for x in case.X_test])
    C = Jtr.shape[1]
    ref = torch.einsum("icp,jcp->ij", Jtr, Jtr) / C
    ref_test = torch.einsum("icp,jcp->ij", Jte, Jtr) / C
    torch.testing.assert_close(K, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(K_test, ref_test, rtol=1e-10, atol=1e-12)
    # the streamed (block-pair) path gives the same kernel
    K2, Kt2 = entk(game, budget_bytes=1)
    torch.testing.assert_close(K2, K, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(Kt2, K_test, rtol=1e-10, atol=1e-12)


def _retrained(case: Any, keep: np.ndarray) -> np.ndarray:
    idx = torch.as_tensor(np.flatnonzero(keep), dtype=torch.long)
    with torch.no_grad():
        return case.fit(case.X[idx], case.y[idx], seed=0)(case.X_test)[:, 0].numpy()


def test_linear_model_kernel_regression_is_ridge_retraining_and_freeshap_is_exact_data_shapley() -> None:
    n = 8
    case = ridge_case(n=n, n_test=3, l2=0.7)
    game = _game(case)
    reg = ntk_regression(game)
    assert reg.lam == pytest.approx(0.7)
    rng = np.random.default_rng(0)
    for _ in range(6):  # v(S) of the surrogate == the ridge model retrained on S
        keep = rng.random(n) < 0.5
        got = reg.predict(torch.as_tensor(np.flatnonzero(keep)))
        np.testing.assert_allclose(got.numpy(), _retrained(case, keep), rtol=1e-9, atol=1e-10)
    # Shapley by enumeration over retrained models
    table = {bits: _retrained(case, np.array(bits)) for bits in itertools.product([0, 1], repeat=n)}
    phi = np.zeros((3, n))
    for i in range(n):
        for bits, v in table.items():
            if bits[i]:
                continue
            s = sum(bits)
            w = math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n)
            phi[:, i] += w * (table[(*bits[:i], 1, *bits[i + 1:])] - v)
    data = case.data()
    exact = tribute.explain(case.model, case.X_test, method="freeshap", players=data,
                            estimator="exact_shapley")
    np.testing.assert_allclose(exact.values.numpy(), phi, rtol=1e-8, atol=1e-10)
    assert exact.n_evals == 1 and exact.extra["surrogate_evals"] == 2**n
    assert len(data._bank or []) == 0  # nothing was retrained
    # the Cholesky-prefix permutation path: efficiency per permutation, converges to exact
    perm = tribute.explain(case.model, case.X_test, method="freeshap", players=case.data(),
                           n_permutations=400, seed=1)
    full = table[(1,) * n] - table[(0,) * n]
    np.testing.assert_allclose(perm.values.numpy().sum(1), full, rtol=1e-9, atol=1e-10)
    se = perm.stderr.numpy()
    assert np.all(np.abs(perm.values.numpy() - phi) <= 5 * se + 1e-9)  # z-scores calibrated (sd 0.99 over 40 seeds)


def test_prefix_marginals_equal_surrogate_value_differences() -> None:
    case = mlp_case(n=12, d=3, n_test=2, steps=20)
    game = _game(case)
    reg = ntk_regression(game)
    order = np.random.default_rng(3).permutation(12)
    m = permutation_marginals(reg, order)
    prev = reg.predict(torch.empty(0, dtype=torch.long))
    for k in range(12):
        cur = reg.predict(torch.as_tensor(order[: k + 1]))
        torch.testing.assert_close(m[:, order[k]], cur - prev, rtol=1e-7, atol=1e-9)
        prev = cur


def test_groups_other_estimators_determinism_and_model_untouched() -> None:
    case = mlp_case(n=12, d=3, n_test=2, steps=20)
    case.model.train()
    before = {k: v.clone() for k, v in case.model.state_dict().items()}
    groups = np.arange(12) % 4
    a = tribute.explain(case.model, case.X_test, method="freeshap", target=case.y_test,
                        players=case.data(groups=groups), n_permutations=30, seed=5)
    b = tribute.explain(case.model, case.X_test, method="freeshap", target=case.y_test,
                        players=case.data(groups=groups), n_permutations=30, seed=5)
    assert a.values.shape == (2, 4)
    torch.testing.assert_close(a.values, b.values)
    ex = tribute.explain(case.model, case.X_test, method="freeshap", target=case.y_test,
                         players=case.data(groups=groups), estimator="exact_shapley")
    # 4 players: 12 antithetic pairs of 24 permutations cover all 24 orders only in expectation
    assert np.all(np.abs(a.values.numpy() - ex.values.numpy()) <= 5 * a.stderr.numpy() + 1e-9)
    ks = tribute.explain(case.model, case.X_test, method="freeshap", target=case.y_test,
                         players=case.data(groups=groups), estimator="kernel_shap", n_coalitions=16)
    np.testing.assert_allclose(ks.values.numpy(), ex.values.numpy(), atol=1e-8)  # 2^4: exact
    assert case.model.training
    for k, v in case.model.state_dict().items():
        assert torch.equal(v, before[k])
    init = tribute.explain(case.model, case.X_test, method="freeshap", target=case.y_test,
                           players=case.data(), at="init", n_permutations=4)
    assert init.extra["at"] == "init" and np.isfinite(init.values.numpy()).all()


def test_bad_input_is_refused_clearly() -> None:
    case = mlp_case(n=10, d=3, n_test=2, steps=10)
    kw = {"target": case.y_test, "players": case.data()}
    with pytest.raises(InputError, match="at='bogus'"):
        tribute.explain(case.model, case.X_test, method="freeshap", at="bogus", **kw)
    with pytest.raises(InputError, match="estimator='saliency' does not work on data games"):
        tribute.explain(case.model, case.X_test, method="freeshap", estimator="saliency", **kw)
    with pytest.raises(InputError, match="output='loss'"):
        tribute.explain(case.model, case.X_test, method="freeshap", output="loss", **kw)
    game = _game(case)
    sur = KernelRegressionGame(game, ntk_regression(game))
    with pytest.raises(InputError, match="binary masks"):
        sur.value(torch.full((1, 10), 0.5))
    with pytest.raises(UnsupportedModelError, match="works on \\('data',\\) games"):
        tribute.explain(case.model, case.X_test, method="freeshap", target=1)
