"""aud52r (stop 52): tree readers against the model's own prediction on inputs its library reads
specially — LightGBM reads ``|x| <= 1e-35f`` as exactly 0 — with interventional values checked
against enumeration of every coalition through ``predict`` and path-dependent values against
LightGBM's own ``pred_contrib``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tribute
from tribute_testing import interventional_enumeration

_K = float(np.float32(1e-35))  # LightGBM's kZeroThreshold


@pytest.mark.parametrize("params", [{}, {"zero_as_missing": True}], ids=["none", "zero_as_missing"])
@pytest.mark.parametrize("kernel", ["compiled", "numpy"])
def test_lightgbm_reads_tiny_inputs_as_zero(params: dict[str, bool], kernel: str) -> None:
    """A split at 0 is stored as ``x <= -1.0000000180025095e-35`` (``-kZeroThreshold``); the
    input ``-kZeroThreshold`` itself, and with ``zero_as_missing`` any ``|x| <= 1e-35f``, is
    read as 0 by LightGBM (it went left, and was not missing, in tribute's reading: credits up
    to 0.15 off enumeration, or a refusal when an explained row itself was affected)."""
    lightgbm = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    X[:, 0] = np.round(X[:, 0], 1)  # exact zeros: LightGBM splits them at -kZeroThreshold
    y = 2.0 * (X[:, 0] >= 0) + (X[:, 0] > 0) + X[:, 1] + 0.5 * X[:, 2] * (X[:, 0] < 0)
    m = lightgbm.LGBMRegressor(n_estimators=4, num_leaves=6, min_child_samples=3, verbose=-1,
                               n_jobs=1, **params).fit(X, y)
    splits = [n["threshold"] for t in m.booster_.dump_model()["tree_info"]
              for n in [t["tree_structure"]] if "threshold" in n]
    assert -_K in splits  # the case under test: a root split at -kZeroThreshold
    x = X[:6].copy()
    x[:, 0] = [-_K, float(np.nextafter(_K, 0.0)), -float(np.nextafter(_K, 0.0)), _K, 0.0, 0.3]
    bg = X[[10, 11, 12, 13]]
    bg[1, 0] = -_K

    def f(r: np.ndarray) -> np.ndarray:
        return np.asarray(m.predict(r), np.float64)

    a = tribute.explain(m, x, method="tree_shap", baseline=tribute.Background(bg), kernel=kernel)
    np.testing.assert_allclose(np.asarray(a.values), interventional_enumeration(f, x, bg), atol=1e-12)
    p = tribute.explain(m, x, method="tree_shap", kernel=kernel)
    own = m.booster_.predict(x, pred_contrib=True)
    np.testing.assert_allclose(np.asarray(p.values), own[:, :-1], atol=1e-12)
    np.testing.assert_allclose(np.asarray(p.base_values), own[:, -1], atol=1e-12)


def test_tiny_inputs_of_other_libraries_are_read_as_they_are() -> None:
    """The snap is LightGBM's alone: XGBoost splits -2e-35, -1e-36, 0 and 1e-36 apart and
    tree_shap reads them as it does (values vs enumeration through its own predict)."""
    xgboost = pytest.importorskip("xgboost")
    X = np.array([[-2e-35, 0.0], [-1e-36, 1.0], [0.0, 0.0], [1e-36, 1.0]] * 10)
    y = np.array([0.0, 1.0, 2.0, 3.0] * 10)
    m = xgboost.XGBRegressor(tree_method="exact", n_estimators=2, max_depth=3, learning_rate=1.0,
                             min_child_weight=0, n_jobs=1).fit(X, y)
    x = X[:4]
    a = tribute.explain(m, x, method="tree_shap", baseline=tribute.Background(X[2:3]))
    want = interventional_enumeration(lambda r: m.predict(r), x, X[2:3])
    np.testing.assert_allclose(np.asarray(a.values), want, atol=1e-5)
    assert np.abs(want[:, 0]).max() > 0.5  # the tiny values are split apart


def _log_link_hgb(loss: str) -> tuple[Any, np.ndarray]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    X[rng.random(200) < 0.1, 1] = np.nan
    y = np.exp(0.5 * X[:, 0] + 0.3 * np.nan_to_num(X[:, 1]) * X[:, 2]) + 0.1
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # (OpenMP threads on a busy machine: seconds for 200 rows)
        return HistGradientBoostingRegressor(loss=loss, max_iter=5, max_depth=3).fit(X, y), X


@pytest.mark.parametrize("loss", ["poisson", "gamma"])
def test_hist_gradient_boosting_with_a_log_link_explains_its_margin(loss: str) -> None:
    """A HistGradientBoostingRegressor with a Poisson / Gamma loss predicts ``exp(margin)``:
    tree_shap explains the margin, as for XGBoost's and LightGBM's log-link models (it was
    refused, "predicts through a link function"): interventional values equal enumeration of
    ``log(predict)``, path-dependent full values are ``log(predict)``."""
    m, X = _log_link_hgb(loss)
    x, bg = X[:4], X[10:14]

    def margin(r: np.ndarray) -> np.ndarray:
        return np.asarray(np.log(m.predict(r)))

    a = tribute.explain(m, x, method="tree_shap", baseline=tribute.Background(bg))
    np.testing.assert_allclose(np.asarray(a.values), interventional_enumeration(margin, x, bg), atol=1e-12)
    assert "log of the prediction" in a.params["explained"]
    p = tribute.explain(m, x, method="tree_shap")
    np.testing.assert_allclose(np.asarray(p.full_values), margin(x), atol=1e-12)
    np.testing.assert_allclose(np.asarray(p.values).sum(-1), margin(x) - np.asarray(p.base_values), atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["poisson", "gamma"])
def test_hist_gradient_boosting_log_link_path_dependent_equals_shap(loss: str) -> None:
    """Path-dependent values of the log-link model equal shap's TreeExplainer (which reads the
    same trees and explains the same margin)."""
    shap = pytest.importorskip("shap")
    m, X = _log_link_hgb(loss)
    p = tribute.explain(m, X[:4], method="tree_shap")
    np.testing.assert_allclose(np.asarray(p.values), shap.TreeExplainer(m).shap_values(X[:4]),
                               atol=1e-12)


def test_lightgbm_reg_sqrt_is_refused_by_name() -> None:
    """``reg_sqrt=True`` predicts ``sign(s) s^2`` of the trees' sum: refused naming it (the
    game check refused it blaming early stopping or a LightGBM random forest)."""
    lightgbm = pytest.importorskip("lightgbm")
    from tribute.errors import UnsupportedModelError

    rng = np.random.default_rng(2)
    X = rng.normal(size=(100, 3))
    m = lightgbm.LGBMRegressor(reg_sqrt=True, n_estimators=3, verbose=-1, n_jobs=1).fit(
        X, np.abs(X[:, 0]) + 1.0)
    with pytest.raises(UnsupportedModelError, match="reg_sqrt=True"):
        tribute.explain(m, X[:2], method="tree_shap")


@pytest.mark.parametrize("loss", ["YetiRank", "QueryRMSE"])
def test_catboost_rankers_are_explained_as_their_score(loss: str) -> None:
    """A CatBoostRanker's prediction is its raw score (an identity link); it was refused as
    "no known link" (and its ``predict`` takes no ``prediction_type``, which the reader
    passed). Interventional values equal enumeration of ``predict``; full values are it."""
    catboost = pytest.importorskip("catboost")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 3))
    y = X[:, 0] + (X[:, 1] > 0) + 0.1 * rng.normal(size=120)
    m = catboost.CatBoostRanker(loss_function=loss, iterations=4, depth=2, thread_count=1,
                                random_seed=0, allow_writing_files=False, verbose=False).fit(
        X, np.digitize(y, [0.0, 1.0]) if loss == "YetiRank" else y,
        group_id=np.repeat(np.arange(12), 10))
    x, bg = X[:4], X[10:14]
    a = tribute.explain(m, x, method="tree_shap", baseline=tribute.Background(bg))
    np.testing.assert_allclose(np.asarray(a.values), interventional_enumeration(m.predict, x, bg), atol=1e-12)
    p = tribute.explain(m, x, method="tree_shap")
    np.testing.assert_allclose(np.asarray(p.full_values), m.predict(x), atol=1e-12)
