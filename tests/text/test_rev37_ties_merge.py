"""Deletion / insertion on texts of different word counts (scored group by group, review
rev37, stop 37): each text's ``extra["stderr_ties"]`` (the Monte Carlo error of the tie-order
average, per sample) is merged into the result in the batch order, like ``auc``. Before the fix
it was left in each group's ``by_word_count`` entry only, so ``res.extra["stderr_ties"]`` was
missing for any batch of texts of different lengths. Truth: every group scored as its own call
(texts of one word count), bit for bit."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from _text_models import BagOfEmbeddings

import tribute
from tribute.models.text import WordTokenizer

VOCAB = "the cat sat on mat a quick brown fox jumps over lazy dog and ran far".split()
TEXTS = ["the cat sat on the mat and ran", "a quick fox", "the lazy dog", "a dog ran far"]
GROUPS = [[1, 2], [3], [0]]  # 3, 4 and 8 words


@pytest.mark.parametrize("metric", ["deletion", "insertion"])
def test_stderr_ties_of_texts_of_different_lengths_is_merged_per_sample(metric: str) -> None:
    tok = WordTokenizer(VOCAB, bos=True)
    model = BagOfEmbeddings(tok.vocab_size, out=3)
    kw: dict[str, Any] = {"tokenizer": tok, "removal": "mask"}
    attr = tribute.explain(model, TEXTS, method="occlusion", target=1, progress=False, **kw)
    # credits rounded to one decimal: ties in most texts, so the tie orders are averaged
    tied = dataclasses.replace(attr, values=np.round(np.asarray(attr.values, dtype=np.float64), 1))
    res = tribute.evaluate(model, TEXTS, tied, metric=metric, tie_orders=6, **kw)
    merged = np.asarray(res.extra["stderr_ties"], dtype=np.float64).reshape(len(TEXTS))
    truth = np.full(len(TEXTS), np.nan)
    for rows in GROUPS:
        one = tribute.explain(model, [TEXTS[i] for i in rows], method="occlusion", target=1,
                              progress=False, **kw)
        one = dataclasses.replace(one, values=np.round(np.asarray(one.values, dtype=np.float64), 1))
        r = tribute.evaluate(model, [TEXTS[i] for i in rows], one, metric=metric, tie_orders=6, **kw)
        truth[rows] = np.asarray(r.extra["stderr_ties"], dtype=np.float64).reshape(len(rows))
        np.testing.assert_array_equal(np.asarray(res.scores).reshape(-1)[rows],
                                      np.asarray(r.scores).reshape(-1))
    assert (truth > 0).any()  # some text has a tie that a step splits
    np.testing.assert_array_equal(merged, truth)
