"""What a model returns decides how ``output=`` is computed (issue #15).

Reference: credits of ``exact_shapley`` sum to ``v(N) - v(empty)`` computed independently from
``predict_proba`` / ``decision_function`` / the raw function, for every explained output.
Before the fix, ``output="prob"`` applied a softmax on top of ``predict_proba`` and these sums
were off (0.294 instead of 0.626 in the report).
"""

from __future__ import annotations

import itertools
import warnings
from math import factorial

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError, ModelOutputError
from tribute.models import NumpyModel
from tribute.targets import PROB_EPS

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import LinearSVC  # noqa: E402

OUTPUTS = ("raw", "prob", "log_prob", "logit")


def _data(n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=120, n_features=4, n_informative=3, n_redundant=0,
                               n_classes=n_classes, n_clusters_per_class=1, random_state=0)
    return X * 3.0 + 5.0, y  # unscaled features, so 0.0 is far from the data


def _from_prob(p: np.ndarray, output: str) -> np.ndarray:
    """The explained output computed by hand from probabilities."""
    if output in ("raw", "prob"):
        return p
    q = np.clip(p, PROB_EPS, 1 - PROB_EPS)
    return np.log(q) if output == "log_prob" else np.log(q) - np.log1p(-q)


def _check_sums(model: object, X: np.ndarray, output: str, target: int,
                rtol: float = 1e-7) -> None:
    x, base = X[:5], X.mean(0)
    attr = tribute.explain(model, x, method="exact_shapley", baseline=base, output=output,
                           target=target)
    prob = model.predict_proba  # type: ignore[attr-defined]
    full = _from_prob(prob(x)[:, target], output)
    empty = _from_prob(prob(base[None])[:, target], output)[0]
    np.testing.assert_allclose(attr.values.sum(1), full - empty, rtol=rtol, atol=rtol * 1e-2)
    assert attr.full_values is not None and attr.base_values is not None
    np.testing.assert_allclose(attr.full_values, full, rtol=rtol, atol=rtol * 1e-2)
    np.testing.assert_allclose(attr.base_values, np.full(5, empty), rtol=rtol, atol=rtol * 1e-2)
    assert attr.params["model_output"] == "probability"


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("make", [
    lambda: LogisticRegression(max_iter=500),
    lambda: MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=0),
    lambda: RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0),
], ids=["logreg", "mlp", "forest"])
def test_predict_proba_every_output_sums_to_the_true_change(make, n_classes):
    X, y = _data(n_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLP convergence
        model = make().fit(X, y)
    for output in OUTPUTS:
        for target in (0, n_classes - 1):
            _check_sums(model, X, output, target)


def test_prob_is_not_a_softmax_of_probabilities():
    X, y = _data(2)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    x, base = X[:1], X.mean(0)
    attr = tribute.explain(clf, x, method="exact_shapley", baseline=base, output="prob", target=1)
    true = clf.predict_proba(x)[0, 1] - clf.predict_proba(base[None])[0, 1]
    wrong = torch.softmax(torch.tensor(clf.predict_proba(x)), 1)[0, 1] - torch.softmax(
        torch.tensor(clf.predict_proba(base[None])), 1)[0, 1]
    assert abs(attr.values.sum() - true) < 1e-9
    assert abs(true - float(wrong)) > 1e-3  # the old answer was measurably different


def test_binary_logit_from_probabilities_is_the_model_logit():
    X, y = _data(2)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    attr = tribute.explain(clf, X[:4], method="exact_shapley", baseline=X.mean(0),
                           output="logit", target=1)
    # log(p1 / (1 - p1)) of a logistic regression is its decision function (linear in x)
    assert attr.full_values is not None
    np.testing.assert_allclose(attr.full_values, clf.decision_function(X[:4]), rtol=1e-8)
    np.testing.assert_allclose(attr.values, clf.coef_[0] * (X[:4] - X.mean(0)), rtol=1e-6,
                               atol=1e-8)


def test_target_none_on_binary_predict_proba_picks_the_predicted_class():
    X, y = _data(2)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    attr = tribute.explain(clf, X[:6], method="exact_shapley", baseline=X.mean(0), output="prob")
    np.testing.assert_array_equal(attr.targets, clf.predict(X[:6]))


def test_decision_function_is_a_logit():
    X, y = _data(2)
    svm = LinearSVC(C=0.5, max_iter=5000, random_state=0).fit(X, y)
    x, base = X[:4], X.mean(0)
    for output, fn in (("logit", lambda z: z), ("prob", lambda z: 1 / (1 + np.exp(-z))),
                       ("log_prob", lambda z: -np.log1p(np.exp(-z)))):
        attr = tribute.explain(svm, x, method="exact_shapley", baseline=base, output=output,
                               target=1)
        true = fn(svm.decision_function(x)) - fn(svm.decision_function(base[None]))
        np.testing.assert_allclose(attr.values.sum(1), true, rtol=1e-8, atol=1e-10)
        assert attr.params["model_output"] == "logit"


def test_pipeline_uses_its_final_step():
    X, y = _data(3)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    for output in OUTPUTS:
        _check_sums(pipe, X, output, target=2)
    reg = make_pipeline(StandardScaler(), LinearRegression()).fit(X, y.astype(float))
    assert tribute.models.as_model(reg, "numpy").output_kind == "raw"


def test_regressor_refuses_probability_outputs():
    X, y = _data(2)
    reg = LinearRegression().fit(X, y.astype(float))
    for output in ("prob", "log_prob", "logit"):
        with pytest.raises(InputError, match="regressor's predict"):
            tribute.explain(reg, X[:2], method="exact_shapley", baseline=X.mean(0), output=output)
    attr = tribute.explain(reg, X[:2], method="exact_shapley", baseline=X.mean(0))
    np.testing.assert_allclose(attr.values.sum(1), reg.predict(X[:2]) - reg.predict(X.mean(0)[None]))


def test_declared_probability_function():
    w = np.array([0.5, -1.0, 0.25, 2.0])

    def p1(x: np.ndarray) -> np.ndarray:  # P(y = 1), one column
        return 1 / (1 + np.exp(-(x - 5.0) @ w))

    X, _ = _data(2)
    x, base = X[:3], X.mean(0)
    for output in OUTPUTS:
        attr = tribute.explain(p1, x, method="exact_shapley", baseline=base, output=output,
                               model_output="probability")
        full, empty = _from_prob(p1(x), output), _from_prob(p1(base[None]), output)
        np.testing.assert_allclose(attr.values.sum(1), full - empty, rtol=1e-8, atol=1e-10)
    # the logit of a sigmoid output is the linear score itself
    attr = tribute.explain(p1, x, method="exact_shapley", baseline=base, output="logit",
                           model_output="probability")
    np.testing.assert_allclose(attr.values, w * (x - base), rtol=1e-6, atol=1e-9)


def test_declared_probability_torch_module():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=-1)).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    attr = tribute.explain(net, x, method="exact_shapley", output="log_prob", target=1,
                           model_output="probability")
    with torch.no_grad():
        lp = torch.log(net(x))[:, 1] - torch.log(net(torch.zeros(1, 4, dtype=torch.float64)))[:, 1]
    torch.testing.assert_close(attr.values.sum(1), lp, rtol=1e-8, atol=1e-10)


