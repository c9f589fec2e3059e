"""Audit aud36t: estimators tribute's tests did not use, checked against the model called
directly (brute-force Shapley values of the documented value function)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from _brute import brute_shapley as _brute_shapley
from _brute import sigmoid as _sigmoid

import tribute


def test_xgboost_logitraw_classifier_is_explained_through_its_margin():
    """``XGBClassifier(objective="binary:logitraw").predict_proba`` is ``[1 - s, s]`` for the
    margin ``s``: read as probabilities, output='prob' was refused with advice to declare
    model_output='logit', which then explained ``softmax([1 - s, s])[1] = sigmoid(2 s - 1)``
    (0.0066 where the model's probability moved by 0.0387). The margin is now read directly."""
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(8)
    x = rng.normal(size=(300, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    model = xgb.XGBClassifier(n_estimators=5, max_depth=2, objective="binary:logitraw").fit(x, y)
    rows, base = x[:3], x[10:11]

    def margin(r: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(r, output_margin=True), dtype=np.float64)

    for output, f in (("prob", lambda r: _sigmoid(margin(r))), ("logit", margin),
                      ("raw", margin)):
        want = np.array([_brute_shapley(f, r, base) for r in rows])
        for declared in (None, "logit"):
            attr = tribute.explain(model, rows, method="exact_shapley", baseline=base[0],
                                   target=1, output=output, model_output=declared)
            # xgboost predicts in float32: its margins carry ~1e-7 rounding
            np.testing.assert_allclose(attr.values, want, atol=1e-6)
        # class 0 is the complementary quantity (-s, sigmoid(-s))
        if output != "raw":
            attr0 = tribute.explain(model, rows, method="exact_shapley", baseline=base[0],
                                    target=0, output=output)
            np.testing.assert_allclose(attr0.values, -want, atol=1e-6)
    # tree_shap reads the same margin, and agrees with the model-agnostic game
    tree = tribute.explain(model, rows, method="tree_shap", baseline=base[0], target=1)
    exact = tribute.explain(model, rows, method="exact_shapley", baseline=base[0], target=1)
    np.testing.assert_allclose(tree.values, exact.values, atol=1e-6)


def test_a_pipeline_ending_in_a_logitraw_classifier_reads_the_margin_too():
    xgb = pytest.importorskip("xgboost")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(9)
    x = rng.normal(size=(200, 3)) * [1.0, 5.0, 0.2]
    y = (x[:, 0] + x[:, 1] / 5 > 0).astype(int)
    pipe = make_pipeline(StandardScaler(),
                         xgb.XGBClassifier(n_estimators=5, max_depth=2,
                                           objective="binary:logitraw")).fit(x, y)
    rows, base = x[:2], x[20:24]
    want = np.array([_brute_shapley(lambda r: _sigmoid(pipe.predict(r, output_margin=True)),
                                    r, base) for r in rows])
    attr = tribute.explain(pipe, rows, method="exact_shapley", baseline=tribute.Background(base),
                           target=1, output="prob")
    np.testing.assert_allclose(attr.values, want, atol=1e-6)


def test_lightgbm_custom_objective_scores_are_read_as_assumed_logits():
    """LightGBM returns raw scores from ``predict_proba`` of a classifier with a custom
    objective (it says so in a warning): they are margins, not probabilities."""
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(8)
    x = rng.normal(size=(300, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)

    def logloss(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = _sigmoid(y_pred)
        return p - y_true, p * (1 - p)

    model = lgb.LGBMClassifier(n_estimators=5, objective=logloss, verbose=-1).fit(x, y)
    rows, base = x[:3], x[10:11]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = np.array([_brute_shapley(lambda r: _sigmoid(model.predict(r, raw_score=True)),
                                        r, base) for r in rows])
        attr = tribute.explain(model, rows, method="exact_shapley", baseline=base[0], target=1,
                               output="prob")
    np.testing.assert_allclose(attr.values, want, atol=1e-9)


def test_xgboost_missing_value_in_the_background_is_read_as_missing():
    """``XGBRegressor(missing=-999)`` reads -999 as missing; tree_shap read it as a number and
    only checked the explained rows, so a background holding -999 gave values 0.73 off and a
    base value of 1.80 where the model's mean over the background is 2.56, silently."""
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 4))
    y = x[:, 0] * 2 + x[:, 1] * x[:, 2] + (x[:, 3] > 0)
    xm = np.where(rng.random(x.shape) < 0.15, -999.0, x)
    model = xgb.XGBRegressor(n_estimators=10, max_depth=3, missing=-999.0).fit(xm, y)
    bg = x[40:46].copy()
    bg[0, 0] = bg[2, 1] = -999.0
    for rows in (x[:3], np.vstack([x[:2], bg[:1]])):  # also an explained row with -999
        want = np.array([_brute_shapley(model.predict, r, bg) for r in rows])
        for kernel in ("numpy", "auto"):
            attr = tribute.explain(model, rows, method="tree_shap", kernel=kernel,
                                   baseline=tribute.Background(bg))
            np.testing.assert_allclose(attr.values, want, atol=1e-5)  # float32 model
            assert attr.base_values is not None
            np.testing.assert_allclose(attr.base_values, model.predict(bg).mean(), atol=1e-5)
    # missing=0 (sparse data): the offset row of zeros is all missing for the model too
    x0 = np.where(np.abs(x) < 0.3, 0.0, x)
    model0 = xgb.XGBRegressor(n_estimators=10, max_depth=3, missing=0.0).fit(x0, y)
    bg0 = x0[40:46]
    want = np.array([_brute_shapley(model0.predict, r, bg0) for r in x0[:3]])
    attr = tribute.explain(model0, x0[:3], method="tree_shap", baseline=tribute.Background(bg0))
    np.testing.assert_allclose(attr.values, want, atol=1e-5)


def test_tree_shap_refuses_a_background_the_model_cannot_predict():
    """A GradientBoostingRegressor refuses NaN, but NaN background rows were read by the trees
    anyway (the explained rows alone were checked): credits of outputs the model never gives."""
    from sklearn.ensemble import GradientBoostingRegressor

    from tribute.errors import InputError

    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 3))
    model = GradientBoostingRegressor(n_estimators=5, random_state=0).fit(x, x[:, 0] + x[:, 1])
    bg = x[40:46].copy()
    bg[0, 0] = np.nan
    with pytest.raises(InputError, match=r"baseline.*background rows.*NaN"):
        tribute.explain(model, x[:3], method="tree_shap", baseline=tribute.Background(bg))
    # the same model with a clean background is explained as before
    attr = tribute.explain(model, x[:3], method="tree_shap", baseline=tribute.Background(x[40:46]))
    want = np.array([_brute_shapley(model.predict, r, x[40:46]) for r in x[:3]])
    np.testing.assert_allclose(attr.values, want, atol=1e-9)


def test_a_baseline_category_the_inputs_dtype_lacks_is_not_decoded_to_nan():
    """Inputs whose pandas Categorical dtype lacks a category of the baseline (test rows read
    apart from the training rows): removed cells were decoded with ``.astype(inputs' dtype)``,
    i.e. to NaN, so the model saw a missing value: credits 0.0 where the truth is -2.63."""
    pd = pytest.importorskip("pandas")
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    n = 400
    train = pd.DataFrame({"c": pd.Categorical(rng.choice(["a", "b", "c"], n),
                                              categories=["a", "b", "c"]),
                          "f": rng.normal(size=n)})
    model = HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(
        train, (train["c"] == "c") * 3.0 + train["f"])
    rows = pd.DataFrame({"c": pd.Categorical(["a", "b", "a"], categories=["a", "b"]),
                         "f": [0.1, 0.2, -0.3]})
    bg = train[train["c"] == "c"].iloc[:2]

    def truth_model(r: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(pd.DataFrame({
            "c": pd.Categorical(r[:, 0], categories=["a", "b", "c"]),
            "f": r[:, 1].astype(np.float64)})))

    want = np.array([_brute_shapley(truth_model, rows.iloc[i].to_numpy(dtype=object),
                                    bg.to_numpy(dtype=object), dtype=object) for i in range(3)])
    assert np.all(want[:, 0] < -2.0)  # "c" in the baseline is worth 3
    attr = tribute.explain(model, rows, method="exact_shapley", baseline=tribute.Background(bg))
    np.testing.assert_allclose(attr.values, want, atol=1e-12)
    seen: list[Any] = []

    def spy(frame: Any) -> np.ndarray:
        seen.append(frame["c"])
        return np.asarray(model.predict(frame))

    tribute.explain(spy, rows, method="exact_shapley", baseline=tribute.Background(bg),
                    model_output="raw")
    assert not any(col.isna().any() for col in seen)


def test_catboost_one_vs_all_margins_are_per_class_log_odds():
    """CatBoost's MultiClassOneVsAll predicts a sigmoid per class (rows do not sum to one); it
    was read with a softmax link, so output='logit' (each class's log-odds, which IS its
    margin) was refused and params["explained"] said "softmax logit"."""
    cb = pytest.importorskip("catboost")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))
    y = np.digitize(x[:, 0], [-0.5, 0.5])
    model = cb.CatBoostClassifier(iterations=10, depth=3, verbose=0, thread_count=1,
                                  loss_function="MultiClassOneVsAll").fit(x, y)
    bg = x[100:104]
    for t in (0, 2):
        def margin(r: np.ndarray, t: int = t) -> np.ndarray:
            return np.asarray(model.predict(r, prediction_type="RawFormulaVal"))[:, t]

        want = np.array([_brute_shapley(margin, r, bg) for r in x[:3]])
        for output in ("raw", "logit"):
            attr = tribute.explain(model, x[:3], method="tree_shap", target=t, output=output,
                                   baseline=tribute.Background(bg))
            np.testing.assert_allclose(attr.values, want, atol=1e-9)
            assert "softmax" not in attr.params["explained"]
        exact = tribute.explain(model, x[:3], method="exact_shapley", target=t, output="logit",
                                baseline=tribute.Background(bg))
        np.testing.assert_allclose(exact.values, want, atol=1e-9)


