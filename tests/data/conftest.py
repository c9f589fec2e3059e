"""Fixtures of small seeded data games (cases live in data_cases.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from data_cases import Case, logistic_case, mlp_case, ridge_case


@pytest.fixture
def ridge() -> Case:
    return ridge_case()


@pytest.fixture
def logistic() -> Case:
    return logistic_case()


@pytest.fixture
def mlp() -> Case:
    return mlp_case()


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Small-model gradient work is dominated by thread synchronisation on a loaded 2-core box
    (an HVP takes 0.6 s with 2 threads, 0.02 s with 1); pytest-xdist already runs 2 workers."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
