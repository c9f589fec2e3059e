"""Texts of different player counts in one call: methods whose credits read the number of
players explain each player count apart (a shorter text's credits would otherwise depend on
the other texts); the others give a text the credits it gets alone in one padded game."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _text_models import BagOfEmbeddings

import tribute
from tribute.models.text import WordTokenizer

VOCAB = "the cat sat on mat a quick brown fox jumps over lazy dog and ran far".split()
SHORT, LONG = "a quick fox", "the cat sat on the mat and ran far over dog"


@pytest.fixture(scope="module")
def bag() -> tuple[BagOfEmbeddings, WordTokenizer]:
    tok = WordTokenizer(VOCAB, bos=True)
    return BagOfEmbeddings(tok.vocab_size, out=3), tok


def _explain(bag: tuple, texts: list[str], method: str, **kw: Any) -> tribute.Attribution:
    model, tok = bag
    return tribute.explain(model, texts, tokenizer=tok, method=method, target=1, seed=3,
                           removal="mask", progress=False, **kw)


@pytest.mark.parametrize(("method", "kw"), [
    ("lime", {"budget": 400}),
    ("joint_shapley", {}),
    ("occlusion", {"window": 3, "stride": 1}),
    ("occlusion", {"window": (2.0,), "stride": (1,)}),
])
def test_methods_reading_the_player_count_explain_each_player_count_apart(bag: tuple, method: str, kw: dict) -> None:
    # measured when one padded game was explained: LIME 0.074 apart (18.8 standard errors),
    # joint Shapley 0.30, occlusion (window 3) 87% off on MiniLM (aud36x); refused at stop 36,
    # split by player count since txt37 (tests/text/test_txt37.py)
    mixed = np.asarray(_explain(bag, [SHORT, LONG], method, **kw).values)
    alone = _explain(bag, [SHORT], method, **kw)  # one text, or texts of one length: explained
    same = _explain(bag, [SHORT, "the lazy dog"], method, **kw)
    np.testing.assert_allclose(np.asarray(same.values)[0], np.asarray(alone.values)[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(mixed[0, :3], np.asarray(alone.values)[0])
    assert np.isnan(mixed[0, 3:]).all()
    np.testing.assert_array_equal(mixed[1], np.asarray(_explain(bag, [LONG], method, **kw).values)[0])


@pytest.mark.parametrize(("method", "kw"), [
    ("exact_shapley", {}), ("feature_ablation", {}), ("occlusion", {}),
    ("joint_shapley", {"order": 1}), ("integrated_gradients", {}),
])
def test_methods_that_ignore_padded_players_give_a_text_its_own_credits(bag: tuple, method: str, kw: dict) -> None:
    alone = np.asarray(_explain(bag, [SHORT], method, **kw).values)[0]
    batched = np.asarray(_explain(bag, [SHORT, LONG], method, **kw).values)
    assert np.isnan(batched[0, 3:]).all()
    np.testing.assert_allclose(batched[0, :3], alone, rtol=1e-6, atol=1e-9)
