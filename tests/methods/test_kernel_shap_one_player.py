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
