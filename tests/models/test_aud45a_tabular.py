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
import math
import warnings
from typing import Any

import numpy as np
import pytest

import tribute

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
    cols = list(base.columns)
    n = len(cols)
    val = {}
    for r in range(n + 1):
        for s in itertools.combinations(range(n), r):
            rows = base.copy()
            for j in s:
                rows[cols[j]] = pd.Series([row[cols[j]]] * len(rows), index=rows.index,
                                          dtype=base[cols[j]].dtype)
            val[s] = float(np.mean(f(rows)))
    phi = np.zeros(n)
    for i in range(n):
        for s, v in val.items():
            if i not in s:
                w = math.factorial(len(s)) * math.factorial(n - len(s) - 1) / math.factorial(n)
                phi[i] += w * (val[tuple(sorted((*s, i)))] - v)
    return phi


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
