"""Stop 40 (lead): refusals name the fix for the players at hand (audits aud40d, aud40i, aud40t)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import BudgetError, UnsupportedModelError


def test_a_training_data_game_is_told_to_group_examples_not_features() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
    from data_cases import ridge_case

    case = ridge_case(n=12, d=3, n_test=1)
    with pytest.raises(BudgetError) as err:
        tribute.explain(case.model, case.X_test, method="banzhaf", players=case.data(), budget=2)
    assert "TrainingData(..., groups=...)" in str(err.value)
    assert "group features" not in str(err.value)


def test_a_feature_game_is_still_told_to_group_features() -> None:
    model = torch.nn.Linear(6, 1).double()
    x = torch.randn(2, 6, dtype=torch.float64)
    with pytest.raises(BudgetError, match=r"group features \(groups=\.\.\.\)"):
        tribute.explain(model, x, method="banzhaf", budget=2)
    with pytest.raises(BudgetError, match=r"Group features \(groups=\.\.\.\) to reduce the number of players or use 'kernel_shap'"):
        tribute.explain(torch.nn.Linear(21, 1).double(), torch.randn(1, 21, dtype=torch.float64),
                        method="exact_shapley")


def test_multi_output_sklearn_tree_refusal_names_an_alternative() -> None:
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.RandomState(0)
    X = rng.randn(40, 3)
    tree = DecisionTreeRegressor(max_depth=3, random_state=0).fit(X, np.c_[X[:, 0], X[:, 1]])
    with pytest.raises(UnsupportedModelError, match=r"\(2 outputs\).*method='shapley'.*target=j"):
        tribute.explain(tree, X[:2], method="tree_shap", target=0)
