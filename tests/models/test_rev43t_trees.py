"""rev43t: XGBoost features of type ``"int"`` (``feature_types`` given by hand to a DMatrix or
to the scikit-learn wrapper; pandas integer columns are typed so too).

XGBoost's JSON dump writes a split on an ``"int"`` feature with its threshold rounded up to an
integer (``x < -0.1506`` is dumped as ``x < 0``), while the model predicts with the real
threshold. tree_shap read the dump: on non-integer inputs it refused most batches ("could not
read this XGBoost model exactly", 0.9 off) and, for rows whose own path missed the rounded
splits, returned path-dependent values silently off by up to 0.24.

Truths are computed outside tribute: interventional values by enumerating all coalitions of the
booster's own ``predict``; path-dependent values by a hand walk of the saved model's arrays
(``save_raw``; the walk is checked to reproduce ``predict``) over all coalitions.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest

import tribute

xgboost = pytest.importorskip("xgboost")

TYPES = ["int", "float", "float", "float"]


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(500, 4))
    y = x[:, 0] + (x[:, 1] > 0.3) + x[:, 2] * x[:, 0] + 0.5 * x[:, 3]
    return x, y


def _shapley(v: dict[tuple[int, ...], float], d: int) -> np.ndarray:
    phi = np.zeros(d)
    for i in range(d):
        for s, val in v.items():
            if i not in s:
                w = math.factorial(len(s)) * math.factorial(d - len(s) - 1) / math.factorial(d)
                phi[i] += w * (v[tuple(sorted((*s, i)))] - val)
    return phi


def _coalitions(d: int) -> list[tuple[int, ...]]:
    return [s for r in range(d + 1) for s in itertools.combinations(range(d), r)]


def _enumerated(margin: Any, xs: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Interventional values at the rows of ``xs``: every coalition's composed rows (absent
    columns from ``bg``) in one ``margin`` call."""
    d, m = xs.shape[1], len(bg)
    coalitions = _coalitions(d)
    parts = []
    for x in xs:
        for s in coalitions:
            rows = bg.copy()
            rows[:, list(s)] = x[list(s)]
            parts.append(rows)
    means = np.asarray(margin(np.concatenate(parts))).reshape(len(xs), len(coalitions), m).mean(-1)
    return np.array([_shapley(dict(zip(coalitions, mr.tolist())), d) for mr in means])


def _walk(t: dict[str, Any], x: np.ndarray, s: set[int] | None, nid: int = 0) -> float:
    """The tree's output at ``x`` knowing only the features in ``s`` (all when None), the
    others averaged over the children by their training hessian (path-dependent)."""
    left, right = t["left_children"][nid], t["right_children"][nid]
    if left < 0:
        return float(t["split_conditions"][nid])  # a leaf's value
    f = t["split_indices"][nid]
    if s is None or f in s:
        v = np.float32(x[f])
        go_left = bool(t["default_left"][nid]) if np.isnan(v) else bool(
            v < np.float32(t["split_conditions"][nid]))
        return _walk(t, x, s, left if go_left else right)
    hl, hr = t["sum_hessian"][left], t["sum_hessian"][right]
    return float((hl * _walk(t, x, s, left) + hr * _walk(t, x, s, right)) / (hl + hr))


def test_int_feature_types_interventional_equals_enumeration() -> None:
    x, y = _data()
    bst = xgboost.train({"max_depth": 3, "nthread": 1}, xgboost.DMatrix(x, label=y, feature_types=TYPES), 8)
    assert '"split_condition": 0,' in bst.get_dump(dump_format="json")[0]  # rounded (-0.15)
    model = xgboost.XGBRegressor(n_estimators=8, max_depth=3, feature_types=TYPES, n_jobs=1).fit(x, y)
    xs, bg = x[:6], x[100:130]
    for m, margin in ((bst, lambda a: bst.predict(xgboost.DMatrix(a), output_margin=True)),
                      (model, lambda a: model.predict(a, output_margin=True))):
        got = tribute.explain(m, xs, method="tree_shap", baseline=tribute.Background(bg))
        np.testing.assert_allclose(np.asarray(got.values), _enumerated(margin, xs, bg),
                                   rtol=0, atol=1e-6)


