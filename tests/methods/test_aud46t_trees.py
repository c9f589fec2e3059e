"""aud46t (stop 46): tree_shap on inputs exactly at, and one float step either side of, the
trees' own thresholds (float64 thresholds, their float32 roundings), and NaN inputs routed
by each model's missing-value rule; interventional values vs enumeration of every coalition
through the model's own ``predict``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tribute
from tribute_testing import interventional_enumeration


def _near(th: float) -> list[float]:
    t32 = np.float32(th)
    return [th, float(np.nextafter(th, np.inf)), float(np.nextafter(th, -np.inf)), float(t32),
            float(np.nextafter(t32, np.float32(np.inf))), float(np.nextafter(t32, np.float32(-np.inf))),
            np.nan]


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    X[:, 2] = np.round(X[:, 2], 1)  # duplicate values: thresholds on exact midpoints
    X[rng.random(200) < 0.15, 1] = np.nan
    y = X[:, 0] + (np.nan_to_num(X[:, 1], nan=2.0) > 0) * 2 + X[:, 2] ** 2
    return X, y


def _sklearn_thresholds(m: Any) -> list[tuple[int, float]]:
    trees = [e.tree_ for e in np.ravel(m.estimators_)] if hasattr(m, "estimators_") else [m.tree_]
    return [(int(t.feature[k]), float(t.threshold[k])) for t in trees[:2]
            for k in np.where(t.children_left >= 0)[0][:4]]


def _hgb_thresholds(m: Any) -> list[tuple[int, float]]:
    return [(int(nd["feature_idx"]), float(nd["num_threshold"])) for p in m._predictors[:2]
            for nd in p[0].nodes[:6] if not nd["is_leaf"]]


def _rows(X: np.ndarray, splits: list[tuple[int, float]]) -> np.ndarray:
    out = []
    for i, (f, th) in enumerate(splits):
        for v in _near(th):
            r = X[(7 * i) % X.shape[0]].copy()
            r[f] = v
            out.append(r)
    return np.array(out)


@pytest.mark.parametrize("kind", ["dt", "rf", "hgb"])
def test_sklearn_exact_threshold_and_nan_match_enumeration(kind: str) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.tree import DecisionTreeRegressor

    X, y = _data()
    m: Any
    if kind == "dt":
        m = DecisionTreeRegressor(max_depth=5, random_state=0).fit(X, y)
    elif kind == "rf":
        m = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
    else:
        m = HistGradientBoostingRegressor(max_iter=10, random_state=0).fit(X, y)
    splits = _hgb_thresholds(m) if kind == "hgb" else _sklearn_thresholds(m)
    xs = _rows(X, splits)
    bg = X[:6]
    a = tribute.explain(m, xs, method="tree_shap", baseline=bg)
    np.testing.assert_allclose(np.asarray(a.values), interventional_enumeration(m.predict, xs, bg), atol=1e-12)


def test_xgboost_exact_float32_threshold_matches_enumeration() -> None:
    xgb = pytest.importorskip("xgboost")
    import json

    X, y = _data()
    m = xgb.XGBRegressor(n_estimators=4, max_depth=3).fit(X, y)
    splits: list[tuple[int, float]] = []

    def walk(n: dict[str, Any]) -> None:
        if "split" in n:
            splits.append((int(n["split"][1:]), float(n["split_condition"])))
            for c in n["children"]:
                walk(c)

    for t in m.get_booster().get_dump(dump_format="json")[:2]:
        walk(json.loads(t))
    xs = _rows(X, splits[:6])
    bg = X[:6]
    a = tribute.explain(m, xs, method="tree_shap", baseline=bg)
    # float32 leaves: agreement to float32 rounding, far below any routing error (leaf gaps ~0.1)
    np.testing.assert_allclose(np.asarray(a.values), interventional_enumeration(m.predict, xs, bg), atol=2e-6)
