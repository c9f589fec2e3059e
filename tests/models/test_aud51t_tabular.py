"""aud51t: tables explained through models that read their columns' dtypes.

1. A baseline DataFrame whose column has another dtype kind than the inputs' (a float64 2.0
   for an int64 column) was typed by the inputs' dtype where the value fits it: the model met
   the integer 2 where the user's frame says 2.0 (credit -2 for a DataFrame-copy truth of 13),
   while a fractional 2.5 stayed a float. Both readings are possible: refused, naming both.
2. Integers beyond 2**53 were rounded through the float64 rows (``a % 2``: credit 0 for a truth
   of 4, silently): refused, naming the column.
3. A forward argument shared by all rows whose length happened to equal a batch's rows was
   split with the batch's dtype frames (credit -3132.7 for a truth of -13.3).
4. XGBoost / CatBoost multi-label classifiers (independent sigmoids) were not recognised:
   ``target=None`` explained the most probable label only, silently.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tribute
from tribute.errors import InputError

pd = pytest.importorskip("pandas")

from test_aud50t_tabular import _brute  # noqa: E402  (exact Shapley over DataFrame copies)


class _Reader:
    """Reads column ``a`` as text ("1"/"2"/"3" score 3/5/7, anything else -10), plus 2 b."""

    def fit(self, frame: Any) -> _Reader:
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        return self

    def predict(self, frame: Any) -> Any:
        a = frame["a"].astype(str).map({"1": 3.0, "2": 5.0, "3": 7.0}).fillna(-10.0).to_numpy()
        return a + 2.0 * frame["b"].to_numpy(dtype=np.float64)


def _frame() -> Any:
    return pd.DataFrame({"a": [1, 3, 2, 2] * 3, "b": np.linspace(-1.0, 1.0, 12)})


def test_a_float_baseline_holding_an_integer_columns_value_is_refused_naming_both_readings() -> None:
    df = _frame()
    model = _Reader().fit(df)
    base = df.mean().to_frame().T  # a: float64 2.0 (exactly), b: 0.0
    with pytest.raises(InputError) as err:
        tribute.explain(model, df.iloc[:3], method="exact_shapley", baseline=base)
    msg = str(err.value)
    assert "baseline column 'a' is float64 and holds 2.0" in msg and "int64" in msg, msg
    assert "2 as int64" in msg and "2.0 as float64" in msg, msg
    # each named fix gives the DataFrame-copy truth of its reading
    fixed = base.astype({"a": "int64"})
    attr = tribute.explain(model, df.iloc[:3], method="exact_shapley", baseline=fixed)
    np.testing.assert_allclose(attr.values, _brute(model, df.iloc[:3], fixed), atol=1e-12)
    x = df.iloc[:3].astype({"a": "float64"})
    attr = tribute.explain(model, x, method="exact_shapley", baseline=base)
    truth = _brute(model, x, base)
    np.testing.assert_allclose(attr.values, truth, atol=1e-12)
    assert truth[:, 0].tolist() == [0.0, 0.0, 0.0]  # "1.0", "3.0", "2.0": all unknown text


@pytest.mark.parametrize("case", ["uint8_background", "bool_as_int", "one_fractional_row"])
def test_other_retyped_baselines_are_refused(case: str) -> None:
    if case == "uint8_background":
        x = pd.DataFrame({"a": np.array([200, 100, 250], dtype=np.uint8), "b": [1.0, 2.0, 3.0]})
        base: Any = tribute.Background(pd.DataFrame({"a": [100.0, 50.0], "b": [0.0, 1.0]}))
    elif case == "bool_as_int":
        x = pd.DataFrame({"a": [True, False, True], "b": [1.0, 2.0, 3.0]})
        base = pd.DataFrame({"a": [1], "b": [0.0]})
    else:
        x = _frame().iloc[:3]
        base = tribute.Background(pd.DataFrame({"a": [2.5, 3.0], "b": [0.0, 1.0]}))
    model = _Reader().fit(x)
    with pytest.raises(InputError, match="baseline column 'a' is"):
        tribute.explain(model, x, method="exact_shapley", baseline=base)


def test_baselines_with_one_reading_are_not_refused() -> None:
    """Negative cases: the inputs' dtypes, a fractional float (no integer reading), a model that
    does not read dtypes, a float32 column with a float64 baseline (same kind). (A float Series
    holding an integer column's whole value is refused as its one-row frame is: aud52v.)"""
    from sklearn.linear_model import LinearRegression

    df = _frame()
    x = df.iloc[:2]
    model = _Reader().fit(df)
    for base in (df.iloc[[5]], tribute.Background(df.iloc[4:6]), df.astype(float).mean() + 0.25):
        tribute.explain(model, x, method="exact_shapley", baseline=base)
    frac = pd.DataFrame({"a": [2.5], "b": [0.1]})
    attr = tribute.explain(model, x, method="exact_shapley", baseline=frac)
    np.testing.assert_allclose(attr.values, _brute(model, x, frac), atol=1e-12)
    lr = LinearRegression().fit(df, df["b"] * 2 + df["a"])
    tribute.explain(lr, x, method="exact_shapley", baseline=df.mean().to_frame().T)
    f32 = df.astype({"b": np.float32})
    tribute.explain(_Reader().fit(f32), f32.iloc[:3], method="exact_shapley",
                    baseline=f32.astype({"b": np.float64}).iloc[[4]])


class _Parity:
    def fit(self, frame: Any) -> _Parity:
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        return self

    def predict(self, frame: Any) -> Any:
        return (frame["a"].to_numpy() % 2).astype(np.float64) * 4 + frame["b"].to_numpy(dtype=np.float64)


@pytest.mark.parametrize("where", ["mixed_inputs", "integer_inputs", "baseline", "text_table"])
def test_integers_beyond_2_53_are_refused_for_a_dtype_reader(where: str) -> None:
    big = 2 ** 53 + 1
    a = np.array([big, 3, 6], dtype=np.int64)
    x = pd.DataFrame({"a": a, "b": [1.0, 2.0, 3.0]})
    base = pd.DataFrame({"a": [0], "b": [0.0]})
    if where == "integer_inputs":
        x, base = x.astype({"b": np.int64}), base.astype({"b": np.int64})
    elif where == "baseline":
        x, base = x.assign(a=[1, 3, 6]), base.assign(a=[big])
    elif where == "text_table":
        x, base = x.assign(t=["u", "v", "u"]), base.assign(t=["u"])
    with pytest.raises(InputError, match=f"column 'a' holds {big}, beyond 2\\*\\*53"):
        tribute.explain(_Parity().fit(x), x, method="exact_shapley", baseline=base)


def test_integers_within_2_53_or_for_a_float_reading_model_are_not_refused() -> None:
    from sklearn.linear_model import LinearRegression

    x = pd.DataFrame({"a": np.array([2 ** 53, 3, 6], dtype=np.int64), "b": [1.0, 2.0, 3.0]})
    base = pd.DataFrame({"a": [0], "b": [0.0]})
    attr = tribute.explain(_Parity().fit(x), x, method="exact_shapley", baseline=base)
    np.testing.assert_allclose(attr.values, _brute(_Parity().fit(x), x, base), atol=1e-12)
    x2 = x.assign(a=[2 ** 60, 3, 6])
    lr = LinearRegression().fit(x2, [1.0, 2.0, 3.0])  # converts to float64 itself
    tribute.explain(lr, x2, method="exact_shapley", baseline=base)


class _Shared:
    """A dtype reader with a shared forward argument ``s`` (its sum scales every row)."""

    feature_names_in_ = np.array(list("abcd"), dtype=object)

    def predict(self, frame: Any, s: Any, scale: Any = None) -> Any:
        out = frame.to_numpy(dtype=np.float64) @ np.array([1.0, 10.0, 100.0, 1000.0]) * float(np.sum(s))
        return out if scale is None else out * scale


@pytest.mark.parametrize(("length", "batch_size", "n"), [(2, 2, 1), (3, 3, 1), (4, None, 1), (8, None, 2)])
def test_a_shared_forward_argument_as_long_as_a_batch_is_not_split(length: int, batch_size: Any, n: int) -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5], "c": [1, 1, 2], "d": [3, 1, 2]})
    base = pd.DataFrame({"a": [2.5], "b": [1.0], "c": [1.5], "d": [1.5]})  # splits the frames
    x = df.iloc[:n]
    attr = tribute.explain(_Shared(), x, method="feature_ablation", baseline=base,
                           forward_args=(np.ones(length),), batch_size=batch_size)
    w = np.array([1.0, 10.0, 100.0, 1000.0])
    truth = (x.to_numpy(np.float64) - base.to_numpy(np.float64)) * w * length
    np.testing.assert_allclose(attr.values, truth, rtol=1e-12)
    # a per-sample argument is still split with its rows
    scale = np.arange(1.0, n + 1)
    attr = tribute.explain(_Shared(), x, method="feature_ablation", baseline=base,
                           forward_args=(np.ones(length),), forward_kwargs={"scale": scale},
                           batch_size=batch_size)
    np.testing.assert_allclose(attr.values, truth * scale[:, None], rtol=1e-12)


