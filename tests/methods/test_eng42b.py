"""eng42b (issue #9): the Student-t factors of inflate_welch come from a cached table.

Truth: scipy's ``t.ppf(0.97725, d) / 2`` evaluated here, per range, independently of the
code's table; the cache must give the same bits and call scipy once, not once per call."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import t as student_t

from tribute.methods import _stderr

_TAIL = 0.5 * (1.0 + math.erf(2.0 / math.sqrt(2.0)))


def _truth(first: int, last: int) -> np.ndarray:
    return student_t.ppf(_TAIL, np.arange(first, last + 1, dtype=np.float64)) / 2.0


@pytest.mark.parametrize("first,last", [(1, 1), (1, 2), (3, 4), (30, 400), (63, 65), (500, 3000),
                                        (1, 70_000), (69_990, 70_010)])
def test_t_factors_are_scipy_quantiles_bit_for_bit(first: int, last: int) -> None:
    got = _stderr._t_factors(first, last)
    assert got.dtype == torch.float64 and got.shape == (last - first + 1,)
    assert got.numpy().tobytes() == _truth(first, last).tobytes()


def test_beyond_the_table_falls_back() -> None:
    big = _stderr._T_TABLE_MAX
    got = _stderr._t_factors(big - 1, big + 2)
    assert got.numpy().tobytes() == _truth(big - 1, big + 2).tobytes()


def test_repeated_calls_do_not_rerun_the_quantile(monkeypatch: pytest.MonkeyPatch) -> None:
    _stderr._t_factors(1, 2_000)  # the table covers it now
    ranges = [(30, 400), (5, 6), (100, 1_999)]
    truths = [_truth(a, b) for a, b in ranges]
    calls = []
    real = student_t.ppf

    def counting(*a: object, **k: object) -> object:
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(student_t, "ppf", counting)
    for (first, last), truth in zip(ranges, truths):
        assert _stderr._t_factors(first, last).numpy().tobytes() == truth.tobytes()
    assert calls == []


def test_a_returned_table_is_the_callers_own() -> None:
    a = _stderr._t_factors(2, 10)
    a.fill_(0.0)
    assert _stderr._t_factors(2, 10).numpy().tobytes() == _truth(2, 10).tobytes()


def test_inflate_welch_matches_a_hand_computation() -> None:
    g = torch.Generator().manual_seed(0)
    var = torch.rand(5, 2, 7, dtype=torch.float64, generator=g)
    welch = torch.rand(5, 2, 7, dtype=torch.float64, generator=g) * 0.02
    dof = 40
    got = _stderr.inflate_welch(var, welch, dof).numpy()
    v, wl = var.numpy(), welch.numpy()
    eff = np.clip(v * v / wl, 1.0, dof)
    lo = np.floor(eff)
    frac = eff - lo
    f = (student_t.ppf(_TAIL, lo) / 2.0) * (1 - frac) + (student_t.ppf(_TAIL, np.minimum(lo + 1, dof)) / 2.0) * frac
    pooled = v.mean(-1, keepdims=True)
    mod = v + 2.0 / (dof + 2.0) * np.clip(pooled - v, 0.0, None)
    np.testing.assert_allclose(got, np.sqrt(mod) * f, rtol=1e-12)
