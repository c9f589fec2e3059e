"""tree_shap: exact against enumeration, parity with shap / XGBoost / LightGBM, bad input.

References:
* the product-game formulas against brute-force enumeration of the Shapley value and the
  Shapley interaction index;
* path-dependent values against enumeration of the path-dependent value function (a plain
  recursive EXPVALUE over the trees, Lundberg et al. 2020 Alg. 1), with and without groups;
* interventional values against ``exact_shapley`` of the same game;
* parity with ``shap.TreeExplainer``, XGBoost ``pred_contribs``/``pred_interactions`` and
  LightGBM ``pred_contrib``.

Deliberate difference: shap's C++ reads scikit-learn thresholds as float32, so on inputs lying
within float32 rounding of a threshold its *interventional* values for scikit-learn forests can
differ from the true game's; tribute follows scikit-learn's own comparison (float32 inputs,
float64 thresholds) and agrees with ``exact_shapley`` there.
"""

from __future__ import annotations

import itertools
from math import factorial

import numpy as np
import pytest

import tribute
from tribute.errors import InputError, UnsupportedModelError
from tribute.methods._tree_math import (
    indicator_interaction_table,
    indicator_shapley_table,
    patterns,
    product_game_interactions,
    product_game_shapley,
)
from tribute.models.trees import parse_trees
from tribute_testing import gap_of

sk_datasets = pytest.importorskip("sklearn.datasets")
from sklearn.ensemble import (  # noqa: E402
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor  # noqa: E402


# --------------------------------------------------------------------------- references
def _shapley_brute(v, d):
    phi = np.zeros(d)
    inter = np.zeros((d, d))
    for j in range(d):
        others = [k for k in range(d) if k != j]
        for r in range(d):
            for s in itertools.combinations(others, r):
                w = factorial(r) * factorial(d - r - 1) / factorial(d)
                phi[j] += w * (v(set(s) | {j}) - v(set(s)))
    for i, j in itertools.permutations(range(d), 2):
        rest = [k for k in range(d) if k not in (i, j)]
        for r in range(d - 1):
            for subset in itertools.combinations(rest, r):
                t = set(subset)
                w = factorial(r) * factorial(d - r - 2) / (2 * factorial(d - 1))
                inter[i, j] += w * (v(t | {i, j}) - v(t | {i}) - v(t | {j}) + v(t))
    for i in range(d):
        inter[i, i] = phi[i] - inter[i].sum()
    return phi, inter


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_product_game_formulas_match_enumeration(d):
    rng = np.random.default_rng(d)
    for _ in range(4):
        z = rng.uniform(0, 1, d)
        o = rng.integers(0, 2, d).astype(float)
        phi, inter = _shapley_brute(lambda s, o=o, z=z: np.prod([o[k] if k in s else z[k] for k in range(d)]), d)
        np.testing.assert_allclose(product_game_shapley(z, o), phi, atol=1e-12)
        np.testing.assert_allclose(product_game_interactions(z, o), inter, atol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 4])
def test_indicator_tables_match_enumeration(d):
    pat = patterns(d)
    t = indicator_shapley_table(d)
    ti = indicator_interaction_table(d)
    for px, pb in itertools.product(range(2**d), repeat=2):
        ox, ob = pat[px], pat[pb]
        phi, inter = _shapley_brute(lambda s, ox=ox, ob=ob: np.prod([ox[k] if k in s else ob[k] for k in range(d)]), d)
        np.testing.assert_allclose(t[px, pb], phi, atol=1e-12)
        np.testing.assert_allclose(ti[px, pb], inter, atol=1e-12)


def _expvalue(ens, x, present):
    """Path-dependent E[f(x) | x_S] by recursion over every tree (Lundberg et al. Alg. 1)."""
    total = ens.offset.copy()
    for t in ens.trees:
        def g(node, t=t):
            if t.left[node] < 0:
                return t.value[node]
            f = t.feature[node]
            if present[f]:
                left = bool(t.go_left(x[None], np.array([node]))[0, 0])
                return g(t.left[node] if left else t.right[node], t)
            cl, cr = t.left[node], t.right[node]
            if t.cover[node] == 0:  # no training weight reached it (cover ratios 0)
                return 0.0 * t.value[node]
            return (t.cover[cl] * g(cl, t) + t.cover[cr] * g(cr, t)) / t.cover[node]
        total = total + g(0)
    return total


def _pd_exact(model, x, groups, n_players, col=0):
    ens = parse_trees(model)
    feats = np.arange(x.shape[0])
    def v(s):
        present = np.isin(groups[feats], list(s)) if s else np.zeros(x.shape[0], bool)
        return _expvalue(ens, x, present)[col]
    return _shapley_brute(v, n_players)[0]


@pytest.fixture(scope="module")
def diabetes():
    return sk_datasets.load_diabetes(return_X_y=True)


@pytest.fixture(scope="module")
def cancer():
    return sk_datasets.load_breast_cancer(return_X_y=True)


