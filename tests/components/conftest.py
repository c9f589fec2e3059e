"""Fixtures for the component-game tests; the models live in ``component_models``."""

from __future__ import annotations

import pytest
from component_models import TinyTransformer, planted_transformer


@pytest.fixture
def planted() -> TinyTransformer:
    return planted_transformer()
