"""rev48s: the flat-draws gate read a float32-computed output as float64 (review of small48a).

The gate's rounding share comes from the model output's dtype (float64: 1e-12). A numpy
model returns float32 arrays that the adapter converts to float64, and a torch module with
float32 parameters may return float64: their values carry float32 rounding that depends on
the batch size (v(N) is evaluated in the reference pass, the draws in other batches). For a
sample at its baseline every coalition is the same row, so the credits are 0 and the draws
are flat; the 1-ulp batch rounding of v(N) passed the float64 gate and the stderr was NaN with
a StderrWarning (numpy float32 MLP, 14 of 100 ordinary calls with one sample at its baseline,
BASE 1; here 20 of 20). The gate now also reads the dtype the model computed in.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import StderrWarning

_METHODS = ["banzhaf", "rise", "sobol"]


def _np32_ulp_model(d: int) -> Any:
    w = np.linspace(-1.0, 1.0, d).astype(np.float32)

    def f(x: np.ndarray) -> np.ndarray:
        out = (np.float32(5.0) + np.asarray(x, np.float32) @ w).astype(np.float32)
        # float32 rounding that depends on the batch (a BLAS kernel per batch size): 1 ulp
        return out if len(x) == 1 else np.nextafter(out, np.float32(np.inf))
    return f


class _Mixed(torch.nn.Module):
    """float32 parameters, float64 output; 1 ulp of float32 rounding that depends on the batch."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(d, 1)
        with torch.no_grad():
            self.lin.weight.copy_(torch.linspace(-1.0, 1.0, d)[None])
            self.lin.bias.fill_(5.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lin(x.float())[:, 0]
        if x.shape[0] > 1:
            out = torch.nextafter(out, torch.tensor(float("inf")))
        return out.double()


def _check(model: Any, x: Any, method: str, seed: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", StderrWarning)
        a = tribute.explain(model, x, method=method, budget=40, baseline=0.0, seed=seed)
    se = np.asarray(a.stderr, dtype=float)
    vals = np.asarray(a.values, dtype=float)
    assert np.isfinite(se).all()
    # truth: sample 0 is at its baseline, every coalition is the same row (a constant game), so
    # Banzhaf and Sobol credits are 0 up
    # to the float32 rounding of an output of 5 (eps32 * 5 = 6e-7)
    if method != "rise":  # (plain RISE's credit is a mean over the masks that hold the player)
        assert np.abs(vals[0]).max() <= 1e-5


@pytest.mark.parametrize("method", _METHODS)
@pytest.mark.parametrize("seed", [0, 1])
def test_numpy_float32_output_at_baseline_keeps_its_stderr(method: str, seed: int) -> None:
    x = np.zeros((1, 8), dtype=np.float32)  # v(N) from a batch of 1, the draws from larger ones
    _check(_np32_ulp_model(8), x, method, seed)


@pytest.mark.parametrize("method", _METHODS)
def test_float32_module_with_float64_output_at_baseline_keeps_its_stderr(method: str) -> None:
    x = torch.zeros(1, 8, dtype=torch.float64)
    _check(_Mixed(8), x, method, 0)


def test_float64_numpy_offset_and_still_flagged() -> None:
    """The case the float64 gate was for stays refused (a float64 numpy output: 1e6 + 0.5 AND
    of 6 players, budget 20, a seed whose draws all missed the grand coalition)."""
    def f(a: np.ndarray) -> np.ndarray:
        return 1e6 + 0.5 * np.prod(np.asarray(a, np.float64), axis=1)
    flagged = 0
    for seed in range(6):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            a = tribute.explain(f, np.ones((1, 6)), method="banzhaf", budget=20, baseline=0.0, seed=seed)
        if np.isnan(np.asarray(a.stderr, dtype=float)).any():
            flagged += 1
            assert any(issubclass(x.category, StderrWarning) for x in w)
    assert flagged >= 1