def test_path_dependent_equals_enumeration_with_and_without_groups(diabetes):
    X, y = diabetes
    X = X[:, :6]
    model = GradientBoostingRegressor(n_estimators=8, max_depth=3, random_state=0).fit(X, y)
    a = tribute.explain(model, X[:3], method="tree_shap")
    assert a.params["feature_perturbation"] == "tree_path_dependent"
    for i in range(2):
        np.testing.assert_allclose(a.values[i], _pd_exact(model, X[i], np.arange(6), 6), atol=1e-9)
    groups = np.array([0, 0, 1, 2, 2, 1])
    ag = tribute.explain(model, X[:3], method="tree_shap", groups=groups)
    for i in range(2):
        np.testing.assert_allclose(ag.values[i], _pd_exact(model, X[i], groups, 3), atol=1e-9)
    # efficiency: values sum to f(x) - E[f]
    np.testing.assert_allclose(a.values.sum(1) + a.extra["expected_value"][:, 0], model.predict(X[:3]))


@pytest.mark.parametrize("make", [
    lambda: RandomForestRegressor(8, max_depth=5, random_state=0),
    lambda: ExtraTreesRegressor(8, max_depth=5, random_state=0),
    lambda: GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0),
    lambda: HistGradientBoostingRegressor(max_iter=15, random_state=0),
    lambda: DecisionTreeRegressor(max_depth=6, random_state=0),
])
def test_interventional_equals_exact_shapley_of_the_game(diabetes, make):
    X, y = diabetes
    X = X[:, :7]
    model = make().fit(X, y)
    bg = tribute.Background(X[200:212])
    a = tribute.explain(model, X[:4], method="tree_shap", baseline=bg)
    assert a.params["feature_perturbation"] == "interventional"
    e = tribute.explain(model, X[:4], method="exact_shapley", baseline=bg)
    np.testing.assert_allclose(a.values, e.values, atol=1e-8)
    # a single baseline row and per-sample baselines are interventional games too
    for base in (X[300], tribute.PerSample(X[300:304])):
        a1 = tribute.explain(model, X[:4], method="tree_shap", baseline=base,
                             feature_perturbation="interventional")
        e1 = tribute.explain(model, X[:4], method="exact_shapley", baseline=base)
        np.testing.assert_allclose(a1.values, e1.values, atol=1e-8)


def test_forest_classifier_probabilities_equal_exact_shapley(cancer):
    X, y = cancer
    X = X[:, :8]
    model = RandomForestClassifier(10, max_depth=4, random_state=0).fit(X, y)
    bg = tribute.Background(X[100:110])
    a = tribute.explain(model, X[:3], method="tree_shap", baseline=bg, target=1)
    e = tribute.explain(model, X[:3], method="exact_shapley", baseline=bg, target=1)
    np.testing.assert_allclose(a.values, e.values, atol=1e-10)


def test_interactions_rows_sum_to_values_and_match_enumeration(diabetes):
    X, y = diabetes
    X = X[:, :5]
    model = GradientBoostingRegressor(n_estimators=10, max_depth=3, random_state=0).fit(X, y)
    a = tribute.explain(model, X[:2], method="tree_shap", interactions=True)
    it = a.extra["interactions"]
    assert it.shape == (2, 5, 5)
    np.testing.assert_allclose(it.sum(-1), a.values, atol=1e-10)
    np.testing.assert_allclose(it, np.swapaxes(it, 1, 2), atol=1e-12)
    ens = parse_trees(model)
    for i in range(2):
        def v(s, x=X[i]):
            present = np.isin(np.arange(5), list(s)) if s else np.zeros(5, bool)
            return _expvalue(ens, x, present)[0]
        np.testing.assert_allclose(it[i], _shapley_brute(v, 5)[1], atol=1e-9)
    bg = tribute.Background(X[100:106])
    ai = tribute.explain(model, X[:2], method="tree_shap", interactions=True, baseline=bg)
    np.testing.assert_allclose(ai.extra["interactions"].sum(-1), ai.values, atol=1e-10)


# --------------------------------------------------------------------------- parity
shap = pytest.importorskip("shap")


def _shap_values(explainer, X, cls=None):
    sv = np.asarray(explainer.shap_values(X, check_additivity=False))
    if sv.ndim == 3:
        sv = sv[..., cls] if sv.shape[0] == X.shape[0] else sv[cls]
    return sv


@pytest.mark.parametrize(("make", "target"), [
    (lambda: RandomForestClassifier(10, max_depth=6, random_state=0), 1),
    (lambda: DecisionTreeClassifier(max_depth=5, random_state=0), 0),
    (lambda: GradientBoostingClassifier(n_estimators=20, random_state=0), 1),
    (lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0), 1),
])
def test_parity_with_shap_path_dependent_classifiers(cancer, make, target):
    X, y = cancer
    model = make().fit(X, y)
    a = tribute.explain(model, X[:15], method="tree_shap", target=target)
    sv = _shap_values(shap.TreeExplainer(model, feature_perturbation="tree_path_dependent"), X[:15],
                      target)
    if sv.shape != a.values.shape:  # shap gives one margin column for binary boosting
        sv = sv if target == 1 else -sv
    np.testing.assert_allclose(a.values, sv.reshape(a.values.shape), atol=1e-6)