def test_undeclared_probabilities_warn_and_bad_declarations_raise():
    X, y = _data(3)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    with pytest.warns(UserWarning, match="look like probabilities"):
        tribute.explain(lambda a: clf.predict_proba(a), X[:2], method="exact_shapley",
                        baseline=X.mean(0), output="prob")
    with pytest.raises(ModelOutputError, match="outside \\[0, 1\\]"):
        tribute.explain(lambda a: a @ np.ones((4, 2)), X[:2], method="exact_shapley",
                        baseline=X.mean(0), output="log_prob", model_output="probability")
    with pytest.raises(InputError, match="model_output='probs' is not one of"):
        tribute.explain(clf, X[:2], baseline=X.mean(0), model_output="probs")


def test_one_undeclared_probability_column_warns():
    """One column with every value in [0, 1] from a function or module not declared to return
    probabilities: output='prob' puts a sigmoid on top, so a warning says how to declare it
    (before: silent, full_values [0.504, 0.720, 0.731] = sigmoid(P) for P = [0.016, 0.945,
    0.9999]). Declared, the explained output is P itself; logits, raw output: no warning."""
    X, y = _data(2)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    x, base = X[:3], X.mean(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Sigmoid()).double()
    xt, bt = torch.tensor(x), torch.tensor(base)
    with torch.no_grad():
        p_net = net(xt)[:, 0].numpy()
    cases = [(lambda a: clf.predict_proba(a)[:, 1], x, base, clf.predict_proba(x)[:, 1]),
             (net, xt, bt, p_net)]
    for model, inp, b, p in cases:
        for output in ("prob", "log_prob", "logit"):
            with pytest.warns(UserWarning, match=r"one column .* in \[0, 1\].*model_output="
                                                 r"'probability'"):
                tribute.explain(model, inp, method="exact_shapley", baseline=b, output=output)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            a = tribute.explain(model, inp, method="exact_shapley", baseline=b, output="prob",
                                model_output="probability")
            np.testing.assert_allclose(np.asarray(a.full_values), p, rtol=1e-10)
            tribute.explain(model, inp, method="exact_shapley", baseline=b, output="prob",
                            model_output="logit")  # declared logits: silent
            tribute.explain(model, inp, method="exact_shapley", baseline=b, output="raw")
            # typical logits (outside [0, 1] somewhere): silent
            tribute.explain(lambda a: clf.decision_function(a), x, method="exact_shapley",
                            baseline=base, output="prob")


