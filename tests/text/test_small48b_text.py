"""small48b: a text's sobol / RISE credits depended on the other texts of the call.

A batch of texts is one game padded to the longest text's players. Sobol's designs are
``budget // (players + 2)`` of the longest text and its quasi-random masks span every player;
RISE draws its Bernoulli masks over every player. So "good" next to a 9-word text got sobol
credits 0.17-0.31 from its own (same seed) and RISE credits 3e-4 to 1.7e-3 off.
:func:`tribute.explain` now runs them on one game per player count, as LIME and ReAGent.
The truth for each text is the same call on that text alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from _text_models import BagOfEmbeddings

import tribute
from tribute.models.text import WordTokenizer

pytestmark = pytest.mark.text

_TOK = WordTokenizer(["the", "movie", "was", "great", "fun", "bad", "film", "so", "good"])
_BATCH = ["bad", "the movie was great fun so good film", "great film", "so good", "the film was bad"]
_TARGET = [0, 1, 1, 0, 1]


@pytest.mark.parametrize(("method", "removal"), [("sobol", "mask"), ("rise", "mask"), ("rise", "delete")])
def test_credits_do_not_depend_on_the_other_texts(method: str, removal: str) -> None:
    model = BagOfEmbeddings(_TOK.vocab_size, seed=1)
    batch = tribute.explain(model, _BATCH, tokenizer=_TOK, method=method, removal=removal,
                            target=np.array(_TARGET), budget=48, seed=3, progress=False)
    values = np.asarray(batch.values)
    rows = 0
    for i, text in enumerate(_BATCH):
        alone = tribute.explain(model, [text], tokenizer=_TOK, method=method, removal=removal,
                                target=_TARGET[i], budget=48, seed=3, progress=False)
        own = np.asarray(alone.values)[0]
        n = own.shape[-1]
        assert n == len(text.split())
        np.testing.assert_allclose(values[i, :n], own, rtol=0, atol=1e-12)
        assert np.isnan(values[i, n:]).all()  # the padded players of a shorter text
        rows += alone.n_rows
    assert batch.n_rows == rows  # the model ran each text's own rows, no more


@pytest.mark.parametrize("method", ["sobol", "rise"])
def test_texts_of_one_length_are_still_one_game(method: str) -> None:
    """Texts of one word count are not split (one game, no ``by_word_count`` groups)."""
    model = BagOfEmbeddings(_TOK.vocab_size, seed=1)
    texts = ["the movie was bad", "so good great film", "the film was fun"]
    a = tribute.explain(model, texts, tokenizer=_TOK, method=method, target=0, budget=40,
                        seed=5, progress=False)
    assert "by_word_count" not in a.extra
    assert np.isfinite(np.asarray(a.values)).all()
