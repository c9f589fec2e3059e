"""Review rev40b of aud40d: representer on a model whose forward pass calls no nn.Linear."""

from __future__ import annotations

import pytest
import torch

import tribute
from tribute.errors import UnsupportedModelError


class _UnusedLinear(torch.nn.Module):
    """Output ``x @ W`` (a plain parameter) beside an ``nn.Linear`` the forward never calls."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Linear(3, 2).double()
        self.W = torch.nn.Parameter(torch.randn(3, 2, dtype=torch.float64,
                                                generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.W


def test_representer_refuses_a_model_whose_forward_calls_no_linear() -> None:
    # before: the registered-but-unused Linear was split; its gradients are 0, so every credit
    # was 0.0 for logits of order 1, silently
    g = torch.Generator().manual_seed(1)
    X = torch.randn(12, 3, generator=g, dtype=torch.float64)
    y = (X[:, 0] > 0).long()
    model = _UnusedLinear()
    hooks = [len(m._forward_hooks) for m in model.modules()]
    data = tribute.TrainingData(X, y, l2=0.3, reduction="sum")
    with pytest.raises(UnsupportedModelError, match=r"calls none of .*'unused'"):
        tribute.explain(model, X[:2], method="representer", players=data, target=0)
    assert [len(m._forward_hooks) for m in model.modules()] == hooks