def test_model_left_alone_and_adapter_redeclared():
    X, y = _data(2)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    adapter = tribute.models.as_model(clf, "numpy")
    assert adapter.output_kind == "probability" and not adapter.output_assumed
    twin = tribute.models.as_model(adapter, "numpy", "raw")
    assert twin.output_kind == "raw" and adapter.output_kind == "probability"


# ------------------------------------------------------------------ gradient boosting
def test_xgboost_classifier_and_booster():
    xgb = pytest.importorskip("xgboost")
    X, y = _data(2)
    clf = xgb.XGBClassifier(n_estimators=8, max_depth=3, n_jobs=1).fit(X, y)
    for output in OUTPUTS:
        _check_sums(clf, X, output, target=1, rtol=1e-5)  # float32 probabilities
    booster = clf.get_booster()
    x, base = X[:4], X.mean(0)
    margin = booster.predict(xgb.DMatrix(x), output_margin=True)
    margin_b = booster.predict(xgb.DMatrix(base[None]), output_margin=True)
    attr = tribute.explain(booster, x, method="exact_shapley", baseline=base, output="logit",
                           target=1)
    np.testing.assert_allclose(attr.values.sum(1), margin - margin_b, rtol=1e-5, atol=1e-5)
    attr = tribute.explain(booster, x, method="exact_shapley", baseline=base, output="prob",
                           target=1)
    p, pb = booster.predict(xgb.DMatrix(x)), booster.predict(xgb.DMatrix(base[None]))
    np.testing.assert_allclose(attr.values.sum(1), p - pb, rtol=1e-5, atol=1e-6)
    reg = xgb.XGBRegressor(n_estimators=5, max_depth=2, n_jobs=1).fit(X, y.astype(float))
    with pytest.raises(InputError, match="raw values"):
        tribute.explain(reg.get_booster(), x, method="exact_shapley", baseline=base, output="prob")


