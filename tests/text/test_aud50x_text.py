"""aud50x: a text metric's count-dependent refusal before any group spends rows; the text toy
model's seeded build is reproducible whatever the global RNG state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _text_models import BagOfEmbeddings

import tribute
from tribute.errors import InputError
from tribute.models.text import WordTokenizer

_VOCAB = "the cat sat on mat a quick brown fox jumps over lazy dog and ran far".split()
_TOK = WordTokenizer(_VOCAB, bos=True)
_TEXTS = ["the cat sat on the mat and ran far over dog", "a quick fox", "the lazy dog ran far"]


class _Counted(BagOfEmbeddings):  # type: ignore[misc]  # a tests-dir helper: Any to mypy
    rows = 0

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        _Counted.rows += int(ids.shape[0])
        return super().forward(ids, attention_mask)


def test_shapley_error_refuses_the_longest_text_before_shorter_groups_spend_rows() -> None:
    # measured: texts of 11, 3 and 5 words with max_players=5 ran 43 model rows (the 3- and
    # 5-word groups' 2^n tables) before the 11-word group was refused
    model = _Counted(_TOK.vocab_size, out=3, seed=1)
    attr = tribute.explain(model, _TEXTS, tokenizer=_TOK, method="feature_ablation", target=1,
                           removal="mask", progress=False)
    _Counted.rows = 0
    with pytest.raises(InputError, match=r"2\^11 coalitions for text 0 of the batch.*max_players=5"):
        tribute.evaluate(model, _TEXTS, attr, metric="shapley_error", tokenizer=_TOK,
                         progress=False, max_players=5)
    assert _Counted.rows == 0
    # a limit every text fits still scores each text (the shorter texts exactly as alone)
    got = tribute.evaluate(model, _TEXTS, attr, metric="shapley_error", tokenizer=_TOK,
                           progress=False, max_players=11)
    alone = tribute.explain(model, _TEXTS[1:2], tokenizer=_TOK, method="feature_ablation",
                            target=1, removal="mask", progress=False)
    one = tribute.evaluate(model, _TEXTS[1:2], alone, metric="shapley_error", tokenizer=_TOK,
                           progress=False, max_players=11)
    np.testing.assert_allclose(np.asarray(got.scores).ravel()[1], np.asarray(one.scores).ravel()[0],
                               rtol=1e-12)


def test_seeded_bag_of_embeddings_does_not_read_the_global_rng() -> None:
    # its linear bias came from nn.Linear's default init (global RNG): two seed=0 builds in two
    # processes had biases [-0.264, -0.195] and [-0.056, 0.252], so other outputs
    torch.manual_seed(1)
    a = BagOfEmbeddings(12, seed=0)
    torch.manual_seed(2)
    b = BagOfEmbeddings(12, seed=0)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name
