"""aud45t: text metrics rebuild the game the credits were computed on.

``tribute.evaluate`` on credits of character-span players (``players=[(start, end), ...]``) or of
special tokens (``include_special=True``) rebuilt a game of *words* when ``players=`` was not
given: with as many words as spans no error was raised and the score was that of other players
(``shapley_error`` 0.62 for exact Shapley values of two sub-word spans; 331 with special tokens),
otherwise it refused with a fix that could not help (``include_special`` is no ``evaluate``
argument). Per-text span lists of texts with different span counts were refused even when given
("players has 2 span lists but there are 1 texts": each group of texts got every text's spans).

Truth: ``shapley_error`` of exact Shapley values scored on the game they were computed on is 0
(the metric compares them with exact Shapley values of that game); a game with other players
than the credits is refused.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from _text_models import minilm_tokenizer, tiny_bert

import tribute
from tribute.errors import InputError

pytestmark = pytest.mark.text


@pytest.fixture(scope="module")
def bert() -> tuple[torch.nn.Module, Any]:
    tok = minilm_tokenizer()
    return tiny_bert(tok.vocab_size, seed=1), tok


def _error(bert: tuple[torch.nn.Module, Any], texts: Any, explain_kw: dict[str, Any],
           evaluate_kw: dict[str, Any] | None = None) -> np.ndarray:
    model, tok = bert
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the out-of-distribution note of a removal token
        attr = tribute.explain(model, texts, tokenizer=tok, method="exact_shapley", target=1,
                               progress=False, **explain_kw)
        res = tribute.evaluate(model, texts, attr, metric="shapley_error", tokenizer=tok, target=1,
                               progress=False, **(evaluate_kw or {}))
    return np.asarray(res.scores, dtype=np.float64).ravel()


def test_sub_word_span_credits_are_scored_on_their_spans(bert: tuple[torch.nn.Module, Any]) -> None:
    # "unbelievably great": spans "unbel" / "ievably" (2 players), as many as its 2 words
    spans = [(0, 5), (5, 12)]
    got = _error(bert, "unbelievably great", {"players": spans})
    np.testing.assert_allclose(got, 0.0, atol=1e-9)  # before: 0.62 (scored on the words)


@pytest.mark.parametrize("give_players", [False, True])
def test_per_text_spans_of_different_counts(bert: tuple[torch.nn.Module, Any], give_players: bool) -> None:
    texts = ["unbelievably great", "the cat sat"]
    spans = [[(0, 5), (5, 12), (13, 18)], [(0, 3), (4, 11)]]
    got = _error(bert, texts, {"players": spans}, {"players": spans} if give_players else None)
    np.testing.assert_allclose(got, 0.0, atol=1e-9)  # before: InputError


@pytest.mark.parametrize("players", ["words", [[(0, 3)], [(0, 5)]]], ids=["words", "spans"])
def test_include_special_credits_are_scored_on_their_game(bert: tuple[torch.nn.Module, Any],
                                                          players: Any) -> None:
    got = _error(bert, ["the cat", "a big dog"], {"include_special": True, "players": players})
    np.testing.assert_allclose(got, 0.0, atol=1e-9)  # before: refused (words) or 331 (spans)


def test_a_game_of_other_players_is_refused(bert: tuple[torch.nn.Module, Any]) -> None:
    with pytest.raises(InputError, match=r"credits of text 0 are for players \['unbel', 'ievably'\] but "
                                         r"the game rebuilt .* \['unbelievably', 'great'\]"):
        _error(bert, "unbelievably great", {"players": [(0, 5), (5, 12)]}, {"players": "words"})
