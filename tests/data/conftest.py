"""Fixtures of small seeded data games (cases live in data_cases.py)."""

from __future__ import annotations

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
