"""rev38a: a budget the reference pass of mean/resample ablation (or patch's capture) uses up
is refused naming the user's budget; a malformed budget is refused as given."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import tribute
from tribute.games.components import components


class _Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(4, 6).double()
        self.fc2 = nn.Linear(6, 2).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))


def _run(budget: Any, method: str = "kernel_shap") -> tribute.Attribution:
    x = torch.randn(1, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = torch.randn(10, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    model = _Mlp()
    players = components(model, "fc1", ablation="mean", reference=ref)
    return tribute.explain(model, x, method=method, players=players, target=0, budget=budget)


@pytest.mark.parametrize("budget", [8, 10])
def test_a_budget_the_reference_pass_uses_up_names_the_given_budget(budget: int) -> None:
    # rev38a: 10 reference rows for 1 input take 10 evaluations; budget=8 was refused as
    # "budget=-2 must be a positive int" (an InputError about a value the user never gave)
    with pytest.raises(tribute.errors.BudgetError, match=rf"budget={budget} is too small for 'kernel_shap': 10 "
                       r"evaluation\(s\) per input go to the reference pass .* Raise budget to >= 18"):
        _run(budget)
    assert _run(18).n_evals == 18


@pytest.mark.parametrize("budget", [20.5, True, 0])
def test_a_malformed_budget_is_refused_as_given_with_a_reference_pass(budget: Any) -> None:
    # rev38a: budget=20.5 ran silently as 20 (int() before the check); True and 0 were
    # reported as budget=-9 / budget=-10
    with pytest.raises(tribute.InputError, match=rf"budget={budget!r} must be a positive int"):
        _run(budget)