def test_parity_with_shap_interventional_boosting(diabetes):
    X, y = diabetes
    X = np.round(X * 1000)  # exact in float32: see the module docstring on shap's thresholds
    model = GradientBoostingRegressor(n_estimators=30, random_state=0).fit(X, y)
    bg = X[100:140]
    a = tribute.explain(model, X[:10], method="tree_shap", baseline=tribute.Background(bg))
    ex = shap.TreeExplainer(model, data=bg, feature_perturbation="interventional")
    np.testing.assert_allclose(a.values, _shap_values(ex, X[:10]), atol=1e-6)


def test_parity_with_shap_interactions(diabetes):
    X, y = diabetes
    model = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0).fit(X, y)
    a = tribute.explain(model, X[:5], method="tree_shap", interactions=True)
    ref = shap.TreeExplainer(model).shap_interaction_values(X[:5])
    np.testing.assert_allclose(a.extra["interactions"], ref, atol=1e-6)


xgboost = pytest.importorskip("xgboost")


@pytest.mark.parametrize("objective", ["binary:logistic", "multi:softprob", "reg:squarederror"])
def test_parity_with_xgboost_pred_contribs(cancer, objective):
    X, y = cancer
    if objective == "multi:softprob":
        y = np.digitize(X[:, 0], np.quantile(X[:, 0], [0.33, 0.66]))
        model = xgboost.XGBClassifier(n_estimators=12, max_depth=4, objective=objective, n_jobs=1)
    elif objective == "reg:squarederror":
        model = xgboost.XGBRegressor(n_estimators=12, max_depth=4, n_jobs=1)
    else:
        model = xgboost.XGBClassifier(n_estimators=12, max_depth=4, n_jobs=1)
    model.fit(X, y)
    Xe = X[:20].copy()
    Xe[::3, 2] = np.nan  # the trees route missing values; the result must follow them
    dm = xgboost.DMatrix(Xe)
    contribs = model.get_booster().predict(dm, pred_contribs=True)
    inter = model.get_booster().predict(dm, pred_interactions=True)
    from tribute.methods.tree_shap import _Compiled, tree_attributions

    ens = parse_trees(model)
    comp = _Compiled(ens, np.arange(X.shape[1]), X.shape[1])
    classes = np.arange(ens.n_outputs)
    phi, it = tree_attributions(comp, Xe, classes, interactions=True)
    assert it is not None
    if contribs.ndim == 2:
        contribs, inter = contribs[:, None], inter[:, None]
    for c in classes:
        np.testing.assert_allclose(phi[:, :, c], contribs[:, c, :-1], rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(it[:, :, :, c], inter[:, c, :-1, :-1], rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(comp.expected[c], contribs[0, c, -1], rtol=1e-5, atol=1e-5)
    # through the public API (finite inputs): the same numbers
    a = tribute.explain(model, X[:20], method="tree_shap", target=0 if objective != "reg:squarederror" else None)
    assert a.values.shape == (20, X.shape[1])


lightgbm = pytest.importorskip("lightgbm")


def test_parity_with_lightgbm_pred_contrib(diabetes):
    X, y = diabetes
    model = lightgbm.LGBMRegressor(n_estimators=25, num_leaves=15, verbose=-1, n_jobs=1).fit(X, y)
    a = tribute.explain(model, X[:20], method="tree_shap")
    ref = model.predict(X[:20], pred_contrib=True)
    np.testing.assert_allclose(a.values, ref[:, :-1], atol=1e-8)
    np.testing.assert_allclose(a.extra["expected_value"][:, 0], ref[:, -1], atol=1e-8)


# --------------------------------------------------------------------------- contract & bad input
def test_batch_equals_per_sample_and_deterministic(cancer):
    X, y = cancer
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(X, y)
    a = tribute.explain(model, X[:6], method="tree_shap", target=1)
    b = np.concatenate([tribute.explain(model, X[i:i + 1], method="tree_shap", target=1).values
                        for i in range(6)])
    np.testing.assert_allclose(a.values, b, atol=1e-10)
    np.testing.assert_array_equal(a.values, tribute.explain(model, X[:6], method="tree_shap", target=1).values)
    # model calls outside the engine are reported: one offset row + the explained rows
    assert a.params["reading_rows"] == 1 + 6 and a.n_evals == 1
    # binary margin: class 0 is the negated margin
    a0 = tribute.explain(model, X[:6], method="tree_shap", target=0)
    np.testing.assert_allclose(a0.values, -a.values)


def test_bad_input(cancer):
    X, y = cancer
    with pytest.raises((UnsupportedModelError, InputError), match="not fitted"):
        tribute.explain(RandomForestRegressor(), X[:2], method="tree_shap")
    model = xgboost.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(X, y)
    with pytest.raises(UnsupportedModelError, match="margin"):
        tribute.explain(model, X[:2], method="tree_shap", output="prob")
    with pytest.raises(UnsupportedModelError, match=r"tree model|does not know models"):
        tribute.explain(lambda a: a.sum(1), X[:2], method="tree_shap")
    from sklearn.ensemble import RandomForestClassifier

    rf = RandomForestClassifier(3, max_depth=3, random_state=0).fit(X, y)
    with pytest.raises(UnsupportedModelError, match=r"output='kl' .* is not supported.*exact_shapley"):
        tribute.explain(rf, X[:2], method="tree_shap", output="kl")
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(PCA(4), RandomForestRegressor(3)).fit(X, y)
    with pytest.raises(UnsupportedModelError, match="not known to act column by column"):
        tribute.explain(pipe, X[:2], method="tree_shap")
    with pytest.raises((InputError, Exception), match=r"columns|shape"):
        tribute.explain(model, X[:2, :5], method="tree_shap")
    with pytest.raises(InputError, match="feature_perturbation"):
        tribute.explain(model, X[:2], method="tree_shap", feature_perturbation="exact")


def test_interventional_without_tables_equals_exact_shapley(diabetes, monkeypatch):
    """The per-background-row path used for long paths (forced here) is exact too."""
    import importlib

    ts = importlib.import_module("tribute.methods.tree_shap")
    monkeypatch.setattr(ts, "_TABLE_MAX_D_BG", 0)
    X, y = diabetes
    X = X[:, :7]
    model = RandomForestRegressor(6, max_depth=8, random_state=0).fit(X, y)
    bg = tribute.Background(X[200:210])
    a = tribute.explain(model, X[:3], method="tree_shap", baseline=bg, kernel="numpy")
    e = tribute.explain(model, X[:3], method="exact_shapley", baseline=bg)
    np.testing.assert_allclose(a.values, e.values, atol=1e-8)
    ai = tribute.explain(model, X[:2], method="tree_shap", baseline=bg, interactions=True)
    np.testing.assert_allclose(ai.extra["interactions"].sum(-1), ai.values, atol=1e-10)


# --------------------------------------------------------------------------- compiled kernels
numba = pytest.importorskip("numba")


def _models(X, y_reg, y_cls):
    y3 = np.digitize(X[:, 0], np.quantile(X[:, 0], [0.33, 0.66]))
    return [
        ("tree", DecisionTreeRegressor(max_depth=7, random_state=0).fit(X, y_reg), None),
        ("forest-cls", RandomForestClassifier(8, max_depth=9, random_state=0).fit(X, y_cls), 1),
        ("extra", ExtraTreesRegressor(6, max_depth=8, random_state=0).fit(X, y_reg), None),
        ("gb-3class", GradientBoostingClassifier(n_estimators=6, max_depth=3, random_state=0).fit(X, y3), 2),
        ("hgb", HistGradientBoostingRegressor(max_iter=8, random_state=0).fit(X, y_reg), None),
        ("xgb", xgboost.XGBClassifier(n_estimators=15, max_depth=5, n_jobs=1).fit(X, y_cls), 1),
        ("lgbm", lightgbm.LGBMRegressor(n_estimators=12, num_leaves=12, verbose=-1, n_jobs=1).fit(X, y_reg), None),
    ]


def test_compiled_kernels_equal_the_numpy_path(cancer):
    """Both kernels compute the same values on every model kind, path-dependent and
    interventional (a background set and per-sample baselines), with groups."""
    X, y = cancer
    X = X[:, :9]
    y_reg = X[:, 1] * 2 + X[:, 3] + np.sin(X[:, 4])
    models = _models(X, y_reg, y)
    groups = np.array([0, 0, 1, 2, 3, 3, 3, 4, 5])
    for name, model, target in models:
        for kw in ({}, {"baseline": tribute.Background(X[300:312])}, {"baseline": tribute.PerSample(X[400:405])},
                   {"groups": groups}):
            a = tribute.explain(model, X[:5], method="tree_shap", target=target, **kw)
            b = tribute.explain(model, X[:5], method="tree_shap", target=target, kernel="numpy", **kw)
            assert a.params["kernel"] == "compiled" and b.params["kernel"] == "numpy"
            np.testing.assert_allclose(a.values, b.values, atol=1e-10, err_msg=f"{name} {kw}")
            np.testing.assert_allclose(a.extra["expected_value"], b.extra["expected_value"], atol=1e-10)
            assert float(np.abs(gap_of(a)).max()) < 1e-8, name


def test_missing_values_follow_the_models_routing(cancer):
    """NaN inputs are read as the trees route them (public API): XGBoost's own contributions,
    LightGBM's own and the numpy kernel agree; other methods still refuse NaN."""
    X, y = cancer
    model = xgboost.XGBClassifier(n_estimators=12, max_depth=4, n_jobs=1).fit(X, y)
    Xe = X[:12].copy()
    Xe[::3, 2] = np.nan
    Xe[1, 5] = np.nan
    a = tribute.explain(model, Xe, method="tree_shap", target=1)
    ref = model.get_booster().predict(xgboost.DMatrix(Xe), pred_contribs=True)
    np.testing.assert_allclose(a.values, ref[:, :-1], rtol=1e-4, atol=2e-5)
    b = tribute.explain(model, Xe, method="tree_shap", target=1, kernel="numpy")
    np.testing.assert_allclose(a.values, b.values, atol=1e-10)
    bg = tribute.Background(np.where(np.arange(20)[:, None] % 4 == 0, np.nan, X[100:120]))
    c = tribute.explain(model, Xe, method="tree_shap", target=1, baseline=bg)
    d = tribute.explain(model, Xe, method="tree_shap", target=1, baseline=bg, kernel="numpy")
    np.testing.assert_allclose(c.values, d.values, atol=1e-10)
    assert float(np.abs(gap_of(c)).max()) < 1e-8
    lgb = lightgbm.LGBMRegressor(n_estimators=10, num_leaves=8, verbose=-1, n_jobs=1).fit(X, y.astype(float))
    e = tribute.explain(lgb, Xe, method="tree_shap")
    np.testing.assert_allclose(e.values, lgb.predict(Xe, pred_contrib=True)[:, :-1], atol=1e-8)
    with pytest.raises(InputError, match="tree_shap"):
        tribute.explain(model, Xe, method="kernel_shap", target=1, baseline=X[:50].mean(0))
    with pytest.raises(InputError, match="Inf"):
        tribute.explain(model, np.where(np.isnan(Xe), np.inf, Xe), method="tree_shap", target=1)


def test_kernel_argument(cancer):
    X, y = cancer
    model = DecisionTreeRegressor(max_depth=3, random_state=0).fit(X, y)
    with pytest.raises(InputError, match="kernel"):
        tribute.explain(model, X[:2], method="tree_shap", kernel="fast")
    # interaction values always take the numpy path
    a = tribute.explain(model, X[:2], method="tree_shap", interactions=True)
    assert a.params["kernel"] == "numpy"


# --------------------------------------------------------------------------- pipelines
def test_columnwise_pipelines_are_traced_to_original_columns(cancer):
    """A DataFrame through OneHotEncoder + scaler + passthrough into XGBoost: one player per
    original column; interventional values equal exact_shapley of the whole pipeline (log-odds),
    path-dependent values equal the final model's on encoded inputs with grouped columns."""
    pd = pytest.importorskip("pandas")
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame({"income": rng.normal(50, 15, n), "city": rng.choice(["paris", "lyon", "nice"], n),
                       "age": rng.integers(18, 80, n), "tier": rng.choice(["a", "b"], n)})
    y = ((df.city == "paris") ^ (df.income > 50) | (df.tier == "a") & (df.age > 60)).astype(int)
    prep = make_column_transformer((OneHotEncoder(), ["city", "tier"]), (StandardScaler(), ["age"]),
                                   remainder="passthrough")
    pipe = make_pipeline(prep, xgboost.XGBClassifier(n_estimators=15, max_depth=3, n_jobs=1)).fit(df, y)
    bg = tribute.Background(df[100:120])
    a = tribute.explain(pipe, df[:6], method="tree_shap", target=1, baseline=bg)
    assert a.player_names == ["income", "city", "age", "tier"]
    e = tribute.explain(pipe, df[:6], method="exact_shapley", target=1, baseline=bg, output="logit")
    np.testing.assert_allclose(a.values, e.values, atol=2e-5)
    # path-dependent: the final model on encoded columns, grouped by original column
    p = tribute.explain(pipe, df[:6], method="tree_shap", target=1)
    enc = pipe[0].transform(df)
    owner = np.array([1, 1, 1, 3, 3, 2, 0])  # city x3, tier x2, age, income (remainder)
    ref = tribute.explain(pipe[-1], enc[:6], method="tree_shap", target=1, groups=owner)
    np.testing.assert_allclose(p.values, ref.values, atol=1e-12)
    assert p.to_pandas().index.tolist() == list(range(6))
    # a step that mixes columns is refused, naming it
    bad = make_pipeline(make_column_transformer((OneHotEncoder(), ["city", "tier"]),
                                                (Normalizer(), ["income", "age"])),
                        xgboost.XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1)).fit(df, y)
    with pytest.raises(UnsupportedModelError, match="Normalizer"):
        tribute.explain(bad, df[:2], method="tree_shap", target=1)


def test_numeric_pipeline_scaler_forest(cancer):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = cancer
    pipe = make_pipeline(StandardScaler(), RandomForestRegressor(4, max_depth=5, random_state=0)).fit(X, y)
    a = tribute.explain(pipe, X[:4], method="tree_shap")
    b = tribute.explain(pipe[-1], pipe[0].transform(X[:4]), method="tree_shap")
    np.testing.assert_allclose(a.values, b.values, atol=1e-12)


def test_catboost_symmetric_trees(diabetes, cancer):
    """CatBoost's oblivious trees: path-dependent values equal enumeration of the
    path-dependent value function (CatBoost's own "Regular" ShapValues use another variant on
    symmetric trees and differ), interventional values equal exact_shapley, the base value is
    CatBoost's, categorical features are refused."""
    catboost = pytest.importorskip("catboost")
    X, y = diabetes
    X = X[:, :6]
    reg = catboost.CatBoostRegressor(iterations=6, depth=4, verbose=0, thread_count=1, allow_writing_files=False,
                                     random_seed=0).fit(X, y)
    a = tribute.explain(reg, X[:3], method="tree_shap")
    for i in range(3):
        np.testing.assert_allclose(a.values[i], _pd_exact(reg, X[i], np.arange(6), 6), atol=1e-8)
    own = reg.get_feature_importance(catboost.Pool(X[:3]), type="ShapValues")
    np.testing.assert_allclose(a.extra["expected_value"][:, 0], own[:, -1], rtol=1e-9)
    bg = tribute.Background(X[100:115])
    b = tribute.explain(reg, X[:3], method="tree_shap", baseline=bg)
    e = tribute.explain(reg, X[:3], method="exact_shapley", baseline=bg)
    np.testing.assert_allclose(b.values, e.values, atol=1e-8)
    Xc, yc = cancer
    yc3 = np.digitize(Xc[:, 0], np.quantile(Xc[:, 0], [0.33, 0.66]))
    multi = catboost.CatBoostClassifier(iterations=5, depth=3, verbose=0, thread_count=1, allow_writing_files=False,
                                        loss_function="MultiClass", random_seed=0).fit(Xc, yc3)
    m = tribute.explain(multi, Xc[:2], method="tree_shap", target=[0, 1, 2])
    raw = multi.predict(Xc[:2], prediction_type="RawFormulaVal")
    np.testing.assert_allclose(np.asarray(m.values).sum(-1) + m.extra["expected_value"], raw, atol=1e-6)
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": Xc[:, 0], "c": np.where(yc == 1, "x", "y")})
    cat = catboost.CatBoostClassifier(iterations=3, depth=2, verbose=0, thread_count=1, allow_writing_files=False,
                                      cat_features=["c"]).fit(df, yc)
    with pytest.raises(UnsupportedModelError, match="categorical"):
        tribute.explain(cat, df[:2], method="tree_shap", target=1)


# --------------------------------------------------------------------------- units of the result
def _margin_models(X, y):
    """Boosted binary classifiers called through predict_proba, with their margin function."""
    xgb_clf = xgboost.XGBClassifier(n_estimators=8, max_depth=3, n_jobs=1).fit(X, y)
    lgb_clf = lightgbm.LGBMClassifier(n_estimators=8, num_leaves=7, verbose=-1, n_jobs=1).fit(X, y)
    gbc = GradientBoostingClassifier(n_estimators=8, max_depth=2, random_state=0).fit(X, y)
    return [(xgb_clf, lambda z: xgb_clf.predict(z, output_margin=True).astype(np.float64)),
            (lgb_clf, lambda z: lgb_clf.predict(z, raw_score=True)),
            (gbc, gbc.decision_function)]


def test_boosted_classifier_values_full_and_base_share_the_margin_units(cancer):
    """tree_shap explains the margin of a boosted classifier; its full_values and base_values
    are that margin too, so values.sum = full - base (before: full_values were predict_proba,
    base_values None, and params said 'probability')."""
    X, y = cancer[0][:, :6], cancer[1]  # few columns: exact_shapley enumerates them
    x, bg = X[:4], X[100:112]
    for model, margin in _margin_models(X, y):
        for target, sign in ((1, 1.0), (0, -1.0)):
            for baseline in (tribute.Background(bg), 0.0):  # interventional, path-dependent
                a = tribute.explain(model, x, method="tree_shap", baseline=baseline,
                                    target=target, output="raw")
                where = f"{type(model).__name__} target={target} {a.params['feature_perturbation']}"
                assert "margin (log-odds)" in a.params["explained"], where
                assert a.full_values is not None and a.base_values is not None, where
                np.testing.assert_allclose(np.asarray(a.full_values), sign * margin(x), rtol=1e-5,
                                           atol=1e-5, err_msg=where)
                np.testing.assert_allclose(a.values.sum(-1), np.asarray(a.full_values) - np.asarray(a.base_values),
                                           rtol=1e-7, atol=1e-7, err_msg=where)
                if isinstance(baseline, tribute.Background):
                    np.testing.assert_allclose(np.asarray(a.base_values), sign * margin(bg).mean(),
                                               rtol=1e-5, atol=1e-5, err_msg=where)
        # output='logit' of a binary logistic model is its margin: the same numbers as the
        # model-agnostic game of output='logit'
        t = tribute.explain(model, x, method="tree_shap", baseline=tribute.Background(bg),
                            target=1, output="logit")
        e = tribute.explain(model, x, method="exact_shapley", baseline=tribute.Background(bg),
                            target=1, output="logit")
        np.testing.assert_allclose(t.values, e.values, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(t.full_values), np.asarray(e.full_values), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(t.base_values), np.asarray(e.base_values), rtol=1e-5, atol=1e-5)


def test_multiclass_logit_from_probabilities_is_refused(cancer):
    """With several classes, output='logit' of predict_proba is the one-vs-rest log-odds, not
    the softmax margin tree_shap explains (before: accepted, values summed to the margin while
    full_values held the log-odds)."""
    X = cancer[0][:, :6]
    y3 = np.digitize(X[:, 0], np.quantile(X[:, 0], [0.33, 0.66]))
    gbc = GradientBoostingClassifier(n_estimators=5, max_depth=2, random_state=0).fit(X, y3)
    with pytest.raises(UnsupportedModelError, match=r"output='logit'.*one-vs-rest.*output='raw'"):
        tribute.explain(gbc, X[:3], method="tree_shap", baseline=tribute.Background(X[50:60]),
                        target=2, output="logit")
    a = tribute.explain(gbc, X[:3], method="tree_shap", baseline=tribute.Background(X[50:60]),
                        target=2, output="raw")
    assert "softmax logit" in a.params["explained"]
    np.testing.assert_allclose(np.asarray(a.full_values), gbc.decision_function(X[:3])[:, 2], rtol=1e-6)
    np.testing.assert_allclose(a.values.sum(-1), np.asarray(a.full_values) - np.asarray(a.base_values), atol=1e-8)
    # a multiclass Booster returns its margins: output='logit' is the margin, accepted
    booster = xgboost.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2,
                             "nthread": 1}, xgboost.DMatrix(X, y3), 4)
    t = tribute.explain(booster, X[:3], method="tree_shap", baseline=tribute.Background(X[50:60]),
                        target=2, output="logit")
    e = tribute.explain(booster, X[:3], method="exact_shapley",
                        baseline=tribute.Background(X[50:60]), target=2, output="logit")
    np.testing.assert_allclose(t.values, e.values, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(t.full_values), np.asarray(e.full_values), rtol=1e-5, atol=1e-5)


