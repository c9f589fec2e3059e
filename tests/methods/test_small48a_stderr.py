"""small48a: the flat-draws rule of the sampling estimators' stderr missed an interaction below
1e-6 of the output's level (rev47e).

Regression (failed before the fix): the "gap above rounding" gate was ``gap > 1e-6 max|v|``
whatever the values' dtype, so a float64 game with an offset (1e6 + 0.5 AND of 6 players,
1e3 + 1e-4 AND, 1e8 + 50 AND) whose draws all missed the grand coalition gave Banzhaf
credits 0 with stderr 0 in 21 of 30 seeds (truth 1/64, 3.1e-6, 1.56: enumerated over the 64
coalitions here). The gate now reads the rounding of the model output's dtype.
Sibling: Sobol's stderr at the same offsets was computed from uncentred squares (stderr 0 where
offset 0 gives 0.84).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import StderrWarning
from tribute_testing import all_coalitions, banzhaf_by_enumeration

_stderr = importlib.import_module("tribute.methods._stderr")
_N = 6


def _offset_and(offset: float, amp: float) -> Any:
    def f(a: np.ndarray) -> np.ndarray:
        return offset + amp * np.prod(a, axis=1)
    return f


def _rise_centred_truth(f: Any, n: int, p: float) -> np.ndarray:
    c = all_coalitions(n)
    prob = np.prod(np.where(c == 1, p, 1 - p), axis=1)
    v = f(c)
    return np.array([(prob @ (v * c[:, i]) - (prob @ v) * p) / p for i in range(n)])


def _run(method: str, f: Any, seed: int, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StderrWarning)
        a = tribute.explain(f, np.ones((1, _N)), method=method, budget=20, baseline=0.0, seed=seed, **kw)
    return np.asarray(a.values)[0], np.asarray(a.stderr)[0]


_OFFSETS = [(1e6, 0.5), (1e3, 1e-4), (1e8, 50.0)]


@pytest.mark.parametrize(("offset", "amp"), _OFFSETS)
def test_banzhaf_offset_cannot_hide_flat_draws(offset: float, amp: float) -> None:
    f = _offset_and(offset, amp)
    truth = banzhaf_by_enumeration(f, _N)
    assert truth[0] == pytest.approx(amp / 32)
    zero_wrong = undefined = 0
    for seed in range(30):
        v, se = _run("banzhaf", f, seed)
        if np.isnan(se).all():
            undefined += 1
            continue
        zero_wrong += int(((se <= 1e-3 * truth) & (np.abs(v - truth) > 0.5 * truth)).sum())
    assert zero_wrong == 0
    assert undefined >= 10  # the seeds whose draws all missed the grand coalition


@pytest.mark.parametrize(("offset", "amp"), _OFFSETS[:2])
def test_centred_rise_offset_cannot_hide_flat_draws(offset: float, amp: float) -> None:
    f = _offset_and(offset, amp)
    truth = _rise_centred_truth(f, _N, 0.5)
    zero_wrong = 0
    for seed in range(30):
        v, se = _run("rise", f, seed, center=True)
        zero_wrong += int(((se <= 1e-3 * np.abs(truth)) & (np.abs(v - truth) > 0.5 * np.abs(truth))).sum())
    assert zero_wrong == 0


def test_sobol_stderr_is_blind_to_an_output_offset() -> None:
    """Jansen's total index and its delta-method stderr are invariant to an additive constant
    (exact arithmetic); the denominator's influence was computed uncentred, and an offset of
    1e6 cancelled it to rounding: stderr 0 (seed 7) for indices whose stderr at offset 0 is
    0.84, one stderr shared by every player (seed 0: 22.81 x 3 for 23.57, 23.67, 11.46)."""
    for seed in range(8):
        v0, se0 = _run("sobol", _offset_and(0.0, 0.5), seed)
        v1, se1 = _run("sobol", _offset_and(1e6, 0.5), seed)
        assert v1 == pytest.approx(v0, rel=1e-6, abs=1e-9)
        assert se1 == pytest.approx(se0, rel=1e-5, abs=1e-9), seed


def test_value_rounding_reads_the_model_dtype() -> None:
    """float64 outputs: 1e-12 of the size; float32: 1e-6 (as before); half types scale with eps;
    a game with no reference output is read from its values."""
    class G:
        def __init__(self, dtype: torch.dtype) -> None:
            self.reference_output = torch.zeros(1, 1, dtype=dtype)

    v = torch.tensor([[1.0]], dtype=torch.float64)
    assert _stderr.value_rounding(G(torch.float64), v) == 1e-12
    assert _stderr.value_rounding(G(torch.float32), v) == pytest.approx(1e-6)
    assert _stderr.value_rounding(G(torch.float16), v) == pytest.approx(1e-6 * 2.0**-10 / 2.0**-23)
    assert _stderr.value_rounding(G(torch.bfloat16), v) == pytest.approx(1e-6 * 2.0**-7 / 2.0**-23)
    assert _stderr.value_rounding(object(), v) == pytest.approx(1e-6)  # 1.0 is a float32 number
    assert _stderr.value_rounding(object(), v + 1e-10) == 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_models_that_ignore_every_player_keep_their_stderr(dtype: torch.dtype) -> None:
    """Legitimate neighbours: MLPs whose first layer ignores the players (a constant game up to
    the batch-size-dependent rounding of the reference pass) with large output offsets, and
    offset additive games, raise no StderrWarning and keep finite standard errors."""
    calls = 0
    for trial in range(4):
        torch.manual_seed(trial)
        d, h = 5 + trial, 40 + 30 * trial
        first, mid, last = torch.nn.Linear(d, h), torch.nn.Linear(h, h), torch.nn.Linear(h, 2)
        with torch.no_grad():
            first.weight.zero_()
            last.bias.add_(10.0 ** (trial - 1))
            mid.weight.mul_(10.0)
        m = torch.nn.Sequential(first, torch.nn.Tanh(), mid, torch.nn.ReLU(), last).to(dtype)
        x = torch.randn(1 + trial % 3, d, dtype=dtype)
        runs: list[tuple[str, dict[str, Any]]] = [("banzhaf", {}), ("rise", {"center": True}), ("sobol", {})]
        for method, kw in runs:
            with warnings.catch_warnings():
                warnings.simplefilter("error", StderrWarning)
                a = tribute.explain(m, x, method=method, budget=40, baseline=0.0, seed=trial, target=0, **kw)
            assert np.isfinite(np.asarray(a.stderr)).all(), (trial, method)
            calls += 1
    for offset in (1e6, 1e9):
        def additive(a: np.ndarray, offset: float = offset) -> np.ndarray:
            return offset + a @ np.arange(1.0, _N + 1.0) * 1e-3
        for method in ("banzhaf", "rise", "sobol"):
            with warnings.catch_warnings():
                warnings.simplefilter("error", StderrWarning)
                a = tribute.explain(additive, np.ones((1, _N)), method=method, budget=20, baseline=0.0, seed=3)
            assert np.isfinite(np.asarray(a.stderr)).all(), (offset, method)
            calls += 1
    assert calls == 18
