"""Fixtures for the metric reference tests (float64 throughout)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def linear():
    """A float64 linear model on 12 features, inputs, and the oracle attribution w * x."""
    g = torch.Generator().manual_seed(0)
    n, b = 12, 6
    w = torch.randn(n, generator=g, dtype=torch.float64)
    lin = torch.nn.Linear(n, 1, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(w[None])
        lin.bias.fill_(0.5)
    model = torch.nn.Sequential(lin, torch.nn.Flatten(0))
    x = torch.randn(b, n, generator=g, dtype=torch.float64)
    return model, x, w
