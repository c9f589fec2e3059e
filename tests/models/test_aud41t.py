"""Audit aud41t: tree_shap on tree models tribute's tests did not use, checked against brute-force
enumeration of the same value function (path-dependent: the cover-weighted expectation walked
on the library's own tree dump; interventional: the model called directly)."""

from __future__ import annotations

import itertools
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from _brute import brute_shapley as _brute_shapley

import tribute
from tribute.errors import UnsupportedModelError

Node = dict[str, Any]


def _pd_value(tree: Node, x: np.ndarray, coalition: set[int]) -> np.ndarray:
    """``E[tree(x) | x_S]`` under the tree's cover (path-dependent TreeSHAP's value function)."""
    left, right, feat, cover, value, go = (tree[k] for k in
                                           ("left", "right", "feature", "cover", "value", "go"))

    def rec(i: int) -> np.ndarray:
        if left[i] < 0:
            return np.asarray(value[i], dtype=np.float64)
        if feat[i] in coalition:
            return rec(left[i]) if go(x[feat[i]], i) else rec(right[i])
        if cover[i] <= 0:
            return np.zeros_like(np.asarray(value[i], dtype=np.float64))
        return np.asarray((cover[left[i]] * rec(left[i]) + cover[right[i]] * rec(right[i]))
                          / cover[i])

    return rec(0)