def test_logit_of_a_confident_binary_model_is_its_margin(cancer):
    """Margins of |10| and more: XGBoost's float32 probabilities put their log-odds ~1e-3 away
    from the margin, which must not be mistaken for a different quantity (the check compares
    probabilities); a GradientBoostingClassifier with the exponential loss
    (p = sigmoid(2 * margin)) explains output='logit' as 2 x its margin (it was refused; the
    log-odds are additive over its trees too: audit aud41t)."""
    X, y = cancer[0][:, :6], cancer[1]
    model = xgboost.XGBClassifier(n_estimators=400, max_depth=6, n_jobs=1).fit(X, y)
    margin = model.predict(X[:40], output_margin=True).astype(np.float64)
    assert np.abs(margin).max() > 10
    a = tribute.explain(model, X[:40], method="tree_shap", target=1, output="logit",
                        baseline=tribute.Background(X[100:110]))
    np.testing.assert_allclose(np.asarray(a.full_values), margin, rtol=1e-5, atol=1e-4)
    exp = GradientBoostingClassifier(loss="exponential", n_estimators=10, random_state=0).fit(X, y)
    a = tribute.explain(exp, X[:5], method="tree_shap", target=1, output="logit",
                        baseline=tribute.Background(X[100:110]))
    e = tribute.explain(exp, X[:5], method="exact_shapley", target=1, output="logit",
                        baseline=tribute.Background(X[100:110]))
    np.testing.assert_allclose(a.values, e.values, atol=1e-9)
    np.testing.assert_allclose(np.asarray(a.full_values), 2 * exp.decision_function(X[:5]),
                               atol=1e-9)


