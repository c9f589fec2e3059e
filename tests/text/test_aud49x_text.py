"""aud49x: integrated Hessians' steps followed the longest text of a call.

With ``budget``, integrated Hessians runs ``steps = (budget - 2) // players``. A batch of texts
is one game padded to the longest text's players, so "bad" next to an 8-word text ran 5 steps
instead of its own 46 (budget 48): its credit was 0.052 from the completeness truth
``f(word) - f([MASK])`` (computed here by calling the model by hand), against 6e-4 alone.
:func:`tribute.explain` now runs it on one game per player count when a budget is given, as
it does for sobol, RISE and LIME. Without a budget the steps are fixed and nothing is split.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _text_models import BagOfEmbeddings

import tribute
from tribute.models.text import WordTokenizer

pytestmark = pytest.mark.text

_TOK = WordTokenizer(["the", "movie", "was", "great", "fun", "bad", "film", "so", "good"])
_BATCH = ["bad", "the movie was great fun so good film", "great film", "the film was bad"]
_TARGET = [0, 1, 1, 0]


def _one_word_gap(model: BagOfEmbeddings, word: str, target: int) -> float:
    """``f(word) - f([MASK])`` for a one-word text, by calling the model on the ids by hand."""
    ids = torch.tensor([[_TOK.vocab[word]]])
    masked = torch.tensor([[_TOK.mask_token_id]])
    one = torch.ones_like(ids)
    with torch.no_grad():
        return float(model(ids, attention_mask=one)[0, target] - model(masked, attention_mask=one)[0, target])


def test_integrated_hessians_budget_steps_follow_each_text() -> None:
    model = BagOfEmbeddings(_TOK.vocab_size, seed=1)
    before = [p.detach().clone() for p in model.parameters()]
    attr = tribute.explain(model, _BATCH, tokenizer=_TOK, method="integrated_hessians",
                           target=np.array(_TARGET), budget=48, seed=3, progress=False)
    values = np.asarray(attr.values)
    truth = _one_word_gap(model, "bad", _TARGET[0])
    # 46 steps (its own): 5.9e-4 from the truth; 5 steps (the 8-word text's): 0.052
    assert abs(values[0, 0] - truth) < 2e-3
    assert np.isnan(values[0, 1:]).all()
    rows = 0
    for i, text in enumerate(_BATCH):
        alone = tribute.explain(model, [text], tokenizer=_TOK, method="integrated_hessians",
                                target=_TARGET[i], budget=48, seed=3, progress=False)
        own = np.asarray(alone.values)[0]
        n = len(text.split())
        assert own.shape[-1] == n and alone.n_evals <= 48
        np.testing.assert_allclose(values[i, :n], own, rtol=0, atol=1e-12)
        rows += alone.n_rows
    assert attr.n_rows == rows  # each text's own rows, budget 48 per text
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_integrated_hessians_without_budget_is_one_game() -> None:
    """Fixed steps do not read the player count: one padded game, completeness within the
    16-step quadrature error of the hand truth."""
    model = BagOfEmbeddings(_TOK.vocab_size, seed=1)
    attr = tribute.explain(model, _BATCH, tokenizer=_TOK, method="integrated_hessians",
                           target=np.array(_TARGET), progress=False)
    assert "by_word_count" not in attr.extra
    assert attr.n_rows == len(_BATCH) * (16 * 8 + 2)
    assert abs(np.asarray(attr.values)[0, 0] - _one_word_gap(model, "bad", _TARGET[0])) < 2e-2


@pytest.mark.parametrize(("method", "budget", "need"), [("sobol", 12, 21), ("integrated_hessians", 5, 10)])
def test_split_budget_refusal_names_the_longest_texts_need(method: str, budget: int, need: int) -> None:
    """A budget too small for the 8-word text was refused only after the shorter groups had run
    (sobol budget=12: 20 model rows), asking for the 4-word group's 13 (sobol needs
    2 * (players + 2) + 1 = 21 for 8 words). The longest group now runs first; the advice works."""
    model = BagOfEmbeddings(_TOK.vocab_size, seed=1)
    seen = [0]
    model.register_forward_pre_hook(lambda _m, args: seen.__setitem__(0, seen[0] + args[0].shape[0]))
    with pytest.raises(tribute.errors.BudgetError, match=f"with 8 players: it needs at least {need} ") as err:
        tribute.explain(model, _BATCH, tokenizer=_TOK, method=method, target=0, budget=budget,
                        progress=False)
    assert f">= {need} " in str(err.value)
    assert seen[0] <= 1  # at most the 8-word text's reference pass
    attr = tribute.explain(model, _BATCH, tokenizer=_TOK, method=method, target=0, budget=need,
                           progress=False)
    assert [g["n_players"] for g in attr.extra["by_word_count"]] == [1, 2, 4, 8]
