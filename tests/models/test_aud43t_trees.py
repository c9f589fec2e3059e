"""aud43t: tree_shap on an XGBoost model fitted on a DataFrame with bool columns.

XGBoost types a bool column as an indicator feature (``"i"``) and its JSON dump writes a split on
one without a threshold or a missing direction (``"split"``, ``"yes"``, ``"no"`` only). The
reader took every split without a threshold for a categorical split and refused the model
("XGBoost categorical splits are not supported"), though these are ordinary numeric splits
``x < split_condition`` (``split_type`` 0 in the saved model).

Truths are computed outside tribute: interventional Shapley values by enumerating the 2^3
coalitions of the model's own ``predict`` on the background rows with the absent columns
replaced; path-dependent ones from ``shap.TreeExplainer`` (which reads the saved model).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

import tribute

xgboost = pytest.importorskip("xgboost")
pd = pytest.importorskip("pandas")


def _frame() -> tuple[Any, np.ndarray]:
    rng = np.random.default_rng(9)
    n = 300
    df = pd.DataFrame({"num": rng.normal(size=n), "flag": rng.random(n) > 0.5,
                       "b2": rng.random(n) > 0.3})
    df.loc[rng.random(n) < 0.1, "num"] = np.nan
    y = np.nan_to_num(df.num.to_numpy()) + df.flag.to_numpy() - 2.0 * (df.b2 & df.flag).to_numpy()
    return df, y


def _enumerated(model: Any, xs: Any, bg: Any) -> np.ndarray:
    """Interventional Shapley values (``rows x columns``) of ``model.predict`` at the rows of
    ``xs``: every coalition's composed rows (absent columns from ``bg``) in one predict call."""
    cols = list(bg.columns)
    d, m = len(cols), len(bg)
    coalitions = [s for r in range(d + 1) for s in itertools.combinations(range(d), r)]
    parts = []
    for i in range(len(xs)):
        for s in coalitions:
            rows = bg.copy()
            for j in s:
                rows[cols[j]] = pd.Series([xs.iloc[i][cols[j]]] * m, dtype=bg[cols[j]].dtype)
            parts.append(rows)
    pred = np.asarray(model.predict(pd.concat(parts, ignore_index=True)), dtype=np.float64)
    means = pred.reshape(len(xs), len(coalitions), m).mean(-1)
    phi = np.zeros((len(xs), d))
    for r in range(len(xs)):
        vals = dict(zip(coalitions, means[r]))
        for i in range(d):
            for s, v in vals.items():
                if i not in s:
                    w = math.factorial(len(s)) * math.factorial(d - len(s) - 1) / math.factorial(d)
                    phi[r, i] += w * (vals[tuple(sorted((*s, i)))] - v)
    return phi


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_xgboost_bool_columns_are_read_not_refused_as_categorical(kernel: str) -> None:
    df, y = _frame()
    model = xgboost.XGBRegressor(n_estimators=10, max_depth=3).fit(df, y)
    assert "i" in model.get_booster().feature_types  # the bool columns are indicator features
    xs, bg = df[:6], df[100:130].reset_index(drop=True)
    if kernel == "compiled":
        pytest.importorskip("numba")
    got = tribute.explain(model, xs, method="tree_shap", baseline=tribute.Background(bg),
                          kernel=kernel)
    truth = _enumerated(model, xs, bg)
    # float32 trees: XGBoost's own predictions carry float32 rounding
    np.testing.assert_allclose(np.asarray(got.values), truth, rtol=0, atol=1e-6)
    assert np.abs(truth[:, 1:]).max() > 0.1  # the bool columns carry credit


def test_xgboost_bool_columns_path_dependent_equals_shap() -> None:
    shap = pytest.importorskip("shap")
    df, y = _frame()
    model = xgboost.XGBRegressor(n_estimators=10, max_depth=3).fit(df, y)
    xs = df[:6]
    got = tribute.explain(model, xs, method="tree_shap")
    want = np.asarray(shap.TreeExplainer(model).shap_values(xs))
    np.testing.assert_allclose(np.asarray(got.values), want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(got.values).sum(1) + got.base_values,
                               model.predict(xs), rtol=0, atol=1e-5)


def test_xgboost_booster_with_indicator_feature_types() -> None:
    """A Booster trained on a DMatrix declaring indicator features, explained on plain floats
    (values other than 0/1 included: the split is ``x < split_condition``)."""
    df, y = _frame()
    x = df.astype(float).to_numpy()
    x[:3, 1] = [0.5, 2.0, -1.0]
    types = ["float", "i", "i"]
    bst = xgboost.train({"max_depth": 3}, xgboost.DMatrix(x, label=y, feature_types=types), 5)
    got = tribute.explain(bst, x[:8], method="tree_shap", baseline=x[200:220])
    margin = bst.predict(xgboost.DMatrix(x[:8], feature_types=types), output_margin=True)
    base = bst.predict(xgboost.DMatrix(x[200:220], feature_types=types), output_margin=True).mean()
    np.testing.assert_allclose(np.asarray(got.values).sum(1), margin - base, rtol=0, atol=1e-5)
