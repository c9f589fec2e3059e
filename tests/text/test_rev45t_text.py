"""rev45t: a dual encoder's text pair (``pair="cosine"``) costs the model two rows per game row.

``Attribution.n_rows`` is documented as the model rows actually pushed through the model (and
the text conformance test checks it against a forward pre-hook), but for ``pair="cosine"`` it
counted one row per pair and coalition while the encoder embedded both texts: 128 reported for
256 rows seen (exact Shapley of 2 pairs, 6 padded players). ``n_evals`` (the budget) counts
coalitions and stays as it was. Truth: the rows the encoder's forward pre-hook sees.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from _text_models import minilm_tokenizer, tiny_bert

import tribute
from tribute.models.text import MeanPooling

pytestmark = pytest.mark.text

PAIRS = [("a man plays", "someone sings"), ("hi", "yo there friend")]  # 3+2 and 1+3 players


@pytest.fixture(scope="module")
def tok() -> Any:
    return minilm_tokenizer()


def _counted(model: torch.nn.Module, encoder: torch.nn.Module, texts: Any, tok: Any,
             **kw: Any) -> tuple[tribute.Attribution, int]:
    seen = {"n": 0}

    def pre(_mod: Any, args: Any, kwargs: Any) -> None:
        ids = args[0] if args else kwargs["input_ids"]
        seen["n"] += int(ids.shape[0])

    handle = encoder.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attr = tribute.explain(model, texts, tokenizer=tok, progress=False, **kw)
    finally:
        handle.remove()
    return attr, seen["n"]


@pytest.mark.parametrize("kw", [
    {"method": "exact_shapley"},
    {"method": "exact_shapley", "removal": "delete"},
    {"method": "kernel_shap", "budget": 40, "seed": 0},
    {"method": "integrated_gradients"},
    {"method": "lime", "budget": 30, "seed": 0},  # one game per player count, n_rows summed
])
def test_cosine_pair_counts_both_texts(tok: Any, kw: dict[str, Any]) -> None:
    encoder = tiny_bert(tok.vocab_size, seed=2).bert
    attr, seen = _counted(MeanPooling(encoder), encoder, PAIRS, tok, pair="cosine", target=0, **kw)
    assert attr.n_rows == seen
    if kw["method"] == "exact_shapley":
        assert attr.n_evals == 2 ** 5  # coalitions of the 5 (padded) players: the budget unit
        assert seen == 2 * 2 * 2 ** 5  # 2 pairs x 32 coalitions x 2 texts


@pytest.mark.parametrize("texts", [PAIRS, ["a man plays", "hi there"]])
def test_one_sequence_per_row_is_unchanged(tok: Any, texts: Any) -> None:
    model = tiny_bert(tok.vocab_size, seed=2)
    attr, seen = _counted(model, model, texts, tok, method="exact_shapley", target=1)
    assert attr.n_rows == seen == 2 * attr.n_evals


@pytest.mark.parametrize("players", [("words", None), [([(0, 5)], [(0, 7)]), ([(0, 2)], [(4, 7)])]])
def test_cosine_pair_specials_of_span_credits_are_rebuilt(tok: Any, players: Any) -> None:
    """``include_special=True`` on a cosine pair records the second text's special tokens as
    ``(1, 0, 0)`` (the side marker replaces -1): ``evaluate`` rebuilt them as the empty span
    (0, 0) and refused ("players span (0, 0) of texts[0] is outside the text"). Truth: exact
    Shapley values scored on their own game have ``shapley_error`` 0."""
    encoder = tiny_bert(tok.vocab_size, seed=2).bert
    model = MeanPooling(encoder)
    pairs = [("a man", "someone sings"), ("hi yo", "the dog")]
    kw: dict[str, Any] = {"tokenizer": tok, "pair": "cosine", "target": 0, "progress": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attr = tribute.explain(model, pairs, method="exact_shapley", players=players,
                               include_special=True, **kw)
        assert attr.player_kind == "span"
        res = tribute.evaluate(model, pairs, attr, metric="shapley_error", **kw)
    assert float(np.nanmax(np.abs(np.asarray(res.scores)))) < 1e-9
