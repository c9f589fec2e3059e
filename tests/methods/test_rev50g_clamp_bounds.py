"""Clamp bounds spelled as numpy scalars or bools (review rev50g of aud50g).

``h.clamp(np.float32(-0.3), np.float32(0.3))`` is the same clamp as ``h.clamp(-0.3, 0.3)``: AttnLRP
gives it the identity rule of its ``nn.Hardtanh`` twin and ``method='lrp'`` reports it. Before,
``np.float32`` / ``np.int64`` / bool bounds were not seen as constants: a silent plain gradient
under AttnLRP (0.24 off the twin) and no warning under LRP (which warned before aud50g).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from test_aud50g_attnlrp_clamp import _lrp, _relevance
from torch import nn

BOUNDS: dict[str, tuple[Any, Any]] = {
    "np.float32": (np.float32(-0.3), np.float32(0.3)),
    "np.int64": (np.int64(-1), np.int64(1)),
    "bool": (False, True),
}


def _clamp(lo: Any, hi: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda h: h.clamp(lo, hi)


@pytest.mark.parametrize("kind", list(BOUNDS))
def test_attnlrp_numpy_bounds_match_hardtanh(kind: str) -> None:
    lo, hi = BOUNDS[kind]
    want, _ = _relevance(None, nn.Hardtanh(float(lo), float(hi)))
    got, unruled = _relevance(_clamp(lo, hi), nn.Identity())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert not unruled


@pytest.mark.parametrize("kind", list(BOUNDS))
def test_lrp_numpy_bounds_reported(kind: str) -> None:
    _, warned, ops = _lrp(_clamp(*BOUNDS[kind]))
    assert ops == {"clamp": 1} and any("functional operations" in w for w in warned)


@pytest.mark.parametrize("zero", [np.float32(0.0), np.int64(0), False], ids=["np.float32", "np.int64", "bool"])
def test_lrp_numpy_zero_bound_is_a_silent_relu(zero: Any) -> None:
    """Negative case: a zero bound stays a ReLU, silent, bitwise its nn.ReLU twin."""
    want, _, _ = _lrp(nn.ReLU())
    got, warned, ops = _lrp(lambda h: h.clamp(min=zero))
    assert torch.equal(got, want)
    assert not warned and not ops