def _brute_path_dependent(trees: list[Node], x: np.ndarray, offset: Any = 0.0
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Shapley values (``features x outputs``) and base value of the path-dependent game."""
    n = x.shape[0]
    val = {s: offset + sum(_pd_value(t, x, set(s)) for t in trees)
           for r in range(n + 1) for s in itertools.combinations(range(n), r)}
    phi = np.zeros((n, np.size(val[()])))
    for i in range(n):
        for s, v in val.items():
            if i not in s:
                w = math.factorial(len(s)) * math.factorial(n - len(s) - 1) / math.factorial(n)
                phi[i] += w * (val[tuple(sorted((*s, i)))] - v)
    return phi, np.atleast_1d(val[()])


def _sk_tree(tree_: Any, scale: float = 1.0) -> Node:
    thr = tree_.threshold

    def go(v: float, i: int) -> bool:
        return bool(np.float32(v) <= thr[i])

    return {"left": tree_.children_left, "right": tree_.children_right,
            "feature": tree_.feature, "cover": tree_.weighted_n_node_samples,
            "value": tree_.value[:, 0, :] * scale, "go": go}


def test_gradient_boosting_with_a_tree_init_reads_the_init_trees():
    """A GradientBoostingRegressor's raw output is ``init_.predict(x) + trees``; the reader took
    ``init_`` for the constant it predicts at the row of zeros. With ``init=`` a tree, rows on
    the zero row's side of its split passed the reading check, and the path-dependent values
    left the init tree out silently: feature 0 credited 0.000 where the truth is -0.86, base
    value 0.03 where it is 0.89."""
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.default_rng(18)
    x = rng.normal(size=(400, 3))
    y = 3.0 * (x[:, 0] > 0.5) + x[:, 1] * x[:, 2]
    model = GradientBoostingRegressor(n_estimators=4, max_depth=2, random_state=0,
                                      init=DecisionTreeRegressor(max_depth=1)).fit(x, y)
    f, t = model.init_.tree_.feature[0], model.init_.tree_.threshold[0]
    rows = x[(x[:, f] <= t) == (0.0 <= t)][:3]  # where the old reading passed its check
    trees = [_sk_tree(model.init_.tree_)] + [_sk_tree(e.tree_, model.learning_rate)
                                             for e in model.estimators_[:, 0]]
    attr = tribute.explain(model, rows, method="tree_shap")
    for k, r in enumerate(rows):
        phi, base = _brute_path_dependent(trees, r)
        np.testing.assert_allclose(attr.values[k], phi[:, 0], atol=1e-12)
        assert attr.base_values is not None
        np.testing.assert_allclose(attr.base_values[k], base[0], atol=1e-12)
    bg = x[100:106]
    attr = tribute.explain(model, rows, method="tree_shap", baseline=tribute.Background(bg))
    want = np.array([_brute_shapley(model.predict, r, bg) for r in rows])
    np.testing.assert_allclose(attr.values, want, atol=1e-12)
    # an initial model that is not a sum of trees is refused, naming it
    from sklearn.linear_model import LogisticRegression

    for other, init in ((GradientBoostingRegressor(n_estimators=3, init=LinearRegression()),
                         "LinearRegression"),
                        (GradientBoostingClassifier(n_estimators=3, init=LogisticRegression()),
                         "LogisticRegression")):
        other.fit(x, y > 1 if init == "LogisticRegression" else y)
        with pytest.raises(UnsupportedModelError, match=f"init={init}.*exact_shapley"):
            tribute.explain(other, x[:2], method="tree_shap")


def _catboost_nested(model: Any, n_out: int) -> tuple[list[Node], np.ndarray]:
    """The non-symmetric trees of a CatBoost JSON dump, read here independently of tribute."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.json")
        model.save_model(path, format="json")
        with open(path, encoding="utf-8") as fh:
            dump = json.load(fh)
    scale, bias = dump["scale_and_bias"]
    nan_right = {f["flat_feature_index"]: f.get("nan_value_treatment") == "AsTrue"
                 for f in dump["features_info"]["float_features"]}
    out = []
    for root in dump["trees"]:
        left: list[int] = []
        right: list[int] = []
        feat: list[int] = []
        thr: list[float] = []
        cover: list[float] = []
        value: list[np.ndarray] = []

        def build(nd: Node, left: list[int] = left, right: list[int] = right,
                  feat: list[int] = feat, thr: list[float] = thr, cover: list[float] = cover,
                  value: list[np.ndarray] = value) -> int:
            i = len(left)
            left.append(-1)
            right.append(-1)
            feat.append(-1)
            thr.append(0.0)
            cover.append(0.0)
            value.append(np.zeros(n_out))
            if "split" in nd:
                feat[i] = nd["split"]["float_feature_index"]
                thr[i] = nd["split"]["border"]
                lo, hi = build(nd["left"]), build(nd["right"])
                left[i], right[i], cover[i] = lo, hi, cover[lo] + cover[hi]
            else:
                cover[i] = nd["weight"]
                value[i] = np.atleast_1d(nd["value"]) * scale
            return i

        build(root)
        t_arr, f_arr = np.array(thr), np.array(feat)

        def go(v: float, i: int, t_arr: np.ndarray = t_arr, f_arr: np.ndarray = f_arr) -> bool:
            if np.isnan(v):  # nan_mode Min: NaN is below every border
                return not nan_right[int(f_arr[i])]
            return not bool(np.float32(v) > np.float32(t_arr[i]))

        out.append({"left": np.array(left), "right": np.array(right), "feature": f_arr,
                    "cover": np.array(cover), "value": np.array(value), "go": go})
    return out, np.atleast_1d(np.asarray(bias, dtype=np.float64))


@pytest.mark.parametrize("grow", [{"grow_policy": "Depthwise", "depth": 3},
                                  {"grow_policy": "Lossguide", "max_leaves": 6, "depth": 4}])
