"""scikit-learn classifiers with boolean classes and models fitted on DataFrames, explained from
numpy arrays (audit small37, stop 37).

Truths by hand: exact Shapley values by enumerating the 2^3 coalitions of predict_proba's
column for the class asked for, with the baseline row put in place of the absent columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _brute import brute_shapley
from sklearn.linear_model import LogisticRegression

import tribute
from tribute.errors import InputError


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    return x, x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 2] > 0


def _shapley(f, x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Exact Shapley values against one baseline row (enumeration, no tribute code)."""
    return brute_shapley(f, x, base[None])


def test_boolean_classes_take_true_and_false_as_class_labels() -> None:
    x, y = _data()
    clf = LogisticRegression().fit(x, y)
    assert clf.classes_.dtype == bool and clf.classes_.tolist() == [False, True]
    base = x[:20].mean(0)
    for label, col in ((True, 1), (False, 0), (np.bool_(True), 1)):
        a = tribute.explain(clf, x[:2], method="exact_shapley", target=label, baseline=base)
        for i in range(2):
            want = _shapley(lambda z, c=col: clf.predict_proba(z)[:, c], x[i], base)
            np.testing.assert_allclose(a.values[i], want, rtol=1e-10, atol=1e-12)
    # one label per sample (y_true of bools) and a list of labels (two targets)
    a = tribute.explain(clf, x[:4], method="exact_shapley", target=y[:4], baseline=base)
    for i in range(4):
        want = _shapley(lambda z, c=int(y[i]): clf.predict_proba(z)[:, c], x[i], base)
        np.testing.assert_allclose(a.values[i], want, rtol=1e-10, atol=1e-12)
    both = tribute.explain(clf, x[:1], method="exact_shapley", target=[False, True],
                           baseline=base)
    np.testing.assert_allclose(np.asarray(both.values)[0, 1], -np.asarray(both.values)[0, 0],
                               rtol=1e-10, atol=1e-12)  # p(False) = 1 - p(True)


def test_a_boolean_label_the_classifier_never_saw_is_refused() -> None:
    x, _ = _data()
    clf = LogisticRegression().fit(x, np.where(x[:, 0] > 0, 1, 2))  # classes_ [1, 2]
    with pytest.raises(InputError, match="boolean"):
        tribute.explain(clf, x[:2], method="exact_shapley", target=True, baseline=x.mean(0))


def test_numpy_inputs_of_a_dataframe_fitted_model_are_named_after_its_columns() -> None:
    x, y = _data()
    frame = pd.DataFrame(x, columns=["age", "bmi", "bp"])
    clf = LogisticRegression().fit(frame, y)
    a = tribute.explain(clf, x[:2], method="exact_shapley", baseline=x[:20].mean(0), target=1)
    assert a.player_names == ["age", "bmi", "bp"]  # were x0, x1, x2
    want = _shapley(lambda z: clf.predict_proba(pd.DataFrame(z, columns=frame.columns))[:, 1],
                    x[0], x[:20].mean(0))
    np.testing.assert_allclose(a.values[0], want, rtol=1e-10, atol=1e-12)
    # names the caller gives win
    b = tribute.explain(clf, x[:2], method="exact_shapley", baseline=x[:20].mean(0),
                        feature_names=["a", "b", "c"])
    assert b.player_names == ["a", "b", "c"]


def test_numpy_inputs_with_another_column_count_are_refused_naming_both() -> None:
    x, y = _data()
    clf = LogisticRegression().fit(pd.DataFrame(x, columns=["age", "bmi", "bp"]), y)
    with pytest.raises(InputError, match=r"inputs have 2 columns.*3 named columns.*'age'"):
        tribute.explain(clf, x[:2, :2], method="exact_shapley", baseline=x[:20, :2].mean(0))