def test_unhashable_cells_are_refused_naming_the_column():
    """A column of lists was a bare ``TypeError: unhashable type: 'list'`` from the codec."""
    pd = pytest.importorskip("pandas")
    from tribute.errors import InputError

    frame = pd.DataFrame({"a": [0.1, 0.2, 0.3, 0.4], "tags": [[1, 2], [3], [1], []]})
    with pytest.raises(InputError, match=r"column 'tags' holds unhashable values.*list"):
        tribute.explain(lambda d: np.zeros(len(d)), frame.iloc[:2], method="exact_shapley",
                        baseline=tribute.Background(frame.iloc[2:]), model_output="raw")


def test_tree_shap_on_a_frame_fitted_model_gives_no_feature_name_warnings():
    """The reader called a DataFrame-fitted scikit-learn model with arrays (offset, reading
    and background checks): scikit-learn warned "X does not have valid feature names" each
    time, which the adapters avoid for every other method."""
    pd = pytest.importorskip("pandas")
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(100, 3)), columns=["a", "b", "c"])
    for model in (RandomForestRegressor(5, max_depth=3, random_state=0).fit(frame, frame["a"]),
                  HistGradientBoostingClassifier(max_iter=5).fit(frame, frame["a"] > 0)):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            tribute.explain(model, frame.iloc[:3], method="tree_shap",
                            baseline=tribute.Background(frame.iloc[10:20]))
            tribute.explain(model, frame.iloc[:3], method="tree_shap")
        assert [str(w.message) for w in record if "feature names" in str(w.message)] == []


def test_tree_shap_refuses_a_hist_gradient_boosting_model_with_categorical_features():
    """HistGradientBoosting fitted on a frame with a pandas categorical column (here never
    split on) crashed in the reader with a bare TypeError from the model (category codes)."""
    pd = pytest.importorskip("pandas")
    from sklearn.ensemble import HistGradientBoostingRegressor

    from tribute.errors import UnsupportedModelError

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"c": pd.Categorical(rng.choice(["x", "y"], 300)),
                          "f": rng.normal(size=300)})
    model = HistGradientBoostingRegressor(max_iter=5, max_depth=2).fit(frame, frame["f"] * 3)
    with pytest.raises(UnsupportedModelError, match=r"column\(s\) \['c'\] as categorical"):
        tribute.explain(model, frame.iloc[:3], method="tree_shap",
                        baseline=tribute.Background(frame.iloc[10:14]))
