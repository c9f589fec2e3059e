"""small44 (stop 44): one message helper for z^B bounds (lrp/method's ``_brief`` and
lrp/rules' ``_bound`` said the same thing two ways: a list bound was "<list of 2>" in one
message and "<list of shape (2,)>" in the other)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError
from tribute.methods.lrp.rules import ZBox, bound_text


@pytest.mark.parametrize(("value", "text"), [
    (None, "None"), (1.0, "1.0"), (-2, "-2"),
    (torch.zeros(3), "<Tensor of shape (3,)>"), ([[0.0], [1.0]], "<list of shape (2, 1)>"),
    ((0.0, 1.0), "<tuple of shape (2,)>"), ([[0.0], [1.0, 2.0]], "<list of 2>"),
])
def test_bound_text(value: Any, text: str) -> None:
    assert bound_text(value) == text


def test_both_messages_name_a_tensor_bound_by_its_shape() -> None:
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    with pytest.raises(InputError, match=r"low=<Tensor of shape \(2,\)>/high=None"):
        tribute.explain(model, x, method="lrp", composite="epsilon_gamma_box", target=1,
                        progress=False, low=torch.zeros(2))
    rule = ZBox(low=torch.ones(4, dtype=torch.float64), high=0.0)
    lin = nn.Linear(4, 2).double()
    with pytest.raises(InputError, match=r"ZBox low=<Tensor of shape \(4,\)> exceeds high=0\.0"):
        rule.relevance(lin, x, lin(x), torch.ones(3, 2, dtype=torch.float64))
