"""aud45a: the predicted class of a classifier explained on a DataFrame with text columns.

For a classifier whose ``predict`` can differ from the arg-max of its ``predict_proba``
(a fixed or tuned decision threshold, ``SVC(probability=True)``), ``target=None`` and
``target="predicted"`` explain the class ``predict`` returns. On a DataFrame with string
columns the rows tribute composes hold category codes, which the model reads through the
codec's decoder; ``predict`` was called on the codes instead, failed ("Specifying the columns
using strings is only supported for dataframes"), and the arg-max class was explained, with a
warning blaming the classifier: the other class, every credit of the wrong sign.

Truths are computed outside tribute: Shapley values by enumerating the 2^3 coalitions of the
pipeline's own ``predict_proba`` column of the class its own ``predict`` returns, the baseline
row's values put in the absent columns of a copy of the DataFrame.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
import pytest

import tribute
from tribute_testing import shapley_from_table

pd = pytest.importorskip("pandas")
sk_model_selection = pytest.importorskip("sklearn.model_selection")
if not hasattr(sk_model_selection, "FixedThresholdClassifier"):  # scikit-learn < 1.5
    pytest.skip("FixedThresholdClassifier needs scikit-learn >= 1.5", allow_module_level=True)


def _frame() -> tuple[Any, np.ndarray]:
    rng = np.random.default_rng(3)
    n = 300
    df = pd.DataFrame({"age": rng.normal(40, 10, n), "city": rng.choice(["A", "B", "C"], n),
                       "inc": rng.normal(size=n)})
    s = (df.age - 40) / 10 + (df.city == "B") * 2.0 - (df.city == "C") * 1.0 + df.inc \
        + 0.3 * rng.normal(size=n)
    return df, np.where(s > 0.3, "pos", "neg")


def _model(df: Any, y: np.ndarray) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    ct = ColumnTransformer([("n", StandardScaler(), ["age", "inc"]),
                            ("c", OneHotEncoder(handle_unknown="ignore"), ["city"])])
    pipe = make_pipeline(ct, LogisticRegression())
    return sk_model_selection.FixedThresholdClassifier(pipe, threshold=0.8).fit(df, y)


def _brute(f: Any, row: Any, base: Any) -> np.ndarray:
    """Exact Shapley values of ``v(S) = mean f(row_S, base_rest)`` on DataFrame rows (each
    column keeps its dtype), by enumerating every coalition (no tribute code)."""
    cols = list(base.columns)
    n = len(cols)
    val: dict[tuple[int, ...], np.ndarray] = {}
    for bits in itertools.product((0, 1), repeat=n):
        rows = base.copy()
        for j in np.flatnonzero(bits):
            rows[cols[j]] = pd.Series([row[cols[j]]] * len(rows), index=rows.index,
                                      dtype=base[cols[j]].dtype)
        val[bits] = np.asarray(np.mean(f(rows)))
    return shapley_from_table(val, n)


@pytest.mark.parametrize("target", [None, "predicted"])
def test_predicted_class_of_a_thresholded_pipeline_on_a_frame_with_text_columns(
        target: Any) -> None:
    df, y = _frame()
    model = _model(df, y)
    classes = list(model.classes_)
    own = np.array([classes.index(p) for p in model.predict(df)])
    differ = np.flatnonzero(own != model.predict_proba(df).argmax(1))[:3]
    assert differ.size == 3  # rows whose predicted class is not the arg-max
    rows, base = df.iloc[differ], df.iloc[[1]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fallback warned "predict failed"
        attr = tribute.explain(model, rows, method="exact_shapley", baseline=base,
                               target=target)
    values = np.asarray(attr.values)
    for i in range(3):
        k = int(own[differ[i]])
        truth = _brute(lambda r, k=k: model.predict_proba(r)[:, k], rows.iloc[i], base)
        np.testing.assert_allclose(values[i], truth, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(attr.targets).ravel(), own[differ])


# --------------------------------------------------------------------------------------------
# A declared model_output that the estimator method tribute calls contradicts.
#
# tribute calls a classifier's predict_proba when it has one; declaring model_output="logit"
# made it read those probabilities as logits and take a softmax of them (the double conversion
# of the first release): LogisticRegression, output="prob", credit 0.288 where the model's
# probability moved by 0.612, with no error. Declaring "probability" for a decision_function
# (SVC) took logs of clipped scores. Both are now refused by the outputs themselves.

def _binary() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    return x, (x[:, 0] + x[:, 1] > 0).astype(int)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize("output", ["prob", "log_prob", "logit"])
def test_probabilities_declared_as_logits_are_refused(output: str) -> None:
    from sklearn.linear_model import LogisticRegression

    from tribute.errors import ModelOutputError

    x, y = _binary()
    model = LogisticRegression().fit(x, y)
    rows = model.predict_proba(x[:2])
    assert np.allclose(rows.sum(1), 1.0)  # what predict_proba returns: probabilities
    with pytest.raises(ModelOutputError, match="predict_proba"):
        tribute.explain(model, x[:2], method="exact_shapley", baseline=x[9], output=output,
                        target=1, model_output="logit")


def test_scores_declared_as_probabilities_are_refused() -> None:
    from sklearn.svm import SVC

    from tribute.errors import ModelOutputError

    x, y = _binary()
    model = SVC().fit(x, y)
    scores = model.decision_function(x)
    assert scores.min() < 0.0 < 1.0 < scores.max()
    with pytest.raises(ModelOutputError, match="decision_function"):
        tribute.explain(model, x[:2], method="exact_shapley", baseline=x[9], output="prob",
                        target=1, model_output="probability")


def test_a_predict_proba_returning_scores_may_still_be_declared_logit() -> None:
    """The refusal reads the outputs: an estimator whose predict_proba returns scores (rows
    not summing to 1) declared ``"logit"`` is explained as declared (softmax of its scores,
    enumerated by hand)."""
    from sklearn.linear_model import LogisticRegression

    x, _ = _binary()
    y3 = np.digitize(x[:, 0], [-0.5, 0.5])
    inner = LogisticRegression().fit(x, y3)

    class ScoreEstimator:
        _estimator_type = "classifier"
        classes_ = inner.classes_

        def fit(self, *args: Any) -> ScoreEstimator:
            return self

        def predict_proba(self, rows: np.ndarray) -> np.ndarray:
            return np.asarray(inner.decision_function(rows))

    model = ScoreEstimator()
    attr = tribute.explain(model, x[:2], method="exact_shapley", baseline=x[9], output="prob",
                           target=0, model_output="logit")
    names = ["a", "b", "c"]
    for i in range(2):
        row = pd.Series(x[i], index=names)
        base = pd.DataFrame(x[9:10], columns=names)
        truth = _brute(lambda r: _softmax(model.predict_proba(r.to_numpy()))[:, 0], row, base)
        np.testing.assert_allclose(np.asarray(attr.values)[i], truth, atol=1e-12)
