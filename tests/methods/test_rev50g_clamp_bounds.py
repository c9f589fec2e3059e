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

from tribute.methods.lrp import attnlrp_rules

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


class _Causal(nn.Module):
    """Attention whose causal mask is built from ``ones_like(scores)`` (shape only) or ``arange``."""

    def __init__(self, like: bool) -> None:
        super().__init__()
        self.like = like
        self.q, self.k, self.v = (nn.Linear(8, 8) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sc = self.q(x) @ self.k(x).transpose(-1, -2)
        n = x.shape[1]
        mask = torch.ones_like(sc).tril().bool() if self.like else torch.arange(n)[:, None] >= torch.arange(n)
        out: torch.Tensor = (torch.softmax(torch.where(mask, sc, -5.0), -1) @ self.v(x)).sum((1, 2))
        return out


def test_attnlrp_mask_from_ones_like_is_fixed() -> None:
    """``ones_like(scores)`` gives the mask its shape only: a fixed mask, routing as the arange
    spelling (before: the fill took the identity rule, 0.032 off, largest relevance 0.8)."""
    rel = []
    for like in (True, False):
        torch.manual_seed(0)
        m = _Causal(like).double()
        x = torch.randn(2, 5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
        with attnlrp_rules(m):
            (g,) = torch.autograd.grad(m(x).sum(), x)
        rel.append((x * g).detach())
    torch.testing.assert_close(rel[0], rel[1], rtol=0, atol=1e-12)
