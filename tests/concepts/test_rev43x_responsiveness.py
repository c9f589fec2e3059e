"""Review rev43x of aud43x's refusal of one raw output in ``feature_responsiveness``.

aud43x refused every one-column ``raw`` output (a regressor's ``predict``). That also refused
0/1 decisions that were read right before: a rule (an object with only ``predict``) or a
classifier whose ``predict`` gives labels 0/1 (``model_output='raw'``, which the numpy adapter's
own message suggests for such a classifier). And a classifier with only ``predict`` on labels
3/7, declared ``model_output='logit'`` (the fix aud43x's message named), was read as
``label > 0``: class 7 for every row, every score 0 (truth 0.5 / 0.5), silently.

Truth, closed form: the decision is ``x0 > 0``; x0 at -1 (or 1) with actions uniform on
[-3, 3]: half of them cross 0; x1 is never read (score 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tribute.errors import InputError
from tribute.methods.responsiveness import Actionability, feature_responsiveness

pytest.importorskip("sklearn")
from sklearn.base import BaseEstimator, ClassifierMixin

ACT = Actionability(bounds={"x0": (-3.0, 3.0), "x1": (-3.0, 3.0)})
X = np.array([[-1.0, 0.5], [1.0, -0.5]])


class Rule:
    """A decision rule with only ``predict`` (0/1)."""

    def predict(self, rows: Any) -> np.ndarray:
        return (np.asarray(rows)[:, 0] > 0).astype(int)


class LabelsOnly(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier with only ``predict`` (x0 > 0: the second label)."""

    def __init__(self, labels: tuple[int, int] = (0, 1)) -> None:
        self.labels = labels

    def fit(self, rows: Any, y: Any) -> LabelsOnly:
        self.classes_ = np.array(self.labels)
        return self

    def predict(self, rows: Any) -> np.ndarray:
        return np.where(np.asarray(rows)[:, 0] > 0, self.labels[1], self.labels[0])


def _closed_form(res: Any) -> None:
    truth = np.array([[0.5, 0.0], [0.5, 0.0]])
    assert np.all(np.abs(res.scores - truth) <= 4 * res.stderr + 1e-12), (res.scores, res.stderr)
    assert np.asarray(res.current).tolist() == [0, 1]


@pytest.mark.parametrize("case", ["rule", "labels01_raw"])
def test_a_zero_one_decision_is_read_not_refused(case: str) -> None:
    if case == "rule":
        res = feature_responsiveness(Rule(), X, ACT, n_samples=400, seed=1)
    else:
        res = feature_responsiveness(LabelsOnly((0, 1)).fit(X, [0, 1]), X, ACT, n_samples=400, seed=1,
                                     model_output="raw")
    _closed_form(res)


@pytest.mark.parametrize("model_output", ["raw", "logit", "probability"])
def test_labels_3_7_of_a_predict_only_classifier_are_refused(model_output: str) -> None:
    clf = LabelsOnly((3, 7)).fit(X, [3, 7])
    with pytest.raises(InputError, match=r"only predict.*\(3, 7\).*== label"):
        feature_responsiveness(clf, X, ACT, n_samples=50, model_output=model_output)
    # the fix the message names
    res = feature_responsiveness(lambda rows: (clf.predict(rows) == 7).astype(float), X, ACT,
                                 n_samples=400, seed=1, model_output="probability")
    _closed_form(res)
