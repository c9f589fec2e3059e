"""aud49a: a DataFrame of numbers only reached its estimator as float64 columns.

The integer column ``202`` was handed over as ``202.0`` and the bool ``True`` as ``1.0``; a
pipeline that reads such a column as text (``astype(str)`` before a ``OneHotEncoder``) then met
an unknown category and every credit of that column was 0 (brute-force truth -2.0). A table
with a text column was decoded into the user's dtypes already (``CategoricalCodec.decode``).
Truths: exact Shapley values enumerated over DataFrame copies of the rows that keep the user's
dtypes, scored by the pipeline's own ``predict`` / ``predict_proba``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tribute

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder  # noqa: E402


def _as_text(d: Any) -> Any:
    return d.astype(str)


def _frame(int_dtype: str, bool_dtype: str, n: int = 120) -> Any:
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "zip": pd.Series(rng.choice([101, 202, 303], n)).astype(int_dtype),
        "flag": pd.Series(rng.random(n) > 0.5).astype(bool_dtype),
        "x": rng.normal(size=n),
    })


def _text_pipeline(df: Any, classifier: bool) -> Any:
    y = (df["zip"].astype(int) == 202) * 2.0 + df["flag"].astype(float) * 1.5 + df["x"]
    ct = ColumnTransformer(
        [("oh", make_pipeline(FunctionTransformer(_as_text),
                              OneHotEncoder(handle_unknown="ignore")), ["zip", "flag"])],
        remainder="passthrough")
    final = LogisticRegression() if classifier else LinearRegression()
    return make_pipeline(ct, final).fit(df, y > 1.5 if classifier else y)


def _shapley(f: Callable[[Any], Any], x: Any, rows: Any) -> np.ndarray:
    """Exact Shapley values of one row ``x`` (1-row DataFrame) against background ``rows``."""
    n = x.shape[1]
    cols = list(x.columns)
    val: dict[tuple[int, ...], float] = {}
    for k in range(n + 1):
        for s in itertools.combinations(range(n), k):
            comp = rows.copy().reset_index(drop=True)
            for j in s:
                comp[cols[j]] = x.iloc[0, j]
            val[s] = float(np.mean(f(comp.astype(rows.dtypes.to_dict()))))
    phi = np.zeros(n)
    for i in range(n):
        for s, v in val.items():
            if i not in s:
                w = math.factorial(len(s)) * math.factorial(n - len(s) - 1) / math.factorial(n)
                phi[i] += w * (val[tuple(sorted((*s, i)))] - v)
    return phi


@pytest.mark.parametrize("int_dtype,bool_dtype", [("int64", "bool"), ("int32", "bool"),
                                                  ("Int64", "boolean"), ("uint16", "bool")])
@pytest.mark.parametrize("classifier", [False, True])
def test_integer_and_bool_columns_reach_the_pipeline_in_their_dtype(
        int_dtype: str, bool_dtype: str, classifier: bool) -> None:
    df = _frame(int_dtype, bool_dtype)
    model = _text_pipeline(df, classifier)
    x = df.iloc[:4]
    base = df.iloc[[10]]
    kw: dict[str, Any] = {"target": 1, "output": "prob"} if classifier else {}
    attr = tribute.explain(model, x, method="exact_shapley", baseline=base, **kw)
    if classifier:
        def f(r: Any) -> Any:
            return model.predict_proba(r)[:, 1]
    else:
        f = model.predict
    for r in range(4):
        truth = _shapley(f, x.iloc[[r]], base)
        np.testing.assert_allclose(attr.values[r], truth, atol=1e-9)
    assert np.abs(attr.values[:, 0]).max() > 0.1  # the zip column counts (0 at BASE)


@pytest.mark.parametrize("method", ["kernel_shap", "permutation_shapley"])
def test_background_rows_keep_the_dtypes_too(method: str) -> None:
    df = _frame("int64", "bool")
    model = _text_pipeline(df, classifier=False)
    x = df.iloc[:3]
    bg = df.iloc[20:24]
    attr = tribute.explain(model, x, method=method, baseline=tribute.Background(bg), budget=400,
                           seed=0)
    for r in range(3):
        np.testing.assert_allclose(attr.values[r], _shapley(model.predict, x.iloc[[r]], bg),
                                   atol=1e-9)


def test_fractional_baseline_of_an_integer_column_stays_float() -> None:
    """A mean baseline (202.4 for an integer column) is composed as it is: the column cannot
    hold it as an integer, so the rows keep float64 (as CategoricalCodec.decode does)."""
    df = _frame("int64", "bool")
    y = df["zip"] * 0.01 + df["flag"] * 1.0 + df["x"]
    model = LinearRegression().fit(df, y)
    base = df.mean().to_frame().T
    attr = tribute.explain(model, df.iloc[:3], method="exact_shapley", baseline=base)
    expected = model.coef_ * (df.iloc[:3].to_numpy(dtype=float) - base.to_numpy(dtype=float))
    np.testing.assert_allclose(attr.values, expected, atol=1e-9)


@pytest.mark.parametrize("case", ["float-frame", "numpy-inputs", "int-names-frame", "text-frame"])
def test_neighbours_score_as_before(case: str) -> None:
    """Frames without integer / bool columns, numpy inputs to a frame-fitted pipeline, and tables
    with a text column are read as they were."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    if case == "text-frame":
        df["c"] = rng.choice(["u", "v"], 60)
        df["k"] = rng.integers(0, 3, 60)
    y = df["a"] * 2 - df["b"]
    if case == "text-frame":
        y = y + (df["c"] == "u") * 3.0 + (df["k"] == 2) * 1.0
        ct = ColumnTransformer([("oh", make_pipeline(FunctionTransformer(_as_text),
                                                     OneHotEncoder(handle_unknown="ignore")),
                                 ["c", "k"])], remainder="passthrough")
        model = make_pipeline(ct, LinearRegression()).fit(df, y)
    else:
        model = LinearRegression().fit(df if case != "int-names-frame" else df.to_numpy(), y)
    x: Any = df.iloc[:3]
    base: Any = df.iloc[[7]]
    if case == "numpy-inputs":
        x, base = x.to_numpy(), base.to_numpy()
    if case == "int-names-frame":
        x = pd.DataFrame(x.to_numpy())
        base = pd.DataFrame(base.to_numpy())
    with warnings.catch_warnings():
        if case != "numpy-inputs":  # (numpy rows of a frame-fitted model warn about names)
            warnings.simplefilter("error")
        attr = tribute.explain(model, x, method="exact_shapley", baseline=base)
    frame_x = df.iloc[:3]
    frame_b = df.iloc[[7]]
    predict = model.predict if case != "int-names-frame" else (lambda r: model.predict(r.to_numpy()))
    for r in range(3):
        np.testing.assert_allclose(attr.values[r], _shapley(predict, frame_x.iloc[[r]], frame_b),
                                   atol=1e-9)


class _FrameDot:
    """A user's estimator fitted on a DataFrame whose ``predict`` computes on the frame's own
    values: with a bool column, ``to_numpy()`` is an object array and so is the output."""

    def fit(self, frame: Any) -> _FrameDot:
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.w_ = np.arange(1.0, frame.shape[1] + 1.0)
        return self

    def predict(self, frame: Any) -> Any:
        return frame.to_numpy() @ self.w_


def test_a_user_model_returning_numbers_in_an_object_array_still_scores() -> None:
    """Now that a user's class gets the frame's bool column as bool, its output is an object
    array of numbers (as on the user's own call); it is read as numbers, not refused."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"b": rng.random(20) > 0.5, "i": rng.integers(0, 5, 20),
                       "f": rng.normal(size=20)})
    model = _FrameDot().fit(df)
    assert np.asarray(model.predict(df)).dtype == object
    attr = tribute.explain(model, df.iloc[:3], method="exact_shapley", baseline=df.iloc[[5]])
    expected = model.w_ * (df.iloc[:3].to_numpy(dtype=float) - df.iloc[[5]].to_numpy(dtype=float))
    np.testing.assert_allclose(attr.values, expected, atol=1e-12)
