"""Fixtures of the dataset-job tests."""

from __future__ import annotations

from pathlib import Path

import jobs_fixtures
import numpy as np
import pytest
import torch
from safetensors.torch import save_file


@pytest.fixture
def mlp() -> torch.nn.Module:
    return jobs_fixtures.make_mlp()


@pytest.fixture
def X() -> np.ndarray:
    return jobs_fixtures.data(40)


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    p = tmp_path / "mlp.safetensors"
    save_file(jobs_fixtures.make_mlp().state_dict(), str(p))
    return p
