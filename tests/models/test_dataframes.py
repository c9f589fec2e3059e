"""pandas DataFrames as inputs and baselines, and estimators fitted on them (issue #15)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402


@pytest.fixture
def frame() -> tuple:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(80, 4)) * [1.0, 10.0, 3.0, 0.5] + [50.0, 0.0, 7.0, 1.0],
                     columns=["age", "income", "height", "score"],
                     index=[f"p{i}" for i in range(80)])
    X["count"] = rng.integers(0, 5, size=80)  # an int column next to floats
    y = (X["age"] + X["count"] > 51).astype(int).to_numpy()
    return X, y


def _no_name_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if "feature names" in str(w.message)]


def test_dataframe_fitted_model_gets_no_feature_name_warnings(frame):
    X, y = frame
    clf = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        a = tribute.explain(clf, X.iloc[:3], method="kernel_shap", baseline=X.mean(), budget=64)
        b = tribute.explain(clf, X.to_numpy()[:3], method="kernel_shap",
                            baseline=X.to_numpy().mean(0), budget=64)
    assert _no_name_warnings(record) == []
    np.testing.assert_allclose(a.values, b.values, rtol=1e-12)


def test_dataframe_inputs_names_index_and_to_pandas(frame):
    X, y = frame
    clf = LogisticRegression(max_iter=1000).fit(X, y)
    x = X.iloc[5:9]
    attr = tribute.explain(clf, x, method="exact_shapley", baseline=X.mean(), output="logit",
                           target=1)
    assert attr.player_names == list(X.columns)
    assert isinstance(attr.values, np.ndarray) and attr.values.shape == (4, 5)
    df = attr.to_pandas()
    assert list(df.index) == list(x.index) and list(df.columns) == list(X.columns)
    np.testing.assert_allclose(df.to_numpy(), attr.values)
    expected = clf.coef_[0] * (x.to_numpy() - X.mean().to_numpy())
    np.testing.assert_allclose(attr.values, expected, rtol=1e-6, atol=1e-8)
    # several targets: a (sample, target) MultiIndex
    multi = tribute.explain(clf, x, method="exact_shapley", baseline=X.mean(), target=[0, 1])
    mdf = multi.to_pandas()
    assert mdf.shape == (8, 5) and list(mdf.index.get_level_values(0)[:2]) == ["p5", "p5"]


def test_dataframe_round_trips_through_save(frame, tmp_path):
    X, y = frame
    clf = LogisticRegression(max_iter=1000).fit(X, y)
    attr = tribute.explain(clf, X.iloc[:3], method="exact_shapley", baseline=X.mean())
    back = tribute.Attribution.load(attr.save(tmp_path / "a"))
    assert back == attr
    df = back.to_pandas()
    assert list(df.index.get_level_values("sample")) == ["p0", "p1", "p2"]
    # the default target is each row's predicted class, here not the same for every row: a
    # target level says which class each row explains (stop 40)
    assert list(df.index.get_level_values("target")) == clf.predict(X.iloc[:3]).tolist() == [1, 1, 0]


def test_numpy_inputs_to_pandas_use_a_range_index():
    attr = tribute.explain(lambda a: a.sum(1), np.ones((3, 2)), method="exact_shapley",
                           baseline=0.0)
    df = attr.to_pandas()
    assert list(df.index) == [0, 1, 2] and list(df.columns) == ["x0", "x1"]


def test_dataframe_errors(frame):
    X, y = frame
    clf = LogisticRegression(max_iter=1000).fit(X, y)
    with pytest.raises(InputError, match="fitted on"):
        tribute.explain(clf, X.iloc[:2, ::-1], baseline=X.mean())
    with pytest.raises(InputError, match="baseline has columns"):
        tribute.explain(clf, X.iloc[:2], baseline=X.iloc[:, ::-1].mean())
    bad = X.iloc[:2].assign(city=["a", "b"])
    # categorical columns reach the model decoded (see test_categorical_frames); a function
    # that cannot take strings fails with the model's own message, named as such
    with pytest.raises(InputError, match="model failed"):
        tribute.explain(lambda a: a.sum(1), bad, baseline=bad.iloc[0])
    # a number names no category of 'city' (it was read as the first category met)
    with pytest.raises(InputError, match=r"baseline=0\.0 cannot stand for a category of column\(s\) \['city'\]"):
        tribute.explain(lambda a: a.sum(1), bad, baseline=0.0)


def test_dataframe_to_a_torch_model(frame):
    X, _ = frame
    net = torch.nn.Linear(5, 1).double()
    attr = tribute.explain(net, X.iloc[:2], method="exact_shapley", baseline=X.mean())
    w = net.weight.detach().numpy()[0]
    np.testing.assert_allclose(attr.values, w * (X.iloc[:2].to_numpy() - X.mean().to_numpy()),
                               rtol=1e-8)


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_booster_trained_on_a_frame_refuses_reordered_columns(lib):
    """A Booster trained on a DataFrame knows its column names: a frame with the columns in
    another order is refused, like a scikit-learn estimator's (before: read by position, the
    credit named 'c' was 0.09 where it should be ~106); the fitted order gives the right
    answer, and a Booster trained on an array (no names) reads frames by position."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    y = df.a + 10 * df.b + 100 * df.c
    if lib == "xgboost":
        xgb = pytest.importorskip("xgboost")
        model = xgb.train({"max_depth": 3, "nthread": 1}, xgb.DMatrix(df, y), 30)
        unnamed = xgb.train({"max_depth": 3, "nthread": 1}, xgb.DMatrix(df.to_numpy(), y), 30)

        def predict(z):
            return model.predict(xgb.DMatrix(z))
    else:
        lgb = pytest.importorskip("lightgbm")
        model = lgb.train({"verbose": -1, "num_threads": 1}, lgb.Dataset(df, y), 30)
        unnamed = lgb.train({"verbose": -1, "num_threads": 1}, lgb.Dataset(df.to_numpy(), y), 30)

        def predict(z):
            return model.predict(z)
    bg = df.iloc[50:60]
    for method in ("exact_shapley", "tree_shap"):
        with pytest.raises(InputError, match=r"columns \['c', 'a', 'b'\].*fitted on \['a', 'b', 'c'\]"):
            tribute.explain(model, df.iloc[:2][["c", "a", "b"]], method=method,
                            baseline=tribute.Background(bg[["c", "a", "b"]]))
        a = tribute.explain(model, df.iloc[:2], method=method, baseline=tribute.Background(bg))
        assert a.player_names == ["a", "b", "c"]
        np.testing.assert_allclose(np.asarray(a.full_values), predict(df.iloc[:2]), rtol=1e-5)
        assert a.values[0, 2] > 50  # the credit of 'c' (weight 100)
    a = tribute.explain(unnamed, df.iloc[:2][["c", "a", "b"]], method="exact_shapley",
                        baseline=tribute.Background(bg[["c", "a", "b"]]))
    assert a.player_names == ["c", "a", "b"]  # no names to check against: by position


