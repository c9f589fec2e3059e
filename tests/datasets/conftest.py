"""Shared fixtures for the dataset tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Train with one intra-op thread: under `pytest -n 2` on two cores, two OpenMP threads
    per worker oversubscribe the CPU and training slows down several-fold."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
