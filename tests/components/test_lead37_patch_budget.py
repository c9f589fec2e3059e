"""The counterfactual's capture pass of ``ablation="patch"`` is counted and budgeted (lead, stop 37).

It is one pass of the model per input, like the reference pass: before, it reached the model
without being counted in ``n_evals`` (rows per input = n_evals + 1), so ``budget`` did not
bound it (issue #14: every row that reaches the model is counted and within budget).
"""

from __future__ import annotations

import pytest
import torch

import tribute
from tribute.errors import BudgetError


class _Counting(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(4, 6)
        self.b = torch.nn.Linear(6, 2)
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        return self.b(torch.relu(self.a(x)))


@pytest.mark.filterwarnings("ignore::tribute.errors.StderrWarning")
@pytest.mark.parametrize("ablation", ["patch", "zero"])
@pytest.mark.parametrize(("method", "budget"), [("feature_ablation", None),
                                                ("kernel_shap", 20), ("kernel_shap", 21),
                                                ("exact_shapley", 65), ("permutation_shapley", 30),
                                                ("banzhaf", 24), ("atp", None), ("coar", 30)])
def test_rows_equal_n_evals_within_budget(method: str, budget: int | None, ablation: str) -> None:
    torch.manual_seed(0)
    model = _Counting()
    x, cf = torch.randn(3, 4), torch.randn(3, 4)
    players = tribute.components(model, "a", ablation=ablation,
                                 counterfactual=cf if ablation == "patch" else None)
    model.rows = 0
    attr = tribute.explain(model, x, method=method, players=players, target=0, budget=budget,
                           progress=False)
    assert model.rows == attr.n_rows == 3 * attr.n_evals
    if budget is not None:
        assert attr.n_evals <= budget


def test_exact_shapley_needs_room_for_the_capture_pass() -> None:
    torch.manual_seed(0)
    model = _Counting()
    x, cf = torch.randn(3, 4), torch.randn(3, 4)
    players = tribute.components(model, "a", ablation="patch", counterfactual=cf)
    with pytest.raises(BudgetError, match="capture pass"):
        tribute.explain(model, x, method="exact_shapley", players=players, target=0, budget=64,
                        progress=False)
    attr = tribute.explain(model, x, method="exact_shapley", players=players, target=0, budget=65,
                           progress=False)
    assert attr.n_evals == 65