def test_lightgbm_classifier():
    lgb = pytest.importorskip("lightgbm")
    X, y = _data(3)
    clf = lgb.LGBMClassifier(n_estimators=10, num_leaves=7, min_child_samples=5, verbose=-1,
                             n_jobs=1).fit(X, y)
    for output in OUTPUTS:
        _check_sums(clf, X, output, target=2, rtol=1e-6)
    booster = clf.booster_
    x, base = X[:4], X.mean(0)
    raw = booster.predict(x, raw_score=True) - booster.predict(base[None], raw_score=True)
    attr = tribute.explain(booster, x, method="exact_shapley", baseline=base, output="logit",
                           target=2)
    np.testing.assert_allclose(attr.values.sum(1), raw[:, 2], rtol=1e-8, atol=1e-10)
    attr = tribute.explain(booster, x, method="exact_shapley", baseline=base, output="prob",
                           target=2)
    p = booster.predict(x)[:, 2] - booster.predict(base[None])[:, 2]
    np.testing.assert_allclose(attr.values.sum(1), p, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("params", [{"objective": "multiclassova", "num_class": 3},
                                    {"objective": "ova", "num_class": 3},
                                    {"objective": "binary", "sigmoid": 2.0}])
def test_lightgbm_booster_probabilities_are_what_it_predicts(params):
    """A one-vs-all Booster's class probabilities are a sigmoid per class (rows do not sum to
    one) and a binary Booster with sigmoid=2 predicts sigmoid(2 s): output="prob" used to be
    a softmax (a plain sigmoid) of the raw scores, off by up to 0.16 (audit aud32m). The
    Booster is now explained through its probabilities, as LGBMClassifier's predict_proba."""
    lgb = pytest.importorskip("lightgbm")
    X, y = _data(3)
    if params["objective"] == "binary":
        y = (y == 0).astype(int)
    booster = lgb.train({**params, "num_leaves": 7, "min_data_in_leaf": 5, "verbose": -1,
                         "num_threads": 1}, lgb.Dataset(X, label=y), 10)
    x, base = X[:4], X.mean(0)
    p = booster.predict(x)
    p = np.stack([1 - p, p], 1) if p.ndim == 1 else p
    for k in range(p.shape[1]):
        for output, want in (("prob", p[:, k]), ("log_prob", np.log(p[:, k])),
                             ("logit", np.log(p[:, k] / (1 - p[:, k])))):
            a = tribute.explain(booster, x, method="feature_ablation", baseline=base,
                                output=output, target=k)
            np.testing.assert_allclose(np.asarray(a.full_values).ravel(), want, rtol=1e-9,
                                       atol=1e-12, err_msg=f"{output} class {k}")
    if params["objective"] != "binary":  # one-vs-all: the log-odds of class k are its score
        a = tribute.explain(booster, x, method="feature_ablation", baseline=base,
                            output="logit", target=1)
        np.testing.assert_allclose(np.asarray(a.full_values).ravel(),
                                   booster.predict(x, raw_score=True)[:, 1], rtol=1e-7)


def test_evaluate_keeps_the_declared_model_output():
    X, y = _data(3)
    clf = LogisticRegression(max_iter=500).fit(X, y)

    def proba(a: np.ndarray) -> np.ndarray:
        return clf.predict_proba(a)

    x, base = X[:3], X.mean(0)
    attr = tribute.explain(proba, x, method="exact_shapley", baseline=base, output="log_prob",
                           model_output="probability", target=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "look like probabilities" warning: declared
        res = tribute.evaluate(proba, x, attr, metric="deletion", baseline=base)
        same = tribute.evaluate(clf, x, attr, metric="deletion", baseline=base)
    np.testing.assert_allclose(res.scores, same.scores, rtol=1e-12)


def test_transform_output_table():
    from tribute.targets import transform_output

    z = torch.tensor([[0.3, -1.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(transform_output(z, "prob", "logit"), torch.softmax(z, 1))
    torch.testing.assert_close(transform_output(z, "log_prob", "logit"), torch.log_softmax(z, 1))
    assert transform_output(z, "logit", "logit") is z and transform_output(z, "raw", "raw") is z
    p = torch.tensor([[0.0, 0.25, 0.75, 1.0]], dtype=torch.float64)
    assert transform_output(p, "prob", "probability") is p
    lp = transform_output(p, "log_prob", "probability")
    torch.testing.assert_close(lp[0, 1:3], torch.log(p[0, 1:3]))
    assert float(lp[0, 0]) == pytest.approx(np.log(PROB_EPS)) and torch.isfinite(lp).all()
    lo = transform_output(p, "logit", "probability")
    torch.testing.assert_close(lo[0, 1:3], torch.tensor([np.log(1 / 3), np.log(3.0)],
                                                         dtype=torch.float64))
    assert float(lo[0, 3]) == pytest.approx(-float(lo[0, 0])) and torch.isfinite(lo).all()
    # sigmoid(logit(p)) == p for a single probability column
    q = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    torch.testing.assert_close(torch.sigmoid(transform_output(q, "logit", "probability")), q)
    with pytest.raises(InputError, match="returns raw values"):
        transform_output(z, "prob", "raw")


def test_duck_typed_estimators_without_sklearn_tags():
    class Reg:
        _estimator_type = "regressor"

        def predict_proba(self, a: np.ndarray) -> np.ndarray:  # pragma: no cover - never called
            raise AssertionError("a regressor's predict is explained")

        def predict(self, a: np.ndarray) -> np.ndarray:
            return a.sum(1)

    class Proba:
        def predict_proba(self, a: np.ndarray) -> np.ndarray:
            p = 1 / (1 + np.exp(-a.sum(1)))
            return np.stack([1 - p, p], 1)

    reg, proba = tribute.models.as_model(Reg(), "numpy"), tribute.models.as_model(Proba(), "numpy")
    assert isinstance(reg, NumpyModel) and isinstance(proba, NumpyModel)
    assert (reg.kind, reg.output_kind) == ("predict", "raw")
    assert (proba.kind, proba.output_kind) == ("predict_proba", "probability")
    x = np.array([[0.5, -0.25, 1.0]])
    attr = tribute.explain(Proba(), x, method="exact_shapley", baseline=0.0, output="logit",
                           target=1)
    np.testing.assert_allclose(attr.values, x, rtol=1e-9)  # logit of p1 is sum(x): linear


def test_component_players_respect_the_declared_model_output():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2),
                              torch.nn.Softmax(dim=-1)).double()
    x = torch.randn(2, 4, dtype=torch.float64)
    attr = tribute.explain(net, x, method="exact_shapley", players=tribute.components(net, "1"),
                           output="log_prob", target=1, model_output="probability")
    with torch.no_grad():
        full = torch.log(net(x)[:, 1])
        empty = torch.log(net[3](net[2](torch.zeros(2, 3, dtype=torch.float64)))[:, 1])
    torch.testing.assert_close(torch.as_tensor(attr.full_values), full)
    torch.testing.assert_close(torch.as_tensor(attr.base_values), empty)
    torch.testing.assert_close(attr.values.sum(1), full - empty)


# ------------------------------------------------------------------ binary, one score column
def _enum_shapley(f, x: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Shapley values of ``v(S) = mean_m f(where(S, x, bg_m))`` by enumerating every
    coalition (``f``: rows -> values; ``bg``: ``M x d`` background rows)."""
    d = x.shape[0]
    v = {}
    for bits in itertools.product([False, True], repeat=d):
        m = np.array(bits)
        v[bits] = float(np.mean(f(np.where(m[None], x[None], bg))))
    phi = np.zeros(d)
    for bits, val in v.items():
        for i in range(d):
            if not bits[i]:
                s = sum(bits)
                w = factorial(s) * factorial(d - s - 1) / factorial(d)
                phi[i] += w * (v[(*bits[:i], True, *bits[i + 1:])] - val)
    return phi


def _class_output(score: np.ndarray, k: int, output: str) -> np.ndarray:
    """Class ``k``'s explained output from class 1's score ``s`` (class 0: ``-s``)."""
    c = score if k == 1 else -score
    if output in ("raw", "logit"):
        return c
    if output == "prob":
        return 1.0 / (1.0 + np.exp(-c))
    return -np.logaddexp(0.0, -c)  # log sigmoid(c)


def _check_binary_convention(model, score, predicted, X, bg, outputs, methods) -> None:
    """Every target kind of a one-column binary classifier against enumeration by hand."""
    x = X[:5]
    pred = predicted(x)
    assert set(pred) == {0, 1}, "the rows must cover both predicted classes"
    for output in outputs:
        for target, classes in ((None, pred), ("predicted", pred), (0, np.zeros(5, int)),
                                (1, np.ones(5, int)), (np.array([1, 0, 1, 0, 0]), None)):
            cls = np.asarray(target) if classes is None else classes
            truth = np.stack([_enum_shapley(lambda z, k=k, o=output: _class_output(score(z), k, o),
                                            x[i], bg) for i, k in enumerate(cls)])
            full = np.array([_class_output(score(x[i:i + 1]), k, output)[0]
                             for i, k in enumerate(cls)])
            for method in methods:
                if method == "tree_shap" and output not in ("raw", "logit"):
                    continue
                a = tribute.explain(model, x, method=method, baseline=tribute.Background(bg),
                                    output=output, target=target)
                where = f"{type(model).__name__} {method} output={output} target={target!r}"
                np.testing.assert_allclose(a.values, truth, rtol=1e-6, atol=1e-7, err_msg=where)
                np.testing.assert_array_equal(a.targets, cls, err_msg=where)
                assert a.full_values is not None, where
                np.testing.assert_allclose(a.full_values, full, rtol=1e-6, atol=1e-7,
                                           err_msg=where)
    with pytest.raises(InputError, match=r"target=2 has class index 2.*2 classes"):
        tribute.explain(model, x, method="exact_shapley", baseline=bg[0], target=2)


@pytest.mark.parametrize("make", [
    lambda: __import__("sklearn.svm", fromlist=["SVC"]).SVC(),
    lambda: LinearSVC(C=0.5, max_iter=5000, random_state=0),
    lambda: __import__("sklearn.linear_model", fromlist=["RidgeClassifier"]).RidgeClassifier(),
], ids=["svc", "linearsvc", "ridge"])
def test_binary_decision_function_target_is_the_class(make):
    """A binary estimator whose decision_function is one column: ``target=k`` is class ``k``
    (class 0 = ``-s``, ``sigmoid(-s)``, ``log sigmoid(-s)``) and ``None``/"predicted" each
    row's predicted class, as for a two-column predict_proba (before: ``target=0`` was class 1
    and ``None`` explained class 1 for rows predicted 0)."""
    X, y = _data(2)
    model = make().fit(X, y)
    bg = X[::30][:3]
    _check_binary_convention(model, model.decision_function, model.predict, X, bg, OUTPUTS,
                             ("exact_shapley",))


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
def test_binary_booster_target_is_the_class_for_every_method(lib):
    """Binary xgboost/lightgbm Boosters return one margin column; tree_shap and exact_shapley
    agree on every target (before: tree_shap explained the negated margin for target=None/0
    while exact_shapley explained the margin)."""
    X, y = _data(2)
    bg = X[::30][:3]
    if lib == "xgboost":
        xgb = pytest.importorskip("xgboost")
        model = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                          xgb.DMatrix(X, y), 8)

        def score(z):
            return model.predict(xgb.DMatrix(z), output_margin=True).astype(np.float64)
    else:
        lgb = pytest.importorskip("lightgbm")
        model = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1,
                           "min_data_in_leaf": 5}, lgb.Dataset(X, y), 8)

        def score(z):
            return model.predict(z, raw_score=True).astype(np.float64)

    def predicted(z):
        return (score(z) > 0).astype(int)

    _check_binary_convention(model, score, predicted, X, bg, OUTPUTS,
                             ("exact_shapley", "tree_shap"))


def test_one_column_torch_module_and_function_keep_the_plain_reading():
    """Torch modules and plain functions may be regressors: their one column is index 0 for
    every row, whatever its sign, and target=1 is refused naming the reason."""
    w = torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64)
    net = torch.nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        net.weight.copy_(w.T)
    x = torch.tensor([[1.0, 2.0, 0.0], [2.0, -1.0, 1.0]], dtype=torch.float64)  # logits -3, 4.5
    for model, inp in ((net, x), (lambda a: a @ w.numpy()[:, 0], x.numpy())):
        a = tribute.explain(model, inp, method="exact_shapley", baseline=0.0, output="prob")
        full = torch.sigmoid(x @ w)[:, 0].numpy()
        np.testing.assert_allclose(np.asarray(a.full_values), full, rtol=1e-10)
        with pytest.raises(InputError, match="index 0 is that column"):
            tribute.explain(model, inp, method="exact_shapley", baseline=0.0, target=1)


def test_a_multi_output_regressor_needs_a_target():
    # aud28: target=None on a regressor with two outputs explained, per row, the output with
    # the larger value (the "predicted class" of a regressor), silently
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = np.stack([x @ [1.0, 2.0, 3.0], -x @ [1.0, 0.0, 1.0] + 0.5], 1)
    reg = LinearRegression().fit(x, y)
    for target in (None, "predicted"):
        with pytest.raises(InputError, match=r"raw \(regression\) values with 2 outputs.*target=j"):
            tribute.explain(reg, x[:4], method="exact_shapley", baseline=x.mean(0), target=target)
    net = torch.nn.Linear(3, 2).double()
    with pytest.raises(InputError, match="no predicted class"):
        tribute.explain(net, torch.tensor(x[:4]), method="exact_shapley", model_output="raw")
    a = tribute.explain(reg, x[:4], method="exact_shapley", baseline=x.mean(0), target=1)
    np.testing.assert_allclose(np.asarray(a.values), reg.coef_[1] * (x[:4] - x.mean(0)), atol=1e-9)
    one = LinearRegression().fit(x, y[:, 0])  # a single output keeps target=None
    b = tribute.explain(one, x[:4], method="exact_shapley", baseline=x.mean(0))
    np.testing.assert_allclose(np.asarray(b.values), one.coef_ * (x[:4] - x.mean(0)), atol=1e-9)


@pytest.mark.parametrize("n_classes", [3, 4])
def test_one_vs_one_decision_function_is_refused(n_classes):
    """SVC(decision_function_shape="ovo") scores pairs of classes: target=k used to explain
    the k-th pair's score as if it were class k (audit aud32m); with three classes the shapes
    even agree. Refused, naming the fix; the 'ovr' shape gives class columns again."""
    from sklearn.svm import SVC

    X, y = make_classification(120, 4, n_informative=4, n_redundant=0, n_classes=n_classes,
                               random_state=0)
    svc = SVC(decision_function_shape="ovo").fit(X, y)
    base = X.mean(0)
    for model in (svc, make_pipeline(StandardScaler(), svc)):
        with pytest.raises(tribute.InputError, match=r"decision_function_shape='ovo'.*"
                                                     r"one-vs-one pair scores.*= 'ovr'"):
            tribute.explain(model, X[:3], method="feature_ablation", target=1, baseline=base)
    svc.decision_function_shape = "ovr"
    a = tribute.explain(svc, X[:3], method="feature_ablation", target=1, baseline=base)
    np.testing.assert_allclose(np.asarray(a.full_values).ravel(), svc.decision_function(X[:3])[:, 1])
    binary = SVC(decision_function_shape="ovo").fit(X, (y > 0).astype(int))  # one column: fine
    tribute.explain(binary, X[:3], method="feature_ablation", target=1, baseline=base)


def test_a_classifier_with_only_predict_is_refused_unless_declared():
    """OutputCodeClassifier has neither predict_proba nor decision_function: its predict's
    class labels used to be explained as numbers (class 3 = three times class 1), silently
    (audit aud32m). Refused; model_output='raw' explains the labels on purpose."""
    from sklearn.multiclass import OutputCodeClassifier

    X, y = make_classification(150, 5, n_informative=4, n_redundant=0, n_classes=4,
                               random_state=0)
    m = OutputCodeClassifier(LogisticRegression(), random_state=0).fit(X, y)
    with pytest.raises(InputError, match=r"OutputCodeClassifier is a classifier with neither "
                                         r"predict_proba nor decision_function.*model_output='raw'"):
        tribute.explain(m, X[:3], method="feature_ablation", baseline=X.mean(0))
    a = tribute.explain(m, X[:3], method="feature_ablation", baseline=X.mean(0), model_output="raw")
    np.testing.assert_array_equal(np.asarray(a.full_values).ravel(), m.predict(X[:3]))


def test_a_multi_output_classifier_names_the_list_of_probabilities():
    """predict_proba of a multi-output classifier is a list of (rows x classes) arrays: the
    error used to blame the batch axis ("shape (2, 3, 2) for a batch of 3 rows")."""
    X, y = make_classification(150, 5, n_informative=4, n_redundant=0, random_state=0)
    Y = np.stack([y, 1 - y], 1)
    m = RandomForestClassifier(5, random_state=0).fit(X, Y)
    with pytest.raises(ModelOutputError, match=r"predict_proba returned a list of 2 arrays.*"
                                               r"lambda X: est.predict_proba\(X\)\[k\]"):
        tribute.explain(m, X[:3], method="feature_ablation", baseline=X.mean(0), target=1)
    a = tribute.explain(lambda a: m.predict_proba(a)[1], X[:3], method="feature_ablation",
                        baseline=X.mean(0), target=1, model_output="probability")
    np.testing.assert_allclose(np.asarray(a.full_values).ravel(), m.predict_proba(X[:3])[1][:, 1])
