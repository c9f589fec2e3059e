"""Issue #9, round 4 (eng40): refusals that need no model row spend none.

Building a feature game runs the reference pass (``v(N)``, one model row per input), and
:meth:`Method.check` ran after it: a malformed ``budget`` (``0``, ``2.5``, ``True``) was refused
only once the model had seen every input (a whole forward pass of a large model spent on a
typo). :func:`tribute.explain` now refuses it before the game is built, with the same message,
after the method's parameters as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute_testing import RowCounter, make_mlp


@pytest.mark.parametrize("method", ["kernel_shap", "feature_ablation", "integrated_gradients", "lime"])
@pytest.mark.parametrize("budget", [0, -3, 2.5, True, "64", np.float64(64.0), np.int64(0)])
def test_a_malformed_budget_is_refused_before_any_model_row(method: str, budget: Any) -> None:
    model = RowCounter(make_mlp())
    x = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(InputError, match=r"must be a positive int \(evaluations per input\)") as err:
        tribute.explain(model, x, method, target=0, budget=budget, progress=False)
    assert f"budget={budget!r}" in str(err.value)
    assert model.rows == 0  # main: 5 (the reference pass ran first)


def test_the_method_parameters_are_still_refused_before_a_malformed_budget() -> None:
    model = RowCounter(make_mlp())
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with pytest.raises(InputError, match="steps=0 is not allowed"):
        tribute.explain(model, x, "integrated_gradients", target=0, budget=0, steps=0, progress=False)
    assert model.rows == 0


@pytest.mark.parametrize("budget", [np.int64(40), 40])
def test_a_valid_budget_still_runs_and_the_rows_seen_are_the_evaluations(budget: Any) -> None:
    model = RowCounter(make_mlp())
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    attr = tribute.explain(model, x, "kernel_shap", target=1, budget=budget, progress=False)
    assert attr.n_evals <= 40
    assert model.rows == attr.n_evals * 4 == attr.n_rows
    assert attr.params["budget"] == 40


def test_a_too_small_budget_still_says_what_the_method_needs() -> None:
    # refused by check() on the built game (it needs the players); since eng41 the game runs
    # v(N)'s rows only when they are read (target=0 has one column whatever the model
    # returns), so this refusal spends none either (eng40: 5)
    model = RowCounter(make_mlp())
    x = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with pytest.raises(tribute.errors.BudgetError, match="needs at least 8 evaluations"):
        tribute.explain(model, x, "kernel_shap", target=0, budget=2, progress=False)
    assert model.rows == 0


@pytest.mark.parametrize("budget", [0, 20.5])
def test_a_malformed_budget_spends_no_capture_pass_of_a_component_game(budget: Any) -> None:
    # ablation="mean" runs the reference rows through the model when the game is built
    model = RowCounter(make_mlp())
    x = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    ref = torch.randn(10, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    players = tribute.components(model, "inner.0", ablation="mean", reference=ref)
    with pytest.raises(InputError, match=rf"budget={budget!r} must be a positive int"):
        tribute.explain(model, x, "kernel_shap", players=players, target=0, budget=budget,
                        progress=False)
    assert model.rows == 0  # main: 12 (2 inputs, 10 reference rows)
    attr = tribute.explain(model, x, "kernel_shap", players=players, target=0, budget=40,
                           progress=False)
    assert attr.n_evals <= 40
