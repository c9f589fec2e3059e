"""aud51e: submodular_regions' "budget is too small" refusal names the targets that multiply
its minimum (rev50r: "needs at least 66 evaluations" for 16 regions and 2 targets, 34 for one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import BudgetError


def _model_and_groups() -> tuple[torch.nn.Module, torch.Tensor, np.ndarray]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()
    cells = np.arange(64).reshape(8, 8)
    groups = np.broadcast_to(cells // 16 * 4 + (cells % 8) // 2, (3, 8, 8))  # 16 groups of 2 x 2
    return model, torch.randn(1, 3, 8, 8), groups


def test_submodular_regions_budget_refusal_names_the_targets() -> None:
    model, x, groups = _model_and_groups()
    with pytest.raises(BudgetError, match=r"at least 66 evaluations per input \(v\(N\) and v\(empty\) \+ "
                       r"2 per region x 16 regions x 2 targets.*one target needs 34"):
        tribute.explain(model, x, method="submodular_regions", target=[0, 3], groups=groups, budget=30,
                        search="greedy")


def test_submodular_regions_budget_refusal_with_one_target_does_not_mention_targets() -> None:
    model, x, groups = _model_and_groups()
    with pytest.raises(BudgetError, match=r"at least 34 evaluations per input \(v\(N\) and v\(empty\) \+ "
                       r"2 per region x 16 regions: the first round scores every region\)\. Raise") as info:
        tribute.explain(model, x, method="submodular_regions", target=0, groups=groups, budget=30,
                        search="greedy")
    assert "target" not in str(info.value)