def test_catboost_non_symmetric_trees_are_read(grow: dict[str, Any]):
    """CatBoost's Depthwise / Lossguide trees are nested, not symmetric: tree_shap crashed with
    a bare ``IndexError`` (path-dependent) or refused the model as unreadable (interventional)."""
    cb = pytest.importorskip("catboost")
    rng = np.random.default_rng(20)
    x = rng.normal(size=(300, 4))
    x[rng.random(x.shape) < 0.1] = np.nan
    z = np.nan_to_num(x)
    y = z[:, 0] + 2 * z[:, 1] * z[:, 2]
    rows = x[:3].copy()
    rows[0, 0] = np.nan
    bg = x[60:65]
    for y_fit, cls in ((y, cb.CatBoostRegressor), (np.digitize(y, [-1, 1]), cb.CatBoostClassifier)):
        model = cls(iterations=4, verbose=0, random_seed=0, thread_count=1, **grow).fit(x, y_fit)

        def margin(r: np.ndarray, model: Any = model) -> np.ndarray:
            return np.asarray(model.predict(r, prediction_type="RawFormulaVal")).reshape(len(r), -1)

        n_out = margin(rows).shape[1]
        trees, bias = _catboost_nested(model, n_out)
        for t in range(n_out) if n_out > 1 else [None]:
            col = t or 0
            attr = tribute.explain(model, rows, method="tree_shap", target=t)
            assert attr.base_values is not None
            for k, r in enumerate(rows):
                phi, base = _brute_path_dependent(trees, r, bias)
                np.testing.assert_allclose(attr.values[k], phi[:, col], atol=1e-12)
                np.testing.assert_allclose(attr.base_values[k], base[col], atol=1e-12)
            attr = tribute.explain(model, rows, method="tree_shap", target=t,
                                   baseline=tribute.Background(bg))
            want = np.array([_brute_shapley(lambda q, col=col: margin(q)[:, col], r, bg)
                             for r in rows])
            np.testing.assert_allclose(attr.values, want, atol=1e-12)


def test_catboost_multi_rmse_is_read_per_output():
    """``loss_function="MultiRMSE"`` (one prediction per target, identity link) was refused as a
    loss with "no known link"."""
    cb = pytest.importorskip("catboost")
    rng = np.random.default_rng(21)
    x = rng.normal(size=(300, 4))
    y = np.stack([x[:, 0] + x[:, 1] * x[:, 2], x[:, 3] - x[:, 0]], 1)
    model = cb.CatBoostRegressor(iterations=4, depth=3, loss_function="MultiRMSE", verbose=0,
                                 random_seed=0, thread_count=1).fit(x, y)
    rows, bg = x[:3], x[50:55]
    for t in (0, 1):
        attr = tribute.explain(model, rows, method="tree_shap", target=t,
                               baseline=tribute.Background(bg))
        want = np.array([_brute_shapley(lambda q, t=t: model.predict(q)[:, t], r, bg)
                         for r in rows])
        np.testing.assert_allclose(attr.values, want, atol=1e-12)


def test_xgboost_multi_target_regressors_are_read_per_target():
    """A 2-d ``y`` (or several ``quantile_alpha``) grows one tree per target per round: refused
    as "raw output has 2 columns but its trees give 1". ``multi_strategy="multi_output_tree"``
    crashed in the dump with a bare XGBoostError: now refused naming the option."""
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(19)
    x = rng.normal(size=(300, 4))
    y = np.stack([x[:, 0] + 2 * x[:, 1] * x[:, 2], x[:, 3] - x[:, 0]], 1)
    rows, bg = x[:3], x[50:55]
    for model in (xgb.XGBRegressor(n_estimators=4, max_depth=3, n_jobs=1).fit(x, y),
                  xgb.XGBRegressor(n_estimators=3, max_depth=3, n_jobs=1, objective="reg:quantileerror",
                                   quantile_alpha=[0.2, 0.5, 0.9]).fit(x, y[:, 0])):
        n_out = model.predict(rows).shape[1]
        contribs = model.get_booster().predict(xgb.DMatrix(rows), pred_contribs=True)
        for t in range(n_out):
            attr = tribute.explain(model, rows, method="tree_shap", target=t)
            # XGBoost's own path-dependent TreeSHAP (float32)
            np.testing.assert_allclose(attr.values, contribs[:, t, :-1], atol=1e-6)
            attr = tribute.explain(model, rows, method="tree_shap", target=t,
                                   baseline=tribute.Background(bg))
            want = np.array([_brute_shapley(lambda q, t=t, m=model: m.predict(q)[:, t], r, bg)
                             for r in rows])
            np.testing.assert_allclose(attr.values, want, atol=1e-6)
    vec = xgb.XGBRegressor(n_estimators=2, max_depth=2, tree_method="hist", n_jobs=1,
                           multi_strategy="multi_output_tree").fit(x, y)
    with pytest.raises(UnsupportedModelError, match=r"multi_output_tree.*one_output_per_tree"):
        tribute.explain(vec, rows, method="tree_shap", target=0)


