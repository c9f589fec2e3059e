"""small48b: string classes that look like integers; float32 log-odds of probability 1.0.

1. ``classes_ = ['1', '10', '2']`` (labels sorted as strings): ``target=1`` is column 1, class
   '10' (integers stay column indices with string classes_, as documented), silently. It now
   warns, naming both readings and the fix; the values are unchanged.
2. A float32 probability model with ``output="logit"``: ``clamp(1e-12, 1 - 1e-12)`` is
   ``clamp(1e-12, 1.0)`` in float32, so p = 1.0 gave ``log1p(-1) = -inf`` and a
   ModelOutputError blaming the model and the baseline. The log-odds is now computed in
   float64 and rounded back: the truth is numpy's float64 clip + log-odds of the model's own
   float32 probabilities, enumerated.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.targets import label_log_probs, transform_output

_EPS = 1e-12


def _exact(v: Callable[[tuple[int, ...]], float], n: int) -> list[float]:
    out = []
    for i in range(n):
        rest = [j for j in range(n) if j != i]
        out.append(sum(math.factorial(r) * math.factorial(n - 1 - r) / math.factorial(n)
                       * (v(tuple(sorted((*s, i)))) - v(s))
                       for r in range(n) for s in itertools.combinations(rest, r)))
    return out


def _classifier(labels: list[Any]) -> Any:
    lm = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 3))
    which = np.repeat([0, 1, 2], 30)
    x[:, 0] += (which == 0) * 3
    x[:, 1] += (which == 1) * 3
    y = np.array([labels[k] for k in which], dtype=object if isinstance(labels[0], str) else None)
    return lm.LogisticRegression().fit(x, y), x


def _explain(clf: Any, x: np.ndarray, target: Any) -> tuple[np.ndarray, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = tribute.explain(clf, x[:2], method="exact_shapley", target=target, output="prob",
                            baseline=x.mean(0, keepdims=True), progress=False)
    return np.asarray(a.values), [str(w.message) for w in caught if "classes_" in str(w.message)]


def _truth(clf: Any, x: np.ndarray, column: int) -> np.ndarray:
    base = x.mean(0)

    def row(r: int) -> list[float]:
        def v(s: tuple[int, ...]) -> float:
            z = base.copy()
            z[list(s)] = x[r, list(s)]
            return float(clf.predict_proba(z[None])[0, column])
        return _exact(v, 3)
    return np.array([row(0), row(1)])


def test_integer_target_on_integer_like_string_classes_warns() -> None:
    clf, x = _classifier(["1", "10", "2"])
    assert list(clf.classes_) == ["1", "10", "2"]
    values, msgs = _explain(clf, x, 1)
    np.testing.assert_allclose(values, _truth(clf, x, 1), atol=1e-10)  # column 1: class '10'
    assert len(msgs) == 1
    msg = msgs[0]
    assert "column 1, class '10'" in msg and "the label '1' is column 0" in msg
    assert "target='1'" in msg and "target='10'" in msg
    values_label, msgs_label = _explain(clf, x, "1")  # the label reading: column 0
    np.testing.assert_allclose(values_label, _truth(clf, x, 0), atol=1e-10)
    assert msgs_label == []
    assert np.abs(values - values_label).max() > 0.1  # the two readings differ


@pytest.mark.parametrize("target", [0, [1, 2], np.array([1, 1]), torch.tensor([0, 2]), 1.0, np.int64(1)])
def test_other_spellings_of_an_integer_target_warn(target: Any) -> None:
    clf, x = _classifier(["1", "10", "2"])
    _, msgs = _explain(clf, x, target)
    assert len(msgs) == 1 and "are strings of integers" in msgs[0]


@pytest.mark.parametrize(("labels", "target"), [
    (["0", "1", "2"], 1), (["0", "1", "2"], [0, 1, 2]), (["a", "b", "c"], 1), (["1", "10", "2"], "10"),
    (["1", "10", "2"], ["1", "2"]), (["1", "10", "2"], 2), ([1, 10, 2], 10), ([0, 1, 2], 2),
    (["x1", "10", "2"], 1), (["-1", "0", "1"], "0"), (["1", "10", "2"], None),
    (["1", "10", "2"], "predicted"), (["1", "10", "2"], lambda p: p[:, 1]),
])
def test_no_warning_where_the_readings_agree_or_cannot_be_confused(labels: list[Any], target: Any) -> None:
    clf, x = _classifier(labels)
    _, msgs = _explain(clf, x, target)
    assert msgs == []


class _Saturated(torch.nn.Module):
    """A float32 probability model: sigmoid(40 * sum(x)), 1.0 exactly for sum(x) >= 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(40 * x.sum(-1, keepdim=True))


@pytest.mark.parametrize("method", ["exact_shapley", "kernel_shap"])
def test_float32_probability_one_has_finite_log_odds(method: str) -> None:
    x = torch.tensor([[1.0, 0.5], [0.3, -0.1]])

    def v_of(r: int) -> Callable[[tuple[int, ...]], float]:
        def v(s: tuple[int, ...]) -> float:
            z = np.float32(40) * np.float32(sum(float(x[r, i]) for i in s))
            p = float(torch.sigmoid(torch.tensor([z], dtype=torch.float32))[0])  # the model's own
            p = min(max(p, _EPS), 1 - _EPS)
            return math.log(p) - math.log1p(-p)
        return v
    truth = np.array([_exact(v_of(r), 2) for r in range(2)])
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        a = tribute.explain(_Saturated(), x, method=method, baseline=torch.zeros(1, 2), target=0,
                            output="logit", model_output="probability", progress=False, budget=64)
    np.testing.assert_allclose(np.asarray(a.values), truth, rtol=1e-6, atol=1e-5)
    assert abs(truth[0].sum() - math.log(1 - _EPS) + math.log1p(-(1 - _EPS))) < 1e-9  # 27.63


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_log_odds_and_log_probs_finite_in_every_float_dtype(dtype: torch.dtype) -> None:
    p = torch.tensor([0.0, 1e-30, 1e-7, 0.25, 0.5, 0.999, 1.0]).to(dtype)
    q = np.clip(p.double().numpy(), _EPS, 1 - _EPS)
    logit = transform_output(p[:, None], "logit", "probability")[:, 0]
    assert logit.dtype == dtype
    tol = float(torch.finfo(dtype).eps) * 28
    np.testing.assert_allclose(logit.double().numpy(), np.log(q) - np.log1p(-q), rtol=0, atol=tol)
    logp = transform_output(p[:, None], "log_prob", "probability")[:, 0]
    np.testing.assert_allclose(logp.double().numpy(), np.log(q), rtol=0, atol=tol)
    kl = label_log_probs(p[:, None], "probability")
    two = np.clip(np.stack([1 - p.double().numpy(), p.double().numpy()], -1), _EPS, 1.0)
    np.testing.assert_allclose(kl.double().numpy(), np.log(two), rtol=0, atol=tol)


def test_float64_and_float32_log_probs_unchanged_bytes() -> None:
    """float64 (every output) and float32 log_prob were right: the same operations as before."""
    g = torch.Generator().manual_seed(0)
    p64 = torch.cat([torch.rand(1000, generator=g, dtype=torch.float64), torch.tensor([0.0, 1.0])])
    q = p64.clamp(_EPS, 1 - _EPS)
    assert torch.equal(transform_output(p64[:, None], "logit", "probability")[:, 0],
                       torch.log(q) - torch.log1p(-q))
    p32 = p64.float()
    assert torch.equal(transform_output(p32[:, None], "log_prob", "probability")[:, 0],
                       torch.log(p32.clamp(_EPS, 1 - _EPS)))
