"""Fixtures for the viz tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def blob_map() -> np.ndarray:
    """(3, 16, 16) map: a positive blob top-left, a weaker negative one bottom-right."""
    yy, xx = np.mgrid[0:16, 0:16]
    m = np.exp(-((xx - 4) ** 2 + (yy - 4) ** 2) / 6.0) - 0.5 * np.exp(
        -((xx - 11) ** 2 + (yy - 11) ** 2) / 6.0
    )
    return np.stack([m, 0.5 * m, 0.25 * m])
