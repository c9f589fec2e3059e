"""small48a: a metric whose score is undefined on every sample said nothing (aud47m).

On a model whose output never changes, deletion / insertion (normalised), faithfulness
correlation, linear_score, sparseness, complexity, max / avg sensitivity and shapley_error
are NaN on every sample (each docstring says so: a zero output change or all-zero credits),
and mean and stderr were NaN with n = 0 without a warning. Now one
:class:`tribute.UndefinedScoreWarning` per call; none where some sample has a score.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import numpy as np
import pytest
import torch

import tribute

_base = importlib.import_module("tribute.metrics.base")

_UNDEFINED = ["deletion", "insertion", "faithfulness_correlation", "linear_score", "sparseness", "complexity",
              "max_sensitivity", "avg_sensitivity", "shapley_error"]


class _Const(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) * 0 + torch.tensor([1.0, 2.0, 3.0], dtype=x.dtype)


def _kw(metric: str) -> dict[str, Any]:
    return {"normalise": True} if metric in ("deletion", "insertion") else {}


def _undefined_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, tribute.UndefinedScoreWarning)]


@pytest.mark.parametrize("metric", _UNDEFINED)
def test_all_undefined_scores_warn_once(metric: str) -> None:
    torch.manual_seed(0)
    net = _Const().double()
    x = torch.randn(4, 6, dtype=torch.float64)
    attr = tribute.explain(net, x, method="feature_ablation", target=1)
    assert np.all(np.asarray(attr.values) == 0.0)  # the output never changes: every credit 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = tribute.evaluate(net, x, attr, metric=metric, **_kw(metric))
    assert res.n == 0 and np.isnan(res.mean) and np.isnan(np.asarray(res.scores, dtype=float)).all()
    got = _undefined_warnings(caught)
    assert len(got) == 1 and f"metric {metric!r}" in got[0] and "4 sample(s)" in got[0]


def test_defined_or_partly_defined_scores_do_not_warn() -> None:
    """Legitimate neighbours: a linear model (every score defined) on the same metrics, and
    one sample equal to its baseline (normalised deletion undefined there only, n = 3)."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    x = torch.randn(4, 6, dtype=torch.float64)
    calls = 0
    for method in ("feature_ablation", "saliency"):
        attr = tribute.explain(net, x, method=method, target=1)
        for metric in _UNDEFINED:
            if metric == "shapley_error" and method == "saliency":
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = tribute.evaluate(net, x, attr, metric=metric, **_kw(metric))
            assert res.n > 0 and not _undefined_warnings(caught), (method, metric)
            calls += 1
    x0 = x.clone()
    x0[2] = 0.0  # the baseline: its output change is 0, normalised deletion undefined there
    attr = tribute.explain(net, x0, method="feature_ablation", target=1, baseline=0.0)
    for metric in ("deletion", "insertion"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = tribute.evaluate(net, x0, attr, metric=metric, normalise=True, baseline=0.0)
        assert res.n == 3 and res.extra["n_undefined"] == 1 and not _undefined_warnings(caught)
        calls += 1
    assert calls == 19


def test_reported_scope_is_quiet_and_restores() -> None:
    torch.manual_seed(0)
    net = _Const().double()
    x = torch.randn(3, 6, dtype=torch.float64)
    attr = tribute.explain(net, x, method="feature_ablation", target=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _base.undefined_reported():
            tribute.evaluate(net, x, attr, metric="sparseness")
        assert not _undefined_warnings(caught)
        tribute.evaluate(net, x, attr, metric="sparseness")
        assert len(_undefined_warnings(caught)) == 1


def test_texts_of_several_word_counts_warn_once_for_the_batch() -> None:
    """The text-group path scores each word count apart and merges: one warning for the batch
    (naming its 4 texts), not one per group."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "text"))
    from _text_models import BagOfEmbeddings

    from tribute.models.text import WordTokenizer

    tok = WordTokenizer(["the", "cat", "sat", "on", "mat", "a", "dog", "barked"], bos=True)
    inner = BagOfEmbeddings(tok.vocab_size, out=3)

    class ConstText(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.inner(ids) * 0.0 + 1.0

    model = ConstText()
    texts = ["the cat sat on the mat", "a dog barked", "the dog sat", "cat"]
    kw: dict[str, Any] = {"tokenizer": tok, "removal": "unk"}
    attr = tribute.explain(model, texts, method="feature_ablation", target=1, progress=False, **kw)
    for metric in ("sparseness", "deletion"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = tribute.evaluate(model, texts, attr, metric=metric, **kw, **_kw(metric))
        assert res.n == 0 and len(res.extra["by_word_count"]) == 3
        got = _undefined_warnings(caught)
        assert len(got) == 1 and "4 sample(s)" in got[0], got
