"""Integer inputs with a fractional baseline: never truncated silently.

Integer inputs are composed by selection, so a baseline such as the column means of integer
counts used to be cast to the integer dtype (a linear model's credits came out as
``w (x - trunc(b))``, with no warning). A numpy model's integer features are now composed in
float64 (as a DataFrame's integer columns are); torch models and functions, whose integer
inputs may be token ids, refuse a fractional baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression

import tribute
from tribute.errors import InputError


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 10, size=(100, 3))
    return x, LinearRegression().fit(x, x @ np.array([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("method", ["exact_shapley", "kernel_shap", "feature_ablation",
                                    "permutation_shapley"])
def test_fractional_baseline_of_integer_features_is_not_truncated(counts, method):
    x, reg = counts
    xs, b = x[:2], x.mean(0)  # fractional means
    kw: dict[str, Any] = {"budget": 8} if method in ("kernel_shap", "permutation_shapley") else {}
    a = tribute.explain(reg, xs, method=method, baseline=b, **kw)
    np.testing.assert_allclose(np.asarray(a.values), reg.coef_ * (xs - b), atol=1e-9)
    if a.base_values is not None:
        np.testing.assert_allclose(np.asarray(a.base_values), reg.predict(b[None]).repeat(2),
                                   atol=1e-9)


def test_fractional_background_of_integer_features_tree_and_exact(counts):
    x, _ = counts
    y = x @ np.array([1.0, 2.0, 3.0]) + 0.5 * x[:, 0] * x[:, 1]
    forest = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(x, y)
    xs, bg = x[:2], x[::10][:7] + 0.5
    truth = forest.predict(xs.astype(float)) - forest.predict(bg.astype(float)).mean()
    for method in ("tree_shap", "exact_shapley"):
        a = tribute.explain(forest, xs, method=method, baseline=bg)
        np.testing.assert_allclose(np.asarray(a.values).sum(-1), truth, atol=1e-9)


def test_integral_baseline_keeps_integer_inputs_integer(counts):
    x, reg = counts
    seen = []

    def f(z):
        seen.append(z.dtype)
        return reg.predict(z)

    a = tribute.explain(f, x[:2], method="exact_shapley", baseline=np.array([1.0, 2.0, 3.0]))
    assert all(np.issubdtype(d, np.integer) for d in seen)
    np.testing.assert_allclose(np.asarray(a.values), reg.coef_ * (x[:2] - [1, 2, 3]), atol=1e-9)


def test_torch_integer_inputs_refuse_a_fractional_baseline():
    lin = torch.nn.Linear(3, 1).double()

    class Net(torch.nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return lin(z.double())

    x = torch.tensor([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(InputError, match=r"baseline holds fractional values .*4\.5.*x\.float\(\)"):
        tribute.explain(Net(), x, method="feature_ablation", baseline=torch.tensor([4.5, 2.0, 1.0]))
    with pytest.raises(InputError, match="fractional"):
        tribute.explain(Net(), x, method="feature_ablation", baseline=0.5)
    ok = tribute.explain(Net(), x, method="feature_ablation", baseline=torch.tensor([4.0, 2.0, 1.0]))
    w = lin.weight.detach().numpy()[0]
    np.testing.assert_allclose(np.asarray(ok.values), w * (x.numpy() - [4, 2, 1]), atol=1e-9)
