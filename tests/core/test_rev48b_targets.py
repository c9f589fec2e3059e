"""rev48b: small48b computed float32 log-odds in float64 in ``transform_output`` but not in its
sibling ``binary_class_output`` (a known binary classifier's one probability column): a float32
p = 1.0 of class 1 still gave log1p(-1) -> +inf, refused as "model output is Inf ... check the
baseline". Truth: numpy float64 clip to [1e-12, 1 - 1e-12] and log-odds, Shapley values of two
players enumerated by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tribute
from tribute.models.adapters import BinaryKind
from tribute.targets import PROB_EPS, binary_class_output


def _log_odds(p: np.ndarray) -> np.ndarray:
    q = np.clip(p.astype(np.float64), PROB_EPS, 1.0 - PROB_EPS)
    return np.asarray(np.log(q) - np.log1p(-q))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("cls", [0, 1])
def test_binary_log_odds_finite_in_every_dtype(dtype: torch.dtype, cls: int) -> None:
    p1 = torch.tensor([1.0, 0.0, 0.5, 0.25], dtype=dtype)
    got = binary_class_output(p1, "logit", "probability", torch.full((4, 1), cls))
    assert got.dtype == dtype
    p = p1.double().numpy()
    truth = _log_odds(p if cls == 1 else 1.0 - p)
    want = torch.from_numpy(truth).to(dtype).double().numpy()  # the float64 value rounded once
    np.testing.assert_array_equal(got.double().numpy().ravel(), want)


def test_binary_probability_model_float32_p_one_explains() -> None:
    def model(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(40 * x.sum(1))  # float32: exactly 1.0 once a player is present

    x = torch.ones(1, 2, dtype=torch.float32)
    base = torch.zeros(2, dtype=torch.float32)
    attr = tribute.explain(model, x, method="exact_shapley", target=1, output="logit",
                           model_output=BinaryKind("probability"), baseline=base)
    v = {s: _log_odds(model(torch.where(torch.tensor(s, dtype=torch.bool), x, base)).numpy())[0]
         for s in [(False, False), (True, False), (False, True), (True, True)]}
    phi0 = 0.5 * (v[(True, False)] - v[(False, False)]) + 0.5 * (v[(True, True)] - v[(False, True)])
    values = np.asarray(attr.values, dtype=np.float64)[0]
    assert math.isfinite(phi0) and phi0 > 13.8
    np.testing.assert_allclose(values, [phi0, phi0], rtol=1e-6)
