"""rev50x: a sampling method whose budget covers every coalition of a shorter text (exact
values alone) explains texts of mixed word counts one group per word count, so every text gets
what it gets alone; a budget below 2^n for every text keeps one padded game."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _text_models import BagOfEmbeddings

import tribute
from tribute.errors import BudgetError, InputError
from tribute.methods.base import get_method
from tribute.models.text import WordTokenizer

_VOCAB = "the cat sat on mat a quick brown fox jumps over lazy dog and ran far".split()
_TOK = WordTokenizer(_VOCAB, bos=True)
_W = "the cat sat on the mat and ran far over dog".split()
_MIX = [" ".join(_W[:9]), " ".join(_W[:3]), " ".join(_W[:5])]  # 9, 3 and 5 words


class _Counted(BagOfEmbeddings):  # type: ignore[misc]  # a tests-dir helper: Any to mypy
    rows = 0

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        _Counted.rows += int(ids.shape[0])
        return super().forward(ids, attention_mask)


def _explain(model: _Counted, texts: list[str], method: str, budget: int | None) -> tuple[tribute.Attribution, int]:
    _Counted.rows = 0
    attr = tribute.explain(model, texts, tokenizer=_TOK, method=method, target=1, budget=budget,
                           removal="pad", progress=False)
    return attr, _Counted.rows


@pytest.mark.parametrize("method", ["permutation_shapley", "kernel_shap", "banzhaf",
                                    pytest.param("gp_shapley", marks=pytest.mark.slow)])
def test_a_short_text_in_a_mixed_batch_gets_its_exact_values_as_alone(method: str) -> None:
    # measured (budget=300): the 3- and 5-word texts were sampled over the 9-word text's
    # players: permutation_shapley 558 rows, 7.9e-03 from the 5-word text alone (exact, 32
    # rows); kernel_shap 900 rows, 2.1e-03; banzhaf 678 rows, 0.12; gp_shapley 900 rows, 1.2e-10.
    # budget=40 here (covers 2^3 and 2^5, not 2^9; a 9-player GP fit on 300 rows takes seconds)
    model = _Counted(_TOK.vocab_size, out=3)
    attr, rows = _explain(model, _MIX, method, 40)
    alone = [_explain(model, [t], method, 40) for t in _MIX]
    vals = attr.flat()
    for i, (a, _) in enumerate(alone):
        n = a.flat().shape[-1]
        assert vals[i, :, :n].tobytes() == a.flat()[0].tobytes()
        assert np.isnan(vals[i, :, n:]).all()
    assert rows == attr.n_rows == sum(r for _, r in alone)
    assert attr.n_evals == max(a.n_evals for a, _ in alone)
    exact = [_explain(model, [t], "exact_shapley", None)[0].flat()[0] for t in _MIX[1:]]
    if method != "banzhaf":  # the short texts' values are their exact Shapley values
        for i, e in enumerate(exact, start=1):
            np.testing.assert_allclose(vals[i, :, : e.shape[-1]], e, atol=1e-12)


def test_a_budget_below_every_texts_table_keeps_one_padded_game() -> None:
    # 9, 6 and 7 words with budget=50 < 2^6: sampled for every text, as before (3 x 50 rows)
    model = _Counted(_TOK.vocab_size, out=3)
    texts = [" ".join(_W[:9]), " ".join(_W[:6]), " ".join(_W[:7])]
    attr, rows = _explain(model, texts, "permutation_shapley", 50)
    assert rows == attr.n_rows == 150
    assert "by_word_count" not in attr.extra


def test_the_longest_texts_budget_refusal_comes_first() -> None:
    # budget=16 covers the 3-word text's 2^3 (split) but not the 9-word text's minimum of 18:
    # refused on the longest group, after its reference pass only (3 rows before: one game)
    model = _Counted(_TOK.vocab_size, out=3)
    with pytest.raises(BudgetError, match=r"budget=16 is too small.*9 players.*texts \[0\]"):
        _explain(model, _MIX, "permutation_shapley", 16)
    assert _Counted.rows == 1


@pytest.mark.parametrize("method", ["permutation_shapley", "kernel_shap", "banzhaf",
                                    pytest.param("gp_shapley", marks=pytest.mark.slow)])
@pytest.mark.filterwarnings("ignore::tribute.errors.StderrWarning")
def test_exact_at_agrees_with_the_path_attribute_takes(method: str) -> None:
    # the split's rule is the path attribute() takes: 2^n evaluations and standard errors 0
    model = _Counted(_TOK.vocab_size, out=3)
    est = get_method(method)()
    for text, budget in ((_MIX[1], 8), (_MIX[1], 7), (_MIX[2], None), (_MIX[2], 31)):
        a, _ = _explain(model, [text], method, budget)
        n, se = len(text.split()), a.flat_stderr()
        assert se is not None
        assert est.exact_at(n, budget) == (a.n_evals == 2**n and float(np.abs(se).max()) == 0.0)


@pytest.mark.parametrize("texts", [_MIX, _MIX[:1]])
def test_shapley_error_on_texts_does_not_suggest_groups(texts: list[str]) -> None:
    # measured: "Group players (groups=...) or raise max_players." for a 9-word text, but texts
    # refuse groups= ("argument(s) ['groups'] do not apply to texts")
    model = _Counted(_TOK.vocab_size, out=3)
    attr = tribute.explain(model, texts, tokenizer=_TOK, method="feature_ablation", target=1, progress=False)
    with pytest.raises(InputError, match=r"2\^9 coalitions.*Use coarser players \(players='sentences'") as err:
        tribute.evaluate(model, texts, attr, metric="shapley_error", tokenizer=_TOK, progress=False, max_players=5)
    assert "groups=" not in str(err.value)
