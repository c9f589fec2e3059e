"""kernel_shap on one player (no proper coalition) with target_precision (rev34c)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import tribute


@pytest.mark.parametrize("target_precision", [None, 0.01])
def test_one_player_gets_the_whole_gap(target_precision: float | None) -> None:
    # with target_precision it raised RuntimeError: stack expects a non-empty TensorList
    def f(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)[:, 0] ** 2 + 1

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attr = tribute.explain(f, np.array([[2.0], [3.0]]), method="kernel_shap", baseline=0.0, budget=10,
                               target_precision=target_precision)
    np.testing.assert_allclose(np.asarray(attr.values).ravel(), [4.0, 9.0])


@pytest.mark.parametrize("n_players", [1, 2])
@pytest.mark.parametrize("target_precision", [None, 0.01])
def test_enumerated_games_of_one_or_two_players_report_zero_stderr(n_players: int,
                                                                    target_precision: float | None) -> None:
    # stop 35: every coalition was enumerated (values exact) but the standard errors were NaN
    # (no residual degrees of freedom); exact budgets report 0, as from 3 players on
    def f(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.tanh(x.sum(1)) + x[:, 0] * x[:, -1]

    x = np.array([[0.5, -1.0], [2.0, 0.3]])[:, :n_players]
    attr = tribute.explain(f, x, method="kernel_shap", baseline=0.0, target_precision=target_precision)
    exact = tribute.explain(f, x, method="exact_shapley", baseline=0.0)
    np.testing.assert_allclose(np.asarray(attr.values), np.asarray(exact.values), atol=1e-12)
    assert attr.stderr is not None
    np.testing.assert_array_equal(np.asarray(attr.stderr), 0.0)
