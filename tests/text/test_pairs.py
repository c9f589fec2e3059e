"""Sentence pairs: dual encoders (cosine of MiniLM embeddings) and cross-encoders."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from _text_models import (
    all_masks,
    minilm_encoder,
    minilm_tokenizer,
    shapley_by_enumeration,
    tiny_bert,
)

import tribute
from tribute.models.text import MeanPooling, segment

pytestmark = pytest.mark.text

PAIR = ("A man plays guitar", "Someone sings")


@pytest.fixture(scope="module")
def minilm() -> tuple[torch.nn.Module, object]:
    return MeanPooling(minilm_encoder()), minilm_tokenizer()


@pytest.fixture(scope="module")
def table(minilm: tuple) -> tuple[dict, int]:
    return _cosine_table(minilm[0], minilm[1], PAIR)


def _cosine_table(model: torch.nn.Module, tok: object, pair: tuple[str, str]) -> tuple[dict, int]:
    """v(S) for every coalition of the pair's words, by hand: mask, embed each side, cosine."""
    sides = [segment(t, tok, "words") for t in pair]
    na, nb = sides[0].n_players[0], sides[1].n_players[0]
    n = na + nb
    rows_a: list[torch.Tensor] = []
    rows_b: list[torch.Tensor] = []
    keys: list[tuple[int, ...]] = []
    for s in all_masks(n):
        for k, (enc, off) in enumerate(((sides[0], 0), (sides[1], na))):
            ids = enc.input_ids[0].clone()
            for j, p in enumerate(enc.token_player[0].tolist()):
                if p >= 0 and s[off + p] == 0:
                    ids[j] = tok.mask_token_id  # type: ignore[attr-defined]
            (rows_a if k == 0 else rows_b).append(ids)
        keys.append(s)
    with torch.no_grad():
        ea = model(torch.stack(rows_a))
        eb = model(torch.stack(rows_b))
    cos = torch.nn.functional.cosine_similarity(ea, eb, dim=-1)
    return {k: float(c) for k, c in zip(keys, cos)}, n


def test_minilm_pair_exact_shapley_equals_enumeration(minilm: tuple, table: tuple) -> None:
    model, tok = minilm
    v, n = table
    truth = shapley_by_enumeration(v, n)
    attr = tribute.explain(model, [PAIR], tokenizer=tok, pair="cosine", method="exact_shapley",
                           removal="mask", progress=False)
    assert attr.player_names == ["A", "man", "plays", "guitar", "Someone", "sings"]
    np.testing.assert_allclose(attr.values[0], truth, rtol=1e-5, atol=1e-6)
    assert attr.full_values is not None
    assert math.isclose(float(attr.full_values[0]), v[(1,) * n], rel_tol=1e-6)
    # efficiency: the credits add up to cos(full pair) - cos(all words masked)
    assert abs(float(attr.values[0].sum()) - (v[(1,) * n] - v[(0,) * n])) < 1e-5


def test_minilm_pair_word_interactions_enumeration_and_sums(minilm: tuple, table: tuple) -> None:
    model, tok = minilm
    v, n = table
    attr = tribute.explain(model, [PAIR], tokenizer=tok, pair="cosine", method="shapley_interactions",
                           removal="mask", progress=False)
    cross = attr.extra["pair_interactions"][0, 0]
    assert cross.shape == (4, 2)
    na = 4
    for i, j in itertools.product(range(na), range(2)):
        a, b = i, na + j
        rest = [p for p in range(n) if p not in (a, b)]
        total = 0.0
        for bits in itertools.product((0, 1), repeat=len(rest)):
            s = dict(zip(rest, bits))
            size = sum(bits)
            w = math.factorial(size) * math.factorial(n - size - 2) / math.factorial(n - 1)

            def val(xa: int, xb: int, s: dict = s, a: int = a, b: int = b) -> float:
                return v[tuple(xa if p == a else xb if p == b else s[p] for p in range(n))]

            total += w * (val(1, 1) - val(1, 0) - val(0, 1) + val(0, 0))
        assert abs(cross[i, j] - total) < 1e-5
    # SHAP-convention interaction values: every row sums to the player's Shapley value
    shap_iv = attr.extra["shap_interaction_values"][0, 0]
    np.testing.assert_allclose(shap_iv.sum(1), attr.values[0], atol=1e-9)
    np.testing.assert_allclose(shap_iv.sum(), v[(1,) * n] - v[(0,) * n], atol=1e-6)


def test_one_side_players_and_cross_encoder_pairs() -> None:
    tok = minilm_tokenizer()
    model = tiny_bert(tok.vocab_size, num_labels=1, seed=5)
    pair = ("A cat sleeps", "The kitten naps")
    attr = tribute.explain(model, [pair], tokenizer=tok, method="exact_shapley",
                           players=(None, "words"), removal="mask", progress=False)
    assert attr.player_names == ["The", "kitten", "naps"]
    enc = segment(pair, tok, (None, "words"))
    v = {}
    for s in all_masks(3):
        ids = enc.input_ids.clone()
        for j, p in enumerate(enc.token_player[0].tolist()):
            if p >= 0 and s[p] == 0:
                ids[0, j] = tok.mask_token_id
        with torch.no_grad():
            v[s] = float(model(input_ids=ids, token_type_ids=enc.token_type_ids).logits[0, 0])
    np.testing.assert_allclose(attr.values[0], shapley_by_enumeration(v, 3), rtol=1e-9, atol=1e-12)