def _labels() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0, x[:, 3] > 0.3], 1).astype(int)
    return x, y


@pytest.mark.parametrize("kind", ["xgb", "booster", "pipeline", "catboost"])
def test_boosting_multilabel_classifiers_refuse_target_none(kind: str) -> None:
    x, y = _labels()
    if kind == "catboost":
        catboost = pytest.importorskip("catboost")
        model: Any = catboost.CatBoostClassifier(iterations=3, loss_function="MultiLogloss",
                                                 verbose=0, thread_count=1).fit(x, y)
    else:
        xgboost = pytest.importorskip("xgboost")
        model = xgboost.XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1)
        if kind == "pipeline":
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            model = make_pipeline(StandardScaler(), model)
        model.fit(x, y)
        if kind == "booster":
            model = model.get_booster()
    for target in (None, "predicted"):
        with pytest.raises(InputError, match="multi-label classifier"):
            tribute.explain(model, x[:3], method="exact_shapley", baseline=x.mean(0), target=target)
    attr = tribute.explain(model, x[:3], method="exact_shapley", baseline=x.mean(0), target=1)
    assert np.asarray(attr.targets).tolist() == [1, 1, 1]


@pytest.mark.parametrize("labels", ["binary", "multiclass"])
def test_boosting_single_label_classifiers_keep_their_predicted_class(labels: str) -> None:
    xgboost = pytest.importorskip("xgboost")
    x, y = _labels()
    target = y[:, 0] if labels == "binary" else y[:, 0] * 2 + y[:, 1]
    model = xgboost.XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1).fit(x, target)
    attr = tribute.explain(model, x[:4], method="exact_shapley", baseline=x.mean(0))
    assert np.asarray(attr.targets).tolist() == model.predict(x[:4]).tolist()


