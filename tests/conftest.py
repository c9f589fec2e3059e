"""Shared fixtures (models live in tribute_testing.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tribute_testing import LinearModel


@pytest.fixture
def linear_model() -> LinearModel:
    return LinearModel()


@pytest.fixture
def tabular() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 5, generator=g, dtype=torch.float64)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
