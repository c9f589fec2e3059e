"""aud50t: scikit-learn adapters.

4. A soft ``VotingClassifier`` (whose predict is the arg-max of its averaged predict_proba)
   was read through its own ``predict`` for the default target: one more pass of the samples.
5. A multi-label classifier (``MLPClassifier``, ``RidgeClassifier``, ``OneVsRestClassifier``,
   ``ClassifierChain`` fitted on an indicator matrix) with ``target=None`` explained the
   arg-max over its labels' columns, one label per sample, silently.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import tribute

pytest.importorskip("sklearn")

from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.ensemble import RandomForestClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.multiclass import OneVsRestClassifier
from sklearn.multioutput import ClassifierChain
from sklearn.neural_network import MLPClassifier


def test_a_soft_voting_classifier_is_not_asked_for_its_predict() -> None:
    x, y = make_classification(120, 5, n_informative=3, n_classes=3, random_state=0)
    vc = VotingClassifier([("lr", LogisticRegression(max_iter=500)),
                           ("rf", RandomForestClassifier(5, random_state=0))], voting="soft").fit(x, y)
    rows = {"predict": 0}
    predict = vc.predict

    def counted(a: Any) -> Any:
        rows["predict"] += len(a)
        return predict(a)

    vc.predict = counted
    attr = tribute.explain(vc, x[:4], method="feature_ablation", baseline=x.mean(0))
    assert rows["predict"] == 0
    probs = vc.predict_proba(x[:4])
    assert attr.targets is not None
    assert np.asarray(attr.targets).tolist() == probs.argmax(1).tolist() == \
        np.searchsorted(vc.classes_, predict(x[:4])).tolist()


@pytest.mark.parametrize("name", ["mlp", "ridge", "ovr", "chain"])
def test_a_multilabel_classifier_needs_a_target(name: str) -> None:
    x, y = make_multilabel_classification(80, 4, n_classes=3, random_state=0)
    est = {"mlp": MLPClassifier((4,), max_iter=50, random_state=0), "ridge": RidgeClassifier(),
           "ovr": OneVsRestClassifier(LogisticRegression(max_iter=300)),
           "chain": ClassifierChain(LogisticRegression(max_iter=300))}[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the small MLP does not converge)
        est.fit(x.astype(float), y)
    for target in (None, "predicted"):
        with pytest.raises(tribute.InputError, match=r"multi-label classifier.*target=k"):
            tribute.explain(est, x[:2], method="feature_ablation", baseline=x.mean(0), target=target)
    attr = tribute.explain(est, x[:2], method="feature_ablation", baseline=x.mean(0), target=1,
                           output="raw")
    score = est.predict_proba if hasattr(est, "predict_proba") else est.decision_function
    xs = x[:2].astype(float)
    truth = np.zeros((2, 4))
    for i in range(4):  # occlusion: the label's score at x minus with feature i at the baseline
        z = xs.copy()
        z[:, i] = x.mean(0)[i]
        truth[:, i] = np.asarray(score(xs))[:, 1] - np.asarray(score(z))[:, 1]
    np.testing.assert_allclose(attr.values, truth, atol=1e-12)


def test_a_single_label_classifier_keeps_its_default_target() -> None:
    x, y = make_classification(80, 4, n_informative=3, n_redundant=0, n_classes=3, random_state=0)
    for est in (MLPClassifier((4,), max_iter=30, random_state=0), RidgeClassifier(),
                OneVsRestClassifier(LogisticRegression(max_iter=300))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(x, y)
        attr = tribute.explain(est, x[:2], method="feature_ablation", baseline=x.mean(0))
        assert attr.values.shape == (2, 4)
