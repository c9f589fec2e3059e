"""Integrated Hessians (Janizek et al. 2021): closed forms, axioms, a slow reference, budgets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import BudgetError
from tribute.methods.integrated_hessians import log_quadrature


class Quadratic(torch.nn.Module):
    """``f(x) = x^T A x / 2 + c^T x`` (constant Hessian ``A``)."""

    def __init__(self, a: torch.Tensor, c: torch.Tensor) -> None:
        super().__init__()
        self.a, self.c = a, c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (0.5 * ((x @ self.a) * x).sum(-1) + x @ self.c)[:, None]


def _softplus_mlp(n: int, seed: int = 0) -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        m = torch.nn.Sequential(torch.nn.Linear(n, 12), torch.nn.Softplus(),
                                torch.nn.Linear(12, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    return m.double().eval()


def _gamma(attr: tribute.Attribution) -> np.ndarray:
    return np.asarray(attr.extra["shap_interaction_values"])


def _quadratic_case(n: int = 5) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, dtype=torch.float64, generator=g)
    a = a + a.T
    c = torch.randn(n, dtype=torch.float64, generator=g)
    x = torch.randn(3, n, dtype=torch.float64, generator=g)
    b = torch.randn(1, n, dtype=torch.float64, generator=g)
    return Quadratic(a, c), a, c, x, b


@pytest.mark.parametrize("steps", [1, 3, 8])
def test_quadratic_closed_form_at_any_steps(steps: int) -> None:
    model, a, c, x, b = _quadratic_case()
    attr = tribute.explain(model, x, method="integrated_hessians", baseline=b, steps=steps, target=0)
    d = x - b
    expected = d[:, :, None] * d[:, None, :] * a / 4
    idx = torch.arange(x.shape[1])
    expected[:, idx, idx] = d * (c + b @ a + d @ a / 4) + d**2 * a.diagonal() / 4
    np.testing.assert_allclose(_gamma(attr)[:, 0], expected.numpy(), atol=1e-12)
    # rows sum to the credits, the credits to f(x) - f(b) (exact for a quadratic)
    np.testing.assert_allclose(_gamma(attr)[:, 0].sum(-1), np.asarray(attr.values), atol=1e-12)
    np.testing.assert_allclose(np.asarray(attr.gap), 0.0, atol=1e-12)


def test_bilinear_term_splits_into_quarters() -> None:
    class Bilinear(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (3.0 * x[:, 0] * x[:, 2])[:, None]

    x = torch.tensor([[2.0, -1.0, 5.0, 0.5]], dtype=torch.float64)
    attr = tribute.explain(Bilinear(), x, method="integrated_hessians", baseline=0.0, steps=2, target=0)
    q = 3.0 * 2.0 * 5.0 / 4
    expected = np.zeros((4, 4))
    expected[0, 2] = expected[2, 0] = expected[0, 0] = expected[2, 2] = q
    np.testing.assert_allclose(_gamma(attr)[0, 0], expected, atol=1e-12)
    pair = np.asarray(attr.extra["interactions"])[0, 0]
    assert pair[0, 2] == pytest.approx(2 * q) and pair[1, 3] == 0.0
    np.testing.assert_allclose(np.diag(pair), np.asarray(attr.values)[0], atol=1e-12)


def _janizek_reference(model: torch.nn.Module, x: torch.Tensor, b: torch.Tensor, k: int) -> np.ndarray:
    """Janizek et al.'s own estimator, slowly: a k x k midpoint grid over (alpha, beta) with
    full Hessians from ``torch.autograd.functional``."""
    n = x.shape[0]
    d = x - b
    out = torch.zeros(n, n, dtype=torch.float64)

    def f(z: torch.Tensor) -> torch.Tensor:
        return model(z[None])[0, 0]

    for i in range(k):
        for j in range(k):
            g = (i + 0.5) / k * (j + 0.5) / k
            pt = b + g * d
            h = torch.autograd.functional.hessian(f, pt)
            grad = torch.autograd.functional.jacobian(f, pt)
            out += g * h * d[:, None] * d[None, :] / k**2
            out += torch.diag(grad * d) / k**2
    return out.numpy()


def test_matches_janizek_double_riemann_reference() -> None:
    model = _softplus_mlp(4)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, dtype=torch.float64, generator=g)
    b = torch.randn(1, 4, dtype=torch.float64, generator=g) * 0.3
    attr = tribute.explain(model, x, method="integrated_hessians", baseline=b, steps=64, target=0)
    ref = _janizek_reference(model, x[0], b[0], 60)
    np.testing.assert_allclose(_gamma(attr)[0, 0], ref, atol=2e-4)


def test_symmetry_and_completeness_error_shrinks_with_steps() -> None:
    model = _softplus_mlp(5)
    x = torch.randn(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 2
    gaps = []
    for steps in (2, 8, 32):
        attr = tribute.explain(model, x, method="integrated_hessians", steps=steps, target=[0, 1])
        gam = _gamma(attr)
        np.testing.assert_allclose(gam, np.swapaxes(gam, -1, -2), atol=1e-12)
        np.testing.assert_allclose(gam.sum(-1), np.asarray(attr.values), atol=1e-12)
        gaps.append(float(np.abs(np.asarray(attr.gap)).max()))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3, gaps


def test_groups_sum_the_element_interactions() -> None:
    model = _softplus_mlp(6)
    x = torch.randn(1, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    groups = torch.tensor([0, 0, 1, 2, 2, 2])
    dense = _gamma(tribute.explain(model, x, method="integrated_hessians", steps=6, target=1))[0, 0]
    grouped = _gamma(tribute.explain(model, x, method="integrated_hessians", steps=6, target=1,
                                     groups=groups))[0, 0]
    onehot = np.eye(3)[groups.numpy()]
    np.testing.assert_allclose(grouped, onehot.T @ dense @ onehot, atol=1e-12)


def test_budget_and_rows_counted() -> None:
    model = _softplus_mlp(5)
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    seen = {"rows": 0}

    def pre(_mod: Any, args: tuple[Any, ...]) -> None:
        seen["rows"] += int(args[0].shape[0])

    h = model.register_forward_pre_hook(pre)
    try:
        attr = tribute.explain(model, x, method="integrated_hessians", budget=40, target=0)
    finally:
        h.remove()
    assert attr.extra["steps"] == (40 - 2) // 5 and attr.n_evals == 7 * 5 + 2 <= 40
    assert seen["rows"] == attr.n_rows == 3 * attr.n_evals
    with pytest.raises(BudgetError, match="at least 7"):
        tribute.explain(model, x, method="integrated_hessians", budget=6, target=0)
    assert not model._forward_pre_hooks and not model.training


def test_log_quadrature_integrates_piecewise_linear_exactly() -> None:
    nodes, w = log_quadrature(5)
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-14)  # int_0^1 -ln g = 1
    assert float((w * nodes).sum()) == pytest.approx(0.25, abs=1e-14)  # int_0^1 -g ln g = 1/4
    assert bool(((nodes > 0) & (nodes < 1)).all())


def test_budget_sets_the_steps_reported_in_params() -> None:
    # with budget=, steps = (budget - 2) // players; params must name the steps actually used
    m = _softplus_mlp(4)
    x = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    by_budget = tribute.explain(m, x, method="integrated_hessians", budget=22)
    by_steps = tribute.explain(m, x, method="integrated_hessians", steps=5)
    np.testing.assert_array_equal(np.asarray(by_budget.values), np.asarray(by_steps.values))
    assert by_budget.params["steps"] == by_budget.extra["steps"] == 5
