"""The progress plan matches the rows the model sees, and listeners never read 100% early.

Every feature method's ``estimate_cost(game, budget).rows`` counts the whole call, ``v(N)``'s
reference pass included (one row per input; every other evaluation one row per input and
background row), so the bar and :func:`tribute.engine.observe_progress` end at the rows the
model really saw (they ended at 28 of 32 rows, 86%, and began at 4 of 1, 400%).
"""

from __future__ import annotations

import pytest
import torch

import tribute
from tribute.methods.base import get_method
from tribute_testing import record_plan

METHODS = ["attnlrp", "banzhaf", "coar", "deconvolution", "deeplift", "exact_shapley", "expected_gradients",
           "feature_ablation", "gp_shapley", "guided_backprop", "input_x_gradient", "integrated_gradients",
           "integrated_hessians", "joint_shapley", "kernel_shap", "lime", "lrp", "occlusion",
           "permutation_shapley", "reagent", "rise", "saliency", "shapley", "shapley_interactions",
           "smoothgrad", "smoothgrad_sq", "sobol", "vargrad"]


class Counted(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        return self.net(x)


def test_the_list_covers_the_feature_methods_with_a_budget() -> None:
    feature = {m for m in tribute.methods() if "feature" in get_method(m).tags.games
               and not get_method(m).tags.images_only and not get_method(m).tags.model_specific}
    assert feature - set(METHODS) <= {"tree_shap", "certified"}, sorted(feature - set(METHODS))


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_plan_equals_the_rows_the_model_saw(method: str, background: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = Counted(), torch.randn(4, 6, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    bg = torch.randn(3, 6, dtype=torch.float64, generator=g)
    baseline = tribute.Background(bg) if background or method == "expected_gradients" else 0.0
    planned, seen, attr = record_plan(monkeypatch, lambda: tribute.explain(
        model, x, method=method, target=1, budget=64, baseline=baseline))
    assert model.rows == attr.n_rows
    assert seen and all(d < t for d, t in seen)  # 100% only once the call returns
    assert seen[-1][0] == attr.n_rows
    assert planned == [attr.n_rows]  # the plan: every row the model saw, no more
