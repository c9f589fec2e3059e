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


# ------------------------------------------------------------------ integrated Hessians
def test_integrated_hessians_on_words_sum_embedding_level_interactions() -> None:
    """The text game's Integrated Hessians are the embedding-level ones (baseline: the mask
    embedding at every player token) summed over each word's tokens and embedding dimensions."""
    from _text_models import BagOfEmbeddings

    from tribute.models.text import WordTokenizer

    tok = WordTokenizer(["the", "cat", "sat"], bos=True)
    bag = BagOfEmbeddings(tok.vocab_size, dim=5)
    text = "the cat sat"
    words = tribute.explain(bag, [text], tokenizer=tok, method="integrated_hessians", removal="mask",
                            steps=5, target=1, progress=False)
    ids, _ = tok.encode_offsets(text)
    with torch.no_grad():
        e = bag.emb.weight[torch.tensor(ids)]  # 4 tokens (BOS first) x 5
        base = e.clone()
        base[1:] = bag.emb.weight[tok.mask_token_id]

    class OnEmbeddings(torch.nn.Module):
        def forward(self, flat: torch.Tensor) -> torch.Tensor:
            h = flat.reshape(flat.shape[0], 4, 5).mean(1)
            return bag.lin(torch.tanh(h))

    groups = torch.tensor([0, 0, 1, 2]).repeat_interleave(5)  # BOS (x == baseline) joins word 0
    dense = tribute.explain(OnEmbeddings(), e.reshape(1, -1), baseline=base.reshape(1, -1),
                            method="integrated_hessians", steps=5, target=1, groups=groups)
    np.testing.assert_allclose(words.extra["shap_interaction_values"],
                               dense.extra["shap_interaction_values"], atol=1e-12)
    assert abs(words.extra["shap_interaction_values"][0, 0, 0, 2]) > 1e-4  # words do interact


@pytest.mark.slow  # ~20 Hessian rows x 6 words through MiniLM with double backward
def test_minilm_pair_integrated_hessians(minilm: tuple, table: tuple) -> None:
    """Word x word Integrated Hessians of the MiniLM cosine: completeness up to the quadrature
    error (shrinking with steps), symmetry, and agreement with the exact Shapley interactions."""
    from scipy.stats import spearmanr

    model, tok = minilm
    v, n = table
    gaps, cross = [], None
    for steps in (4, 16):
        attr = tribute.explain(model, [PAIR], tokenizer=tok, pair="cosine",
                               method="integrated_hessians", removal="mask", steps=steps,
                               progress=False)
        gam = attr.extra["shap_interaction_values"][0, 0]
        np.testing.assert_allclose(gam, gam.T, atol=1e-5)  # MiniLM runs in float32
        gap = abs(float(np.asarray(attr.gap)[0]))
        np.testing.assert_allclose(gam.sum(), v[(1,) * n] - v[(0,) * n], atol=gap + 1e-6)
        gaps.append(gap)
        cross = attr.extra["pair_interactions"][0, 0]
        assert attr.n_evals == steps * n + 2
    assert gaps[1] < gaps[0] / 10 and gaps[1] < 0.01, gaps
    assert cross is not None and cross.shape == (4, 2)
    exact = tribute.explain(model, [PAIR], tokenizer=tok, pair="cosine", method="shapley_interactions",
                            removal="mask", progress=False).extra["pair_interactions"][0, 0]
    rho = spearmanr(cross.ravel(), exact.ravel())[0]
    assert rho > 0.5, rho  # measured 0.69 (8 word pairs, steps=16)


class _CrossWrapper(torch.nn.Module):
    """A plain module (no ``config``) around a cross-encoder, naming ``token_type_ids``."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        out: torch.Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                       token_type_ids=token_type_ids).logits
        return out


@pytest.mark.parametrize("removal", ["mask", "delete"])
def test_cross_pair_through_a_plain_wrapper_reads_the_segment_ids(removal: str) -> None:
    """A wrapper module that names token_type_ids gets the pair's segment ids (it read the
    pair as one text before: every value silently wrong), for text and component players."""
    tok = minilm_tokenizer()
    model = tiny_bert(tok.vocab_size, num_labels=2, seed=7)
    with torch.no_grad():  # segment ids that matter: the second text's type embedding is large
        model.bert.embeddings.token_type_embeddings.weight[1].mul_(0.0).add_(3.0)
    wrapper = _CrossWrapper(model)
    pair = ("A cat sleeps", "The kitten naps")
    enc = segment(pair, tok, "words")
    assert enc.token_type_ids is not None
    ids, types, tp = enc.input_ids[0].tolist(), enc.token_type_ids[0].tolist(), enc.token_player[0].tolist()
    n = enc.n_players[0]
    v = {}
    for s in all_masks(n):
        keep = [p < 0 or s[p] == 1 for p in tp]
        if removal == "delete":
            row = [t for t, k in zip(ids, keep) if k]
            seg = [t for t, k in zip(types, keep) if k]
        else:
            row = [t if k else tok.mask_token_id for t, k in zip(ids, keep)]
            seg = types
        with torch.no_grad():
            v[s] = float(wrapper(torch.tensor([row]), token_type_ids=torch.tensor([seg]))[0, 1])
    attr = tribute.explain(wrapper, [pair], tokenizer=tok, method="exact_shapley", removal=removal,
                           target=1, progress=False)
    np.testing.assert_allclose(attr.values[0], shapley_by_enumeration(v, n), rtol=1e-9, atol=1e-12)
    assert attr.full_values is not None
    assert math.isclose(float(attr.full_values[0]), v[(1,) * n], rel_tol=1e-12)
    if removal == "mask":
        heads = tribute.components(wrapper, ["model.bert.encoder.layer.0"], unit="head")
        comp = tribute.explain(wrapper, [pair], tokenizer=tok, players=heads, method="feature_ablation",
                               target=1, progress=False)
        assert comp.full_values is not None
        assert math.isclose(float(comp.full_values[0]), v[(1,) * n], rel_tol=1e-9)
