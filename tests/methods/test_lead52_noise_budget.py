"""SmoothGrad's family with a base other than saliency: every one of the n_samples noisy copies
runs the base method with its share of the budget, so the least budget is n_samples x the
base's minimum plus the clean input's pass (before: 2 x the base's minimum + 1 = 7 for IG, so
budget=7 / 81 passed check() and the refusal inside attribute() named 120, which was refused
again)."""
from __future__ import annotations

from typing import Any

import pytest
import torch

import tribute
from tribute.errors import BudgetError


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


@pytest.mark.parametrize("method", ["smoothgrad", "vargrad", "smoothgrad_sq"])
def test_the_least_budget_counts_every_noisy_copy(method: str) -> None:
    net, x = _net(), torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    kw: dict[str, Any] = dict(method=method, base="integrated_gradients", n_samples=40, target=0, baseline=0.0,
              progress=False)
    for low in (7, 81, 120):
        with pytest.raises(BudgetError, match=r"at least 121 evaluations per input \(n_samples=40 "
                                              r"noisy copies x 3 for base='integrated_gradients'"):
            tribute.explain(net, x, budget=low, **kw)
    attr = tribute.explain(net, x, budget=121, **kw)  # the least budget named runs
    assert attr.n_evals == 121 and attr.params["n_samples"] == 40


def test_saliency_base_keeps_its_least_budget() -> None:
    net, x = _net(), torch.randn(2, 4, generator=torch.Generator().manual_seed(2))
    attr = tribute.explain(net, x, method="smoothgrad", budget=3, target=0, progress=False)
    assert attr.n_evals == 3 and attr.params["n_samples"] == 2
    with pytest.raises(BudgetError, match=r"at least 3 evaluations per input\. Raise"):
        tribute.explain(net, x, method="smoothgrad", budget=2, target=0, progress=False)