def test_auto_uses_a_single_baseline_row_that_was_given(diabetes):
    """auto: a baseline the user gave is used, also a single row (it used to be ignored in
    favour of the trees' cover, silently); no baseline keeps the path-dependent default."""
    X, y = diabetes
    X = X[:, :6]
    model = GradientBoostingRegressor(n_estimators=8, max_depth=3, random_state=0).fit(X, y)
    row = X[10:40].mean(0)
    a = tribute.explain(model, X[:3], method="tree_shap", baseline=row)
    e = tribute.explain(model, X[:3], method="exact_shapley", baseline=row)
    assert a.params["feature_perturbation"] == "interventional"
    np.testing.assert_allclose(a.values, e.values, atol=1e-9)
    np.testing.assert_allclose(np.asarray(a.values).sum(-1),
                               model.predict(X[:3]) - model.predict(row[None])[0], atol=1e-9)
    none = tribute.explain(model, X[:3], method="tree_shap")
    assert none.params["feature_perturbation"] == "tree_path_dependent"


def test_a_regressor_with_a_logistic_link_explains_its_margin_not_its_negation() -> None:
    # aud28: XGBoost reg:logistic and LightGBM cross_entropy regressors return one column; its
    # index 0 (target=None) was read as class 0 of a binary classifier and tree_shap explained
    # the NEGATED margin (exact_shapley on a LightGBM Booster's margin disagreed in sign)
    xgb = pytest.importorskip("xgboost")
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    p = 1.0 / (1.0 + np.exp(-(x[:, 0] + x[:, 1] * x[:, 2])))
    xs, base = x[:3], x.mean(0)
    booster = lgb.train({"objective": "cross_entropy", "verbose": -1}, lgb.Dataset(x, p), 8)
    cases = [
        (xgb.XGBRegressor(objective="reg:logistic", n_estimators=8, max_depth=3).fit(x, p),
         lambda m, q: m.predict(q, output_margin=True)),
        (lgb.LGBMRegressor(objective="cross_entropy", n_estimators=8, verbose=-1).fit(x, p),
         lambda m, q: m.predict(q, raw_score=True)),
        (booster, lambda m, q: m.predict(q, raw_score=True)),
    ]
    for model, margin in cases:
        attr = tribute.explain(model, xs, method="tree_shap", baseline=base)
        np.testing.assert_allclose(np.asarray(attr.full_values), margin(model, xs), atol=1e-5)
        np.testing.assert_allclose(np.asarray(attr.base_values),
                                   np.repeat(margin(model, base[None]), 3), atol=1e-5)
        assert "negated" not in attr.params["explained"]
        exact = tribute.explain(lambda q, m=model, f=margin: f(m, q), xs, method="exact_shapley",
                                baseline=base, model_output="raw")
        np.testing.assert_allclose(np.asarray(attr.values), np.asarray(exact.values), atol=1e-5)


