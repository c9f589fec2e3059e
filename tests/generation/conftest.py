"""Fixtures of the generation tests: a tiny BPE tokenizer and tiny causal LMs (offline)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from gen_models import make_lm, make_tokenizer


@pytest.fixture(scope="session")
def tok() -> Any:
    return make_tokenizer()


@pytest.fixture(scope="session", params=["gpt2", "llama"])
def lm(request: pytest.FixtureRequest, tok: Any) -> Any:
    return make_lm(request.param, len(tok))


@pytest.fixture(scope="session")
def gpt2(tok: Any) -> Any:
    return make_lm("gpt2", len(tok))
