"""rev49a: review of aud49a (a DataFrame's integer / bool columns given back to models that read
their dtypes).

1. A mean baseline (207.05 for an integer column) cannot be held by the column: a batch mixing
   rows with the integer 202 and the baseline handed both over as float64, a batch of present
   rows only as int64, and f(x) (computed alone) as int64, so a coalition's value depended on
   its batch: exact Shapley credits [0.19, 0.19, -0.82] where the additive column ``x`` has the
   closed form -1.01. Such columns now stay float64 in every batch (as at BASE).
2. A baseline outside an integer column's range (300 for ``uint8``) was cast to 44; -1 failed
   with "Cannot losslessly cast". It stays float64 now.
Truths: closed forms (an additive model's credit is its term at x minus its term at the baseline).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tribute

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder  # noqa: E402


def _as_text(d: Any) -> Any:
    return d.astype(str)


def test_a_mean_baseline_of_an_integer_column_gives_the_same_credits_in_every_batch() -> None:
    rng = np.random.default_rng(1)
    n = 120
    df = pd.DataFrame({"zip": rng.choice([101, 202, 303], n), "flag": rng.random(n) > 0.5,
                       "x": rng.normal(size=n)})
    y = (df["zip"] == 202) * 2.0 + df["flag"] * 1.5 + df["x"]
    ct = ColumnTransformer([("oh", make_pipeline(FunctionTransformer(_as_text),
                                                 OneHotEncoder(handle_unknown="ignore")),
                             ["zip", "flag"])], remainder="passthrough")
    model = make_pipeline(ct, LinearRegression()).fit(df, y)
    x = df[df["zip"] == 202].iloc[:2]
    base = df.mean().to_frame().T
    _assert_batch_free(model, x, base, [{}, {"batch_size": 1}, {"batch_size": 3}])


class _Sum:
    """A user's estimator (so it gets the dtypes back) computing a weighted sum of the columns."""

    def fit(self, frame: Any) -> _Sum:
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.w_ = np.arange(1.0, frame.shape[1] + 1.0)
        return self

    def predict(self, frame: Any) -> Any:
        return frame.to_numpy(dtype=np.float64) @ self.w_


@pytest.mark.parametrize("dtype,baseline", [("uint8", 300.0), ("uint8", -1.0), ("int8", 1000.0),
                                            ("uint16", 70000.0), ("int32", 2.0**40)])
def test_a_baseline_outside_the_integer_range_is_not_wrapped(dtype: str, baseline: float) -> None:
    df = pd.DataFrame({"a": pd.Series([100, 20, 3, 7]).astype(dtype), "b": [1.5, 2.0, 3.0, 4.0]})
    model = _Sum().fit(df)
    attr = tribute.explain(model, df.iloc[:2], method="exact_shapley", baseline=baseline)
    expected = model.w_ * (df.iloc[:2].to_numpy(dtype=np.float64) - baseline)
    np.testing.assert_allclose(attr.values, expected, atol=1e-9)


def _text_array(a: Any) -> Any:
    return a.astype(str)


def test_a_validating_function_transformer_on_an_all_integer_frame_gets_its_integers() -> None:
    """``FunctionTransformer(validate=True)`` turns an all-integer frame into an int64 array
    (``'202'``); float64 rows gave ``'202.0'``, an unknown category: credits [0, 0]."""
    rng = np.random.default_rng(0)
    n = 100
    df = pd.DataFrame({"zip": rng.choice([101, 202, 303], n), "k": rng.integers(0, 3, n)})
    y = (df["zip"] == 202) * 2.0 + (df["k"] == 1) * 1.0
    model = make_pipeline(FunctionTransformer(_text_array, validate=True),
                          OneHotEncoder(handle_unknown="ignore"), LinearRegression()).fit(df, y)
    x = df[(df["zip"] == 202) & (df["k"] == 1)].iloc[:1]
    b = df[(df["zip"] == 101) & (df["k"] == 0)].iloc[:1]
    attr = tribute.explain(model, x, method="exact_shapley", baseline=b)
    # additive in the two columns: each credit is the model with that column swapped in
    truth = [float(model.predict(b.assign(**{c: x[c].to_numpy()}))[0] - model.predict(b)[0])
             for c in ("zip", "k")]
    np.testing.assert_allclose(attr.values[0], truth, atol=1e-9)
    assert abs(truth[0] - 2.0) < 1e-6


