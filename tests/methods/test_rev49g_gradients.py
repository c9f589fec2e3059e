"""rev49g: lrp's clamp report (aud49g) on selections with a fixed mask.

Regression (a false warning after aud49g): ``torch.where(cond, h, c)`` / ``h.masked_fill(cond, c)``
with a non-zero constant were counted as clamps whatever ``cond`` was. With a mask that does not
depend on the input (a padding mask, an MAE-style mask token, a buffer) the selection only
routes, as indexing does: the credits were bitwise equal to the silent ``h[:, ~mask] = c``
spelling, yet lrp warned that "relevance is not what the composite defines". They are counted
now only when the condition is computed from the input (``h > c``, also through ``~``, ``detach``,
``torch.lt``...).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from tribute_testing import lrp_with_report

_C = 0.1
_KEEP = [True, True, False, True, False, True]


class _Filled(nn.Module):
    """Linear -> Tanh -> ``op(self, h)`` -> Linear, with a fixed mask buffer and a mask token."""

    def __init__(self, op: Callable[[_Filled, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.a, self.t, self.b = nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 2)
        self.token = nn.Parameter(torch.linspace(0.2, 0.7, 6))
        self.keep: torch.Tensor
        self.register_buffer("keep", torch.tensor(_KEEP))
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.op(self, self.t(self.a(x))))


def _indexed(fill: Callable[[_Filled, torch.Tensor], torch.Tensor]
             ) -> Callable[[_Filled, torch.Tensor], torch.Tensor]:
    """The same selection spelled as an index assignment (routing: silent before and after)."""
    def op(m: _Filled, h: torch.Tensor) -> torch.Tensor:
        out = h.clone()
        out[:, ~m.keep] = fill(m, h)[:, ~m.keep].detach()
        return out
    return op


def _lrp(op: Callable[[_Filled, torch.Tensor], torch.Tensor]
         ) -> tuple[torch.Tensor, dict[str, int], list[str]]:
    return lrp_with_report(lambda: _Filled(op))


_FIXED: dict[str, Callable[[_Filled, torch.Tensor], torch.Tensor]] = {
    "where_token": lambda m, h: torch.where(m.keep, h, m.token.to(h.dtype)),
    "where_scalar": lambda m, h: torch.where(m.keep, h, 0.5),
    "where_token_first": lambda m, h: torch.where(~m.keep, m.token.to(h.dtype), h),
    "tensor_where": lambda m, h: h.where(m.keep, torch.full_like(h, 0.5)),
    "where_kwargs": lambda m, h: torch.where(m.keep, input=h, other=torch.full_like(h, -2.0)),
    "masked_fill": lambda m, h: h.masked_fill(~m.keep, 0.5),
    "masked_fill_tensor": lambda m, h: h.masked_fill(~m.keep[None].expand_as(h), torch.tensor(1.5)),
    "masked_fill_inplace": lambda m, h: h.clone().masked_fill_(~m.keep, -0.25),
}


@pytest.mark.parametrize("op", sorted(_FIXED))
def test_lrp_fills_with_a_fixed_mask_route_silently(op: str) -> None:
    values, ops, said = _lrp(_FIXED[op])
    assert ops == {} and said == [], (ops, said)
    routed, routed_ops, _ = _lrp(_indexed(_FIXED[op]))
    assert routed_ops == {}
    assert torch.equal(values, routed)  # the same routing: bitwise the indexing spelling's credits


_CLAMPS: dict[str, Callable[[_Filled, torch.Tensor], torch.Tensor]] = {
    # conditions computed from the input, spelled otherwise: clamps, still reported
    "where_sub_gt": lambda m, h: torch.where((h - _C) > 0, h, _C),
    "where_detached": lambda m, h: torch.where(h.detach() > _C, h, _C),
    "where_not": lambda m, h: torch.where(~(h <= _C), h, torch.full_like(h, _C)),
    "where_constant_first": lambda m, h: torch.where(torch.lt(h, _C), _C, h),
    "masked_fill_lt": lambda m, h: h.masked_fill(torch.lt(h, _C), _C),
    "masked_fill_logical": lambda m, h: h.masked_fill((h < _C).logical_and(m.keep), _C),
    "tensor_where_ge": lambda m, h: h.where(h.ge(_C), torch.full_like(h, _C)),
}


@pytest.mark.parametrize("op", sorted(_CLAMPS))
def test_lrp_fills_on_input_conditions_are_still_reported(op: str) -> None:
    _, ops, said = _lrp(_CLAMPS[op])
    assert ops and len(said) == 1, (ops, said)
