"""GP Shapley (the `shapley` default): exactness, closed forms, and accuracy per evaluation."""

from __future__ import annotations

import numpy as np
import torch

import tribute
from tribute_testing import LinearModel, make_mlp


def test_shapley_alias_is_gp_shapley():
    x = torch.randn(2, 5, dtype=torch.float64)
    assert tribute.explain(LinearModel(), x, method="shapley", target=0, budget=16).method == "gp_shapley"


def test_full_budget_is_exact():
    m = make_mlp(6, 3)
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exact = tribute.explain(m, x, method="exact_shapley", target=1)
    gp = tribute.explain(m, x, method="gp_shapley", target=1, budget=64)
    np.testing.assert_allclose(gp.values, exact.values, atol=1e-8)


def test_linear_model_closed_form_and_efficiency():
    m = LinearModel(8, 2)
    x = torch.randn(3, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    gp = tribute.explain(m, x, method="gp_shapley", target=1, budget=40, baseline=0.3)
    want = m.lin.weight[1].detach() * (x - 0.3)
    np.testing.assert_allclose(gp.values, want, atol=1e-6)
    assert np.abs(gp.gap).max() < 1e-8


def test_more_accurate_than_kernel_shap_per_evaluation():
    m = make_mlp(10, 3, seed=3)
    x = torch.randn(4, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    exact = tribute.explain(m, x, method="exact_shapley", target=0).values
    err = {}
    for method in ("gp_shapley", "kernel_shap"):
        errs = []
        for seed in range(2):
            a = tribute.explain(m, x, method=method, target=0, budget=96, seed=seed)
            errs.append(float((a.values - exact).norm() / exact.norm()))
        err[method] = np.mean(errs)
    assert err["gp_shapley"] < err["kernel_shap"]


def test_rows_reaching_the_model_never_exceed_budget():
    # the exact path used to spend 2^n + 1 rows (the grand coalition twice)
    m = make_mlp(10, 3)
    x = torch.randn(2, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for budget in (1024, 2000, 101, 100, 6):
        for target in (1, None):
            a = tribute.explain(m, x, method="shapley", target=target, budget=budget)
            assert a.n_rows == a.n_evals * len(x), (budget, target, a.n_rows, a.n_evals)
            assert a.n_evals <= budget
    exact = tribute.explain(m, x, method="exact_shapley", target=1).values
    a = tribute.explain(m, x, method="shapley", target=1, budget=1024)
    np.testing.assert_allclose(a.values, exact, atol=1e-10)