def test_int_feature_types_path_dependent_equals_hand_walk() -> None:
    x, y = _data()
    bst = xgboost.train({"max_depth": 3, "nthread": 1}, xgboost.DMatrix(x, label=y, feature_types=TYPES), 8)
    trees = json.loads(bst.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
    margin = bst.predict(xgboost.DMatrix(x[:40]), output_margin=True)
    walked = np.array([sum(_walk(t, r, None) for t in trees) for r in x[:40]])
    base = margin[0] - walked[0]
    np.testing.assert_allclose(walked + base, margin, rtol=0, atol=1e-5)  # the walk is the model
    # rows one at a time: rows whose own path misses a rounded split passed the output check
    # and their values were silently wrong (row 287 of this data: 0.24 off)
    for r in (*range(6), 287):
        got = np.asarray(tribute.explain(bst, x[r:r + 1], method="tree_shap").values)[0]
        want = _shapley({s: sum(_walk(t, x[r], set(s)) for t in trees)
                         for s in _coalitions(4)}, 4)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=f"row {r}")


@pytest.mark.parametrize("na_like", [True, False])
def test_nullable_bool_column_with_na_default_direction_both_ways(na_like: bool) -> None:
    """A pandas nullable boolean column with NA is an indicator feature with missing values;
    the NA rows are made to behave like True (default right) or like False (default left), and
    a binary logistic model with base_score is explained on the margin, vs enumeration."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(3)
    n = 400
    flag, b2, na = rng.random(n) > 0.5, rng.random(n) > 0.3, rng.random(n) < 0.15
    num = rng.normal(size=n)
    f = np.where(na, na_like, flag)
    y = num + 3 * f - 2.0 * (b2 & f) > 0.5
    df = pd.DataFrame({"num": num, "flag": pd.array(flag, dtype="boolean"), "b2": b2})
    df.loc[na, "flag"] = pd.NA
    model = xgboost.XGBClassifier(n_estimators=8, max_depth=3, base_score=0.3, n_jobs=1).fit(df, y)
    trees = json.loads(model.get_booster().save_raw("json"))["learner"]["gradient_booster"]
    default_left = {bool(t["default_left"][k]) for t in trees["model"]["trees"]
                    for k, j in enumerate(t["split_indices"]) if j == 1 and t["left_children"][k] >= 0}
    assert default_left == {not na_like}  # the NA rows' direction the test means to exercise
    rows = [*range(4), *np.flatnonzero(na)[:4]]
    xs, bg = df.iloc[rows].reset_index(drop=True), df.iloc[100:124].reset_index(drop=True)
    cols = list(df.columns)
    coalitions = _coalitions(3)
    parts = []
    for i in range(len(xs)):
        for s in coalitions:
            comp = bg.copy()
            for j in s:
                comp[cols[j]] = pd.Series([xs.iloc[i][cols[j]]] * len(bg), dtype=bg[cols[j]].dtype)
            parts.append(comp)
    margin = model.predict(pd.concat(parts, ignore_index=True), output_margin=True)
    means = np.asarray(margin, dtype=np.float64).reshape(len(xs), len(coalitions), -1).mean(-1)
    truth = np.array([_shapley(dict(zip(coalitions, mr.tolist())), 3) for mr in means])
    got = tribute.explain(model, xs, method="tree_shap", baseline=tribute.Background(bg), target=1)
    np.testing.assert_allclose(np.asarray(got.values), truth, rtol=0, atol=1e-6)
    assert np.abs(truth[4:, 1]).max() > 0.1  # the NA rows' flag carries credit