def test_the_walk_reads_each_estimator_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Estimators sharing their parts (each level holding the level below 3 times, 11 levels)
    were walked path by path: 3**10 get_params calls (> 60 s at 14 levels)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, VotingRegressor

    from tribute.models.tabular import reads_column_dtypes

    est: Any = LinearRegression()
    for _ in range(10):
        est = VotingRegressor([(f"e{i}", est) for i in range(3)])
    calls = []
    original = VotingRegressor.get_params

    def counted(self: Any, deep: bool = True) -> Any:
        calls.append(1)
        return original(self, deep=deep)

    monkeypatch.setattr(VotingRegressor, "get_params", counted)
    assert reads_column_dtypes(est) is False
    assert len(calls) == 10
    lst: list[Any] = []
    lst.append(lst)  # a list holding itself
    assert reads_column_dtypes(ColumnTransformer([("a", LinearRegression(), lst)])) is False
    # a pandas mask is a parameter, not an estimator (a Series has a transform method)
    mask = pd.Series([True, False])
    assert reads_column_dtypes(HistGradientBoostingClassifier(categorical_features=mask)) is False


def test_a_table_with_text_columns_and_a_fractional_baseline_gives_the_same_credits_in_every_batch(
) -> None:
    """The decoder of a table with text columns typed an integer column per batch too: the
    additive column ``x`` got 2.10 in one batch for a closed form 1.65 (one row a batch: 1.65)."""
    rng = np.random.default_rng(1)
    n = 120
    df = pd.DataFrame({"zip": rng.choice([101, 202, 303], n), "t": rng.choice(["u", "v"], n),
                       "x": rng.normal(size=n)})
    y = (df["zip"] == 202) * 2.0 + (df["t"] == "u") * 1.5 + df["x"]
    ct = ColumnTransformer([("oh", make_pipeline(FunctionTransformer(_as_text),
                                                 OneHotEncoder(handle_unknown="ignore")),
                             ["zip", "t"])], remainder="passthrough")
    model = make_pipeline(ct, LinearRegression()).fit(df, y)
    x = df[(df["zip"] == 202) & (df["t"] == "u")].iloc[:2]
    base = pd.DataFrame({"zip": [df["zip"].mean()], "t": ["v"], "x": [df["x"].mean()]})
    _assert_batch_free(model, x, base, [{}, {"batch_size": 1}])


def test_a_validating_function_transformer_on_mixed_kinds_of_columns_is_not_a_reader() -> None:
    """Integer and float (or bool) columns convert to one float64 array whatever tribute hands
    over, so such pipelines skip the typed frames (their cost, 2x)."""
    from tribute.models.tabular import reads_column_dtypes

    pipe = make_pipeline(FunctionTransformer(np.abs, validate=True), LinearRegression())
    assert reads_column_dtypes(pipe) is True
    assert reads_column_dtypes(pipe, one_array_dtype=False) is False
    not_validating = make_pipeline(FunctionTransformer(np.abs), LinearRegression())
    assert reads_column_dtypes(not_validating, one_array_dtype=False) is True


def test_a_function_set_through_a_search_grid_is_found_in_the_best_estimator() -> None:
    """``GridSearchCV(Pipeline([("ft", FunctionTransformer()), ...]), {"ft__func": [f]})``: the
    template holds no function, the refitted ``best_estimator_`` does (credits [0, 0] before,
    for a truth of [2, 1])."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    rng = np.random.default_rng(0)
    n = 100
    df = pd.DataFrame({"zip": rng.choice([101, 202, 303], n), "k": rng.integers(0, 3, n),
                       "x": rng.normal(size=n)})
    y = (df["zip"] == 202) * 2.0 + (df["k"] == 1) * 1.0
    ct = ColumnTransformer([("oh", OneHotEncoder(handle_unknown="ignore"), ["zip", "k"])])
    pipe = Pipeline([("ft", FunctionTransformer()), ("ct", ct), ("lr", LinearRegression())])
    model = GridSearchCV(pipe, {"ft__func": [_as_text]}, cv=2).fit(df, y)
    x = df[(df["zip"] == 202) & (df["k"] == 1)].iloc[:1]
    b = df[(df["zip"] == 101) & (df["k"] == 0)].iloc[:1]
    attr = tribute.explain(model, x, method="exact_shapley", baseline=b)
    truth = [float(model.predict(b.assign(**{c: x[c].to_numpy()}))[0] - model.predict(b)[0])
             for c in ("zip", "k", "x")]
    np.testing.assert_allclose(attr.values[0], truth, atol=1e-9)
    assert abs(truth[0] - 2.0) < 1e-6


def _assert_batch_free(model: Any, x: Any, base: Any, sizes: list[dict[str, Any]]) -> None:
    """exact_shapley gives the same credits at every batch size in ``sizes``, and the additive
    column ``x`` (credit column 2) gets coefficient x (x - its baseline)."""
    coef_x = float(model[-1].coef_[-1])
    runs = [tribute.explain(model, x, method="exact_shapley", baseline=base, **kw).values
            for kw in sizes]
    for values in runs:
        np.testing.assert_allclose(values, runs[0], atol=1e-12)
        np.testing.assert_allclose(values[:, 2], coef_x * (x["x"].to_numpy() - base["x"].iloc[0]),
                                   atol=1e-9)