def test_xgboost_aft_and_squared_log_error_objectives():
    """``survival:aft`` predicts ``exp(margin)`` and ``reg:squaredlogerror`` the margin itself:
    both were refused as "a custom objective?" with no known link."""
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(22)
    x = rng.normal(size=(300, 4))
    t = np.exp((x[:, 0] + x[:, 1] * x[:, 2]) / 3)
    rows, bg = x[:3], x[50:55]
    dm = xgb.DMatrix(x, label_lower_bound=t, label_upper_bound=t * 1.5, nthread=1)
    aft = xgb.train({"objective": "survival:aft", "max_depth": 3, "nthread": 1}, dm,
                    num_boost_round=4)
    sql = xgb.XGBRegressor(n_estimators=4, max_depth=3, n_jobs=1,
                           objective="reg:squaredlogerror").fit(x, t)
    for model, margin in (
            (aft, lambda q: aft.predict(xgb.DMatrix(q), output_margin=True)),
            (sql, lambda q: sql.predict(q, output_margin=True))):
        attr = tribute.explain(model, rows, method="tree_shap", baseline=tribute.Background(bg))
        want = np.array([_brute_shapley(margin, r, bg) for r in rows])
        np.testing.assert_allclose(attr.values, want, atol=1e-6)
    assert "log of the prediction" in attr_explained(aft, rows)


def attr_explained(model: Any, rows: np.ndarray) -> str:
    return str(tribute.explain(model, rows, method="tree_shap").params["explained"])


def test_lightgbm_linear_trees_are_refused_naming_linear_tree():
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(23)
    x = rng.normal(size=(300, 3))
    model = lgb.LGBMRegressor(linear_tree=True, n_estimators=3, verbose=-1).fit(
        x, x[:, 0] + x[:, 1] * x[:, 2])
    with pytest.raises(UnsupportedModelError, match=r"linear_tree=True.*exact_shapley"):
        tribute.explain(model, x[:2], method="tree_shap")
    with pytest.raises(UnsupportedModelError, match=r"linear_tree=True.*exact_shapley"):
        tribute.explain(model, x[:2], method="tree_shap", baseline=tribute.Background(x[10:14]))


def _scaled_sigmoid_models() -> list[tuple[str, Any]]:
    from sklearn.ensemble import GradientBoostingClassifier

    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] + 2 * x[:, 1] * x[:, 2] > 0.2).astype(int)
    out: list[tuple[str, Any]] = [("exponential", GradientBoostingClassifier(
        loss="exponential", n_estimators=6, max_depth=2, random_state=0).fit(x, y))]
    try:
        import lightgbm as lgb
    except ImportError:  # pragma: no cover
        return out
    out.append(("sigmoid=2", lgb.LGBMClassifier(sigmoid=2.0, n_estimators=6, num_leaves=7,
                                                min_child_samples=5, verbose=-1).fit(x, y)))
    return out


