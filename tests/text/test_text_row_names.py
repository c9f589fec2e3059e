"""Several texts: each sample's credits are labelled with its own words (top, plot, to_pandas)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from _text_models import BagOfEmbeddings

import tribute
from tribute.models.text import WordTokenizer

VOCAB = ["the", "cat", "sat", "on", "mat", "a", "dog", "barked", "loudly"]
TEXTS = ["the cat sat on the mat", "a dog barked"]


@pytest.fixture(scope="module")
def attr() -> tribute.Attribution:
    tok = WordTokenizer(VOCAB, bos=True)
    model = BagOfEmbeddings(tok.vocab_size)
    return tribute.explain(model, TEXTS, tokenizer=tok, method="exact_shapley", target=1)


def test_top_names_each_texts_own_words(attr: tribute.Attribution) -> None:
    v = attr.flat()[1, 0]
    top = attr.top(1, k=9)
    for i, name, credit in top["proponents"] + top["opponents"]:
        assert name == TEXTS[1].split()[i]  # not the first text's word at that position
        assert credit == pytest.approx(v[i])
    assert len(top["proponents"]) + len(top["opponents"]) == 3  # the padded players credit 0


def test_bar_plot_labels_each_texts_own_words(attr: tribute.Attribution) -> None:
    fig = attr.plot(1, kind="bar")
    labels = {t.get_text() for ax in fig.axes for t in ax.get_yticklabels() + ax.get_xticklabels()}
    assert {"a", "dog", "barked"} <= labels and "cat" not in labels


def test_to_pandas_columns_are_positions_for_texts_with_different_words(attr: tribute.Attribution) -> None:
    df = attr.to_pandas()
    assert list(df.columns) == [f"player {j}" for j in range(6)]
    np.testing.assert_array_equal(df.to_numpy(), attr.flat()[:, 0])


def test_to_pandas_columns_stay_unique_for_a_word_said_twice() -> None:
    tok = WordTokenizer(VOCAB, bos=True)
    attr = tribute.explain(BagOfEmbeddings(tok.vocab_size), [TEXTS[0]], tokenizer=tok,
                           method="exact_shapley", target=1)
    df = attr.to_pandas()
    assert list(df.columns) == [f"{j}:{w}" for j, w in enumerate(TEXTS[0].split())]
    np.testing.assert_array_equal(df.to_numpy(), attr.flat()[:, 0])
