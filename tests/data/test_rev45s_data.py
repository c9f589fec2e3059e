"""rev45s: review of small45's rounded-copy rule in ``mislabel_auc``.

A value of 0 in a float16 / bfloat16 "copy" of ``X_train`` was given the half-ulp of [0.5, 1)
(``frexp(0)`` has exponent 0): a copy holding 0 where ``X_train`` held 2e-4 passed as a float16
rounding (float16 rounds 2e-4 to 2.0003e-4; only values within half its smallest subnormal,
2^-25 = 2.98e-8, round to 0). Truth: ``torch.tensor(v).half()`` / ``.bfloat16()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.games.data_fits import RidgeFit
from tribute.metrics import mislabel_auc

N = 30


def _setup(entry: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any, Any]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(N, 3))
    X[5, 2] = entry
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=N)
    flip = np.zeros(N, dtype=bool)
    flip[:5] = True
    y[:5] += 3.0
    data = tribute.TrainingData(X, y, fit=RidgeFit(l2=1.0))
    return X, y, flip, data, RidgeFit(l2=1.0)(data.X, data.y, seed=0)


def _run(Xc: torch.Tensor, y: np.ndarray, flip: np.ndarray, data: Any, model: Any) -> float:
    attr = tribute.explain(model, Xc, target=y, output="loss", method="grad_dot", players=data)
    game = tribute.build_game(model, Xc, target=y, output="loss", players=data)
    return float(mislabel_auc(game, attr, ground_truth=flip).extra["auc"])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("entry", [2e-4, 1e-3, -5e-4])
def test_a_zero_that_is_no_rounding_is_refused(dtype: torch.dtype, entry: float) -> None:
    X, y, flip, data, model = _setup(entry)
    assert torch.tensor(entry, dtype=torch.float64).to(dtype).item() != 0.0  # truth: not rounded to 0
    Xc = torch.tensor(X).to(dtype)
    Xc[5, 2] = 0.0
    with pytest.raises(InputError, match=r"inputs are not the training examples \(1 of 30"):
        _run(Xc, y, flip, data, model)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("entry", [0.0, 1e-8, -2e-8, 1e-45])
def test_a_zero_that_is_the_rounding_is_accepted(dtype: torch.dtype, entry: float) -> None:
    X, y, flip, data, model = _setup(entry)
    Xc = torch.tensor(X).to(dtype)
    if dtype == torch.float16:
        assert Xc[5, 2].item() == 0.0  # float16 rounds these to 0
    assert 0.0 < _run(Xc, y, flip, data, model) <= 1.0
