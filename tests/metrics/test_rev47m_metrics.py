"""Review rev47m (stop 47) of aud47m's target checks: legitimate calls next to the new refusals
keep scoring. Guards (they pass before and after aud47m); truths are computed here without
tribute's metric code: the classifier's own ``predict_proba`` / ``decision_function`` with the
deletion curve written out, and the limit of a re-explanation at a vanishing radius."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.metrics import deletion, evaluate
from tribute_testing import tanh_net_with_numpy


def _classifier(kind: str) -> tuple[Any, np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 4))
    if kind == "svc_3_7":  # binary, one decision column, labels that are not 0/1
        y = np.array([3, 7])[(x[:, 0] > 0).astype(int)]
        return LinearSVC().fit(x, y), x[:5], y[:5]
    labels = {"labels_1_2_3": np.array([1, 2, 3]), "strings": np.array(["cat", "dog", "eel"])}[kind]
    y = labels[np.argmax(x[:, :3], 1)]
    return LogisticRegression().fit(x, y), x[:5], y[:5]


def _hand_deletion(clf: Any, x: np.ndarray, phi: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Deletion area of each row's own class: remove the top-k credits to 0, trapezoid over k/n."""
    def value(rows: np.ndarray, i: int) -> float:
        if hasattr(clf, "predict_proba"):
            col = int(np.flatnonzero(clf.classes_ == y[i])[0])
            return float(clf.predict_proba(rows)[0, col])
        s = float(clf.decision_function(rows)[0])  # binary: class 1's margin, class 0's is -s
        return s if y[i] == clf.classes_[1] else -s
    b, n = phi.shape
    out = np.empty(b)
    for i in range(b):
        order = np.argsort(-phi[i], kind="stable")
        ys = []
        for k in range(n + 1):
            row = x[i].copy()
            row[order[:k]] = 0.0
            ys.append(value(row[None], i))
        out[i] = np.trapezoid(ys, np.arange(n + 1) / n)
    return out


@pytest.mark.parametrize("kind", ["labels_1_2_3", "strings", "svc_3_7"])
@pytest.mark.parametrize("spelling", ["labels", "label_column", "none", "direct_game"])
def test_label_targets_of_sklearn_classifiers_score_the_hand_deletion(kind: str, spelling: str) -> None:
    clf, x, y = _classifier(kind)
    attr = tribute.explain(clf, x, method="exact_shapley", target=y, baseline=0.0)
    want = _hand_deletion(clf, x, attr.flat()[:, 0, :], y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no OutputMismatchWarning either
        if spelling == "direct_game":
            game = tribute.build_game(clf, x, target=y, baseline=0.0)
            got = deletion(game, attr, steps=4).scores
        else:
            given = {"labels": y, "label_column": y[:, None], "none": None}[spelling]
            got = evaluate(clf, x, attr, "deletion", target=given, baseline=0.0, steps=4).scores
    np.testing.assert_allclose(np.asarray(got).reshape(-1), want, atol=1e-12)


@pytest.mark.parametrize("case", ["batch_of_one_column", "per_sample_pairs", "predicted"])
@pytest.mark.parametrize("metric", ["max_sensitivity", "avg_sensitivity"])
def test_forwarding_callables_of_the_asked_classes_vanish_at_a_tiny_radius(case: str, metric: str) -> None:
    """A callable that passes target= on re-explains the credits' own classes: at a radius of
    1e-9 the relative change of input x gradient is ~1e-9 (another class's credits differ by
    O(1)), for a (1, 1) target column, (b, 2) per-sample pairs and predicted classes."""
    net, _w = tanh_net_with_numpy(6, 5, 3, seed=11)
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(4, 6)))
    target: Any = {"batch_of_one_column": np.array([[2]]),
                   "per_sample_pairs": np.array([[0, 1], [2, 0], [1, 2], [0, 2]]),
                   "predicted": "predicted"}[case]
    if case == "batch_of_one_column":
        x = x[:1]
    attr = tribute.explain(net, x, method="input_x_gradient", target=target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shared draws' StderrWarning
        got = evaluate(net, x, attr, metric, radius=1e-9, n_samples=3,
                       explain=lambda xx, **kw: tribute.explain(net, xx, method="input_x_gradient",
                                                                **kw)).scores
    assert np.all(np.isfinite(got)) and float(np.max(np.abs(got))) < 1e-6