def test_lightgbm_trained_on_a_frame_with_spaces_in_its_column_names():
    """LightGBM stores column names with ' ' replaced by '_' (``feature_name()``, and the
    wrapper's ``feature_names_in_``): the very frame it was trained on ('mean radius', as in
    scikit-learn's breast cancer data) was refused as "fitted on ['mean_radius', ...]" (aud33u);
    it is accepted, players keep the frame's names, and another order is still refused."""
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(200, 3)), columns=["mean radius", "b", "worst area"])
    y = (df["mean radius"] + 3 * df["worst area"] > 0).astype(int)
    booster = lgb.train({"verbose": -1, "num_threads": 1, "objective": "binary"}, lgb.Dataset(df, y), 10)
    wrapper = lgb.LGBMClassifier(n_estimators=10, verbose=-1, n_jobs=1).fit(df, y)
    bg = tribute.Background(df.iloc[50:60])
    for model in (booster, wrapper):
        for method in ("exact_shapley", "tree_shap"):
            a = tribute.explain(model, df.iloc[:2], method=method, baseline=bg, target=1)
            assert a.player_names == ["mean radius", "b", "worst area"]
        with pytest.raises(InputError, match=r"columns \['b', 'mean radius'"):
            tribute.explain(model, df.iloc[:2][["b", "mean radius", "worst area"]], method="exact_shapley",
                            baseline=tribute.Background(bg.data[["b", "mean radius", "worst area"]]), target=1)