def _text_pipeline(columns: list[str] | None, calls: list[int]) -> Any:
    """OneHot of the integer columns read as text through a validating FunctionTransformer,
    first in the pipeline (``columns=None``) or on a subset inside a ColumnTransformer."""
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder
    from sklearn.tree import DecisionTreeRegressor

    def as_text(a: Any) -> Any:
        calls.append(len(a))
        return np.asarray(a).astype(str)

    text = make_pipeline(FunctionTransformer(as_text, validate=True),
                         OneHotEncoder(handle_unknown="ignore"))
    first = text if columns is None else make_column_transformer((text, columns), remainder="passthrough")
    return make_pipeline(first, DecisionTreeRegressor(max_depth=5, random_state=0))


def _validating_case(columns: Any) -> tuple[Any, Any, Any, list[int], Any]:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({f"i{j}": rng.choice([1, 2, 3], 60) for j in range(4)})
    calls: list[int] = []
    model = _text_pipeline(columns, calls).fit(df, df.sum(axis=1) + rng.normal(size=60))
    x = df.iloc[:2]
    bg = pd.DataFrame({c: [1.5] for c in df.columns})  # fractional: one reading
    calls.clear()
    attr = tribute.explain(model, x, method="exact_shapley", baseline=bg, batch_size=4096)
    return model, x, bg, calls, attr


@pytest.mark.parametrize("columns", [None, ["i0", "i1"]])
def test_a_pipeline_validating_its_frame_first_takes_two_frames_per_batch(columns: Any) -> None:
    """Cost: up to one model call per fit pattern of the typed columns (2,043 calls, 114 s, for
    exact Shapley on 10 integer columns with a mean baseline); a pipeline whose first step
    validates the frame into one array sees only "all integer" or "float64" arrays: 2 frames,
    the same values. Inside a ColumnTransformer (a subset) the pattern groups stay."""
    _, _, _, calls, _ = _validating_case(columns)
    if columns is None:
        assert len(calls) <= 3, calls  # (reference rows, then 2 frames per batch)
    else:
        assert len(calls) > 3, calls


@pytest.mark.slow
@pytest.mark.parametrize("columns", [None, ["i0", "i1"]])
def test_two_frames_give_the_dataframe_copy_truth(columns: Any) -> None:
    model, x, bg, _, attr = _validating_case(columns)
    np.testing.assert_allclose(attr.values, _brute(model, x, bg), atol=1e-9)
