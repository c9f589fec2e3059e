"""Review rev36b of aud36t: a classifier read through its margins (XGBoost binary:logitraw)
inside a search or a Pipeline with scikit-learn's metadata routing on."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _brute import brute_shapley as _brute_shapley
from _brute import sigmoid as _sigmoid

import tribute


def _logitraw_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(200, 3))
    return x, (x[:, 0] + x[:, 1] > 0).astype(int)


def test_a_search_over_a_logitraw_classifier_is_explained_through_the_margin():
    """``GridSearchCV(XGBClassifier(objective="binary:logitraw"))``: the margin was asked of
    the search's ``predict``, which takes no options (``unexpected keyword argument
    'output_margin'``, every explanation failed)."""
    xgb = pytest.importorskip("xgboost")
    from sklearn.model_selection import GridSearchCV

    x, y = _logitraw_data()
    search = GridSearchCV(xgb.XGBClassifier(n_estimators=5, max_depth=2,
                                            objective="binary:logitraw"),
                          {"max_depth": [2]}, cv=2).fit(x, y)
    best = search.best_estimator_
    rows, bg = x[:2], x[10:14]
    want = np.array([_brute_shapley(lambda r: _sigmoid(best.predict(r, output_margin=True)),
                                    r, bg) for r in rows])
    attr = tribute.explain(search, rows, method="exact_shapley",
                           baseline=tribute.Background(bg), target=1, output="prob")
    np.testing.assert_allclose(attr.values, want, atol=1e-6)  # float32 model


def test_a_logitraw_pipeline_with_metadata_routing_on_is_explained():
    """With ``sklearn.set_config(enable_metadata_routing=True)`` a Pipeline refuses the
    unrequested ``output_margin`` option: the margin is now asked of the final step itself."""
    xgb = pytest.importorskip("xgboost")
    import sklearn
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _logitraw_data()
    rows, bg = x[:2], x[10:14]
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler(), xgb.XGBClassifier(
            n_estimators=5, max_depth=2, objective="binary:logitraw")).fit(x, y)
        scaler, model = pipe[0], pipe[-1]
        want = np.array([_brute_shapley(
            lambda r: _sigmoid(model.predict(scaler.transform(r), output_margin=True)), r, bg)
            for r in rows])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attr = tribute.explain(pipe, rows, method="exact_shapley",
                                   baseline=tribute.Background(bg), target=1, output="prob")
    np.testing.assert_allclose(attr.values, want, atol=1e-6)


def test_tree_shap_reads_a_hist_gradient_boosting_model_with_unused_numeric_categoricals():
    """``categorical_features`` on numeric columns that no tree splits on: the model reads the
    other columns exactly as without them. aud36t refused every such model; main read it only
    when the categorical columns came first (scikit-learn's preprocessor puts them first and
    the trees' feature indices count in that order: trees 3.5 off, refused as a mismatch)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 4))
    x[:, 2] = rng.choice([3.0, 7.0, 11.0], 400)
    y = 3 * x[:, 0] + x[:, 1] - x[:, 3]
    model = HistGradientBoostingRegressor(max_iter=8, categorical_features=[2]).fit(x, y)
    assert not any(bool(np.any(p.nodes["is_categorical"])) for it in model._predictors for p in it)
    rows, bg = x[:3], x[20:25]
    want = np.array([_brute_shapley(model.predict, r, bg) for r in rows])
    attr = tribute.explain(model, rows, method="tree_shap", baseline=tribute.Background(bg))
    np.testing.assert_allclose(attr.values, want, atol=1e-12)
    assert np.all(attr.values[:, 2] == 0.0)  # never split on