def test_a_hinge_classifiers_class_0_is_its_negated_margin() -> None:
    # aud28: XGBClassifier(binary:hinge) has an identity link; its class 0 (target=0) got class
    # 1's margin, unsigned, while every other binary model's class 0 gets the negated margin
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
    clf = xgb.XGBClassifier(objective="binary:hinge", n_estimators=8, max_depth=2).fit(x, y)
    xs, base = x[:3], x.mean(0)
    c0 = tribute.explain(clf, xs, method="tree_shap", baseline=base, target=0)
    c1 = tribute.explain(clf, xs, method="tree_shap", baseline=base, target=1)
    np.testing.assert_allclose(np.asarray(c1.full_values), clf.predict(xs, output_margin=True),
                               atol=1e-5)
    np.testing.assert_allclose(np.asarray(c0.values), -np.asarray(c1.values), atol=1e-12)
    np.testing.assert_allclose(np.asarray(c0.full_values), -np.asarray(c1.full_values), atol=1e-12)


def test_a_model_predicting_with_fewer_trees_than_its_booster_is_refused_or_read_so() -> None:
    # aud33i: an XGBoost model fitted with early stopping predicts with its best iteration's
    # trees only; tree_shap read every tree of its Booster and explained that other model
    # silently (full_values up to 2.6 away from model.predict, values unlike exact_shapley's).
    # Refused now; a reader that keeps the best iteration's trees must explain the model itself.
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 4))
    y = x[:, 0] * x[:, 1] + x[:, 2] + 0.1 * rng.normal(size=400)
    model = xgb.XGBRegressor(n_estimators=50, max_depth=2, early_stopping_rounds=2,
                             learning_rate=0.9).fit(x[:300], y[:300],
                                                    eval_set=[(x[300:], y[300:])], verbose=False)
    assert model.best_iteration + 1 < len(model.get_booster().get_dump())
    bg = tribute.Background(x[:20])
    for base in (None, bg):  # path-dependent, interventional
        # the reader keeps the best iteration's trees (models/trees.py), so it is explained
        if base is None:
            attr = tribute.explain(model, x[:3], method="tree_shap")
        else:
            attr = tribute.explain(model, x[:3], method="tree_shap", baseline=base)
        np.testing.assert_allclose(np.asarray(attr.full_values), model.predict(x[:3]), atol=1e-5)
        if base is not None:
            exact = tribute.explain(model, x[:3], method="exact_shapley", baseline=bg)
            np.testing.assert_allclose(np.asarray(attr.values), np.asarray(exact.values),
                                       atol=1e-5)


def test_a_lightgbm_random_forest_is_not_explained_as_the_sum_of_its_trees() -> None:
    # aud33i: LightGBM boosting_type="rf" predicts the average of its trees, its raw score (the
    # reading's check) is their sum: tree_shap explained n_trees times the prediction, silently
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 4))
    y = x[:, 0] * x[:, 1] + x[:, 2]
    model = lgb.LGBMRegressor(boosting_type="rf", n_estimators=3, num_leaves=4, bagging_freq=1,
                              bagging_fraction=0.5, verbose=-1).fit(x, y)
    # the reader scales the leaves by 1 / n_trees (models/trees.py), so it is explained
    attr = tribute.explain(model, x[:3], method="tree_shap", baseline=tribute.Background(x[:8]))
    np.testing.assert_allclose(np.asarray(attr.full_values), model.predict(x[:3]), atol=1e-6)
    path = tribute.explain(model, x[:3], method="tree_shap")
    np.testing.assert_allclose(np.asarray(path.full_values), model.predict(x[:3]), atol=1e-6)
