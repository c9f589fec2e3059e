"""rev51e: a batch of texts of different word counts, explained group by group, dropped every
StderrWarning of its groups: LIME (``alpha=0``, 3 texts of 9 / 2 / 6 words, budget 8) returned
NaN standard errors for the 9- and 6-word texts and no warning at all (each text alone warns).
The groups' StderrWarnings are now re-issued, naming the group's texts."""

from __future__ import annotations

import warnings

import numpy as np
import torch

import tribute
from tribute.models.text import WordTokenizer

_TOK = WordTokenizer("the film was great dull plot and a very long boring story with no end".split())
_TEXTS = ["the film was great and a very long story", "dull plot", "a boring story with no end"]


class _BagOfWords(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(_TOK.vocab_size, 4)
        self.out = torch.nn.Linear(4, 2)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.emb(ids).mean(1))


def _explain(texts: list[str], budget: int) -> tuple[np.ndarray, list[str]]:
    torch.manual_seed(0)
    model = _BagOfWords().eval()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        attr = tribute.explain(model, texts, tokenizer=_TOK, method="lime", alpha=0.0, removal="mask",
                               target=1, budget=budget, progress=False)
    assert attr.stderr is not None
    return np.asarray(attr.stderr), [str(w.message) for w in rec if issubclass(w.category, tribute.StderrWarning)]


def test_mixed_length_texts_keep_their_groups_stderr_warnings() -> None:
    se, msgs = _explain(_TEXTS, 8)
    assert np.isnan(se[0]).all() and np.isnan(se[2, :6]).all()  # the 9- and 6-word texts
    assert any("lime: standard errors are not estimable" in m and "texts [0] of the batch" in m for m in msgs), msgs
    assert any("texts [2] of the batch" in m for m in msgs), msgs
    assert not any("texts [1] of the batch" in m for m in msgs), msgs  # 2 words: every coalition drawn


def test_mixed_length_texts_with_finite_stderr_do_not_warn() -> None:
    se, msgs = _explain(_TEXTS, 40)  # an additive model, every pair drawn in all four ways
    assert np.isfinite(se[0]).all() and np.isfinite(se[2, :6]).all()
    assert msgs == []