@pytest.mark.parametrize("name", ["exponential", "sigmoid=2"])
def test_log_odds_of_a_scaled_sigmoid_are_twice_the_margin(name: str):
    """``p = sigmoid(2 m)`` for scikit-learn's exponential loss and LightGBM ``sigmoid=2``: the
    margin ``m`` is half the log-odds, but ``params["explained"]`` called it "margin (log-odds)"
    and ``output='logit'`` (``2 m``, additive too) was refused."""
    models = dict(_scaled_sigmoid_models())
    if name not in models:
        pytest.skip("lightgbm is not installed")
    model = models[name]
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 4))
    rows, bg = x[:3], x[60:66]

    def logit(q: np.ndarray) -> np.ndarray:
        p = model.predict_proba(q)[:, 1]
        return np.asarray(np.log(p / (1 - p)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for target, sign in ((1, 1.0), (0, -1.0)):
            attr = tribute.explain(model, rows, method="tree_shap", target=target,
                                   output="logit", baseline=tribute.Background(bg))
            want = np.array([_brute_shapley(logit, r, bg) for r in rows]) * sign
            np.testing.assert_allclose(attr.values, want, atol=1e-9)
            assert attr.full_values is not None
            np.testing.assert_allclose(attr.full_values, sign * logit(rows), atol=1e-9)
            assert attr.params["explained"].startswith("log-odds (2 x the margin)")
        raw = tribute.explain(model, rows, method="tree_shap", target=1,
                              baseline=tribute.Background(bg))
    np.testing.assert_allclose(raw.values, attr.values * -0.5, atol=1e-9)
    assert "the log-odds / 2" in raw.params["explained"]


def test_pipeline_columns_whose_names_prefix_each_other_are_traced():
    """Encoded columns were traced to the input whose name they start with: with columns
    "num" and "num_b", KBinsDiscretizer's "num_b_0.0" started with both, and a column-wise
    pipeline was refused. SplineTransformer (one basis per column) was refused as not known to
    act column by column."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import (
        KBinsDiscretizer,
        OneHotEncoder,
        SplineTransformer,
        StandardScaler,
    )

    rng = np.random.default_rng(11)
    n = 300
    df = pd.DataFrame({"num": rng.normal(size=n), "num_b": rng.normal(size=n),
                       "city": rng.choice(["x", "y", "z"], n), "k": rng.normal(size=n)})
    y = df["num"] + (df["city"] == "x") * 2 + df["num_b"] * df["k"]
    cols = list(df.columns)
    pipes = [
        make_pipeline(ColumnTransformer([
            ("s", StandardScaler(), ["num", "k"]),
            ("b", KBinsDiscretizer(n_bins=3, encode="onehot", strategy="uniform"),
             ["num", "num_b"]),
            ("o", OneHotEncoder(), ["city"])]),
            RandomForestRegressor(n_estimators=3, max_depth=4, random_state=0)),
        make_pipeline(ColumnTransformer([
            ("sp", SplineTransformer(n_knots=3), ["num", "num_b", "k"]),
            ("o", OneHotEncoder(), ["city"])]),
            RandomForestRegressor(n_estimators=3, max_depth=4, random_state=0)),
    ]
    rows, bg = df.iloc[:2], df.iloc[100:104]

    def brute(f: Callable[[Any], np.ndarray], r: Any) -> np.ndarray:
        val = {}
        for k in range(len(cols) + 1):
            for s in itertools.combinations(range(len(cols)), k):
                b = bg.copy()
                for i in s:
                    b[cols[i]] = r[cols[i]]
                val[s] = float(np.mean(f(b)))
        m = len(cols)
        return np.array([sum(math.factorial(len(s)) * math.factorial(m - len(s) - 1)
                             / math.factorial(m) * (val[tuple(sorted((*s, i)))] - v)
                             for s, v in val.items() if i not in s) for i in range(m)])

    for pipe in pipes:
        pipe.fit(df, y)
        attr = tribute.explain(pipe, rows, method="tree_shap", baseline=tribute.Background(bg))
        want = np.array([brute(pipe.predict, rows.iloc[i]) for i in range(len(rows))])
        np.testing.assert_allclose(attr.values, want, atol=1e-12)


def test_unread_scikit_learn_ensembles_are_refused_naming_the_alternatives():
    """IsolationForest, AdaBoost, Bagging: refused without saying what to use instead."""
    from sklearn.ensemble import AdaBoostRegressor, BaggingRegressor, IsolationForest

    rng = np.random.default_rng(24)
    x = rng.normal(size=(100, 3))
    y = x[:, 0] + x[:, 1]
    for model in (IsolationForest(n_estimators=3, random_state=0).fit(x),
                  AdaBoostRegressor(n_estimators=2, random_state=0).fit(x, y),
                  BaggingRegressor(n_estimators=2, random_state=0).fit(x, y)):
        with pytest.raises(UnsupportedModelError,
                           match=rf"{type(model).__name__}.*method='exact_shapley'"):
            tribute.explain(model, x[:2], method="tree_shap")
