"""Feature responsiveness scores (Cheon, Tosh, Ustun et al. 2025): closed forms, reasons, errors."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import BudgetError, InputError
from tribute.methods.responsiveness import (
    REASON_ALREADY,
    REASON_IMMUTABLE,
    REASON_NO_ACTION,
    REASON_NO_FLIP,
    REASON_RESPONSIVE,
    responsiveness_cost,
)

W = np.array([1.0, -2.0, 0.5, 0.0])
C = -1.0
NAMES = ["income", "debt", "years", "age"]


def _linear(x: np.ndarray) -> np.ndarray:
    """Binary logit model: approve (class 1) when w.x + c > 0."""
    return np.asarray(x, dtype=np.float64) @ W + C


def _closed_form(x: np.ndarray, j: int, lo: float, hi: float) -> float:
    """Fraction of the interval [lo, hi] whose value for x_j gives w.x + c > 0."""
    z_rest = float(x @ W + C - W[j] * x[j])
    if W[j] == 0:
        return float(z_rest > 0)
    t = -z_rest / W[j]  # boundary value of x_j
    frac = (hi - max(lo, t)) / (hi - lo) if W[j] > 0 else (min(hi, t) - lo) / (hi - lo)
    return float(np.clip(frac, 0.0, 1.0))


def test_linear_classifier_matches_closed_form_fraction_of_the_interval() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(6, 4))
    x = x[_linear(x) < 0]  # unwanted prediction: class 0
    bounds = {"income": (-3.0, 3.0), "debt": (-2.0, 2.0), "years": (-4.0, 4.0), "age": (0.0, 1.0)}
    act = tribute.Actionability(bounds=bounds)
    r = tribute.feature_responsiveness(_linear, x, act, n_samples=4000, seed=1, feature_names=NAMES,
                                       model_output="logit")
    for i in range(x.shape[0]):
        for j, name in enumerate(NAMES):
            ref = _closed_form(x[i], j, *bounds[name])
            assert abs(r.scores[i, j] - ref) <= 4 * np.sqrt(ref * (1 - ref) / 4000) + 1e-12, (i, name)
            wald = np.sqrt(r.scores[i, j] * (1 - r.scores[i, j]) / 4000)  # large n: Wilson ~ Wald
            assert r.stderr[i, j] == pytest.approx(wald, rel=0.02, abs=1e-3)
        assert r.reasons[i][3] == REASON_NO_FLIP  # zero weight: no value flips it
    assert (r.target == 1).all() and (r.current == 0).all()
    assert r.n_evals == x.shape[0] * (1 + 4 * 4000)


def test_integer_features_are_enumerated_exactly() -> None:
    x = np.array([[0.0, 1.0, 2.0, 0.0]])  # z = 0 - 2 + 1 - 1 = -2
    act = tribute.Actionability(bounds={"income": (-5, 5), "debt": (0, 3), "years": (0, 10), "age": (18, 90)},
                                integer=["income", "debt", "years"], immutable=[], monotone={"years": 1})
    r = tribute.feature_responsiveness(_linear, x, act, feature_names=NAMES, model_output="logit",
                                       max_enumerate=64, data=np.array([[0, 0, 0, 18], [1, 1, 1, 90]]))
    # income: integers -5..5 except 0 -> flips when income > 2: {3, 4, 5} of 10 values
    assert r.scores[0, 0] == pytest.approx(3 / 10) and r.exact[0, 0] and r.stderr[0, 0] == 0.0
    # debt: 0..3 except 1 -> z = -2 debt + 1 - 1 > 0 needs debt < 0: none (debt 0 gives z = 0, not > 0)
    assert r.scores[0, 1] == 0.0 and r.reasons[0][1] == REASON_NO_FLIP and r.n_actions[0, 1] == 3
    # years: monotone up, 3..10 (8 values); z = -2 - 1 + 0.5 * years > 0 needs years > 6: {7..10}
    assert r.scores[0, 2] == pytest.approx(4 / 8) and r.n_actions[0, 2] == 8


def test_immutable_infeasible_and_already_target_reasons() -> None:
    x = np.array([[0.0, 1.0, 1.0, 0.5], [3.0, 0.0, 0.0, 0.5]])  # second row already approved
    act = tribute.Actionability(immutable=["age"], monotone={"income": -1, "debt": 1},
                                bounds={"income": (0.0, 5.0), "debt": (0.0, 2.0), "years": (0.0, 10.0)})
    r = tribute.feature_responsiveness(_linear, x, act, feature_names=NAMES, model_output="logit", seed=0,
                                       target=1)
    assert r.reasons[0][3] == REASON_IMMUTABLE and r.scores[0, 3] == 0.0 and not r.feasible[0, 3]
    # income may only decrease from 0 with lo = 0: no other value
    assert r.reasons[0][0] == REASON_NO_ACTION and not r.feasible[0, 0]
    # debt may only increase: it only hurts
    assert r.reasons[0][1] == REASON_NO_FLIP and r.feasible[0, 1]
    assert r.reasons[0][2] == REASON_RESPONSIVE and r.scores[0, 2] > 0
    assert r.unresponsive(0) == {"income": REASON_NO_ACTION, "debt": REASON_NO_FLIP, "age": REASON_IMMUTABLE}
    assert all(reason == REASON_ALREADY for reason in r.reasons[1]) and np.isnan(r.scores[1]).all()
    table = r.table(0)
    assert table[0]["feature"] == "years" and {row["feature"] for row in table} == set(NAMES)
    fig = r.plot(0)
    assert fig.axes and fig.axes[0].get_title().startswith("Recourse for input 0")


def test_torch_and_multiclass_models_and_budget() -> None:
    net = torch.nn.Linear(3, 3).double()
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], dtype=torch.float64))
        net.bias.copy_(torch.tensor([0.0, 0.0, 0.1], dtype=torch.float64))
    x = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)  # class 0
    before = {k: v.clone() for k, v in net.state_dict().items()}
    act = tribute.Actionability(bounds={0: (-1.0, 1.0), 1: (-1.0, 3.0), 2: (0.0, 0.5)})
    with pytest.raises(InputError, match="3 classes; pass target="):
        tribute.feature_responsiveness(net, x, act)
    r = tribute.feature_responsiveness(net, x, act, target=1, n_samples=2000, seed=0)
    # class 1 needs x1 > 1 (x0 = 1): [1, 3] of [-1, 3] -> 1/2; lowering x0 hands the win to class 2
    assert abs(r.scores[0, 1] - 0.5) < 4 * np.sqrt(0.25 / 2000)
    assert r.scores[0, 0] == 0.0 and r.scores[0, 2] == 0.0
    assert net.training and net.weight.requires_grad  # model untouched
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert responsiveness_cost(x, act, n_samples=2000) == 1 + 3 * 2000
    with pytest.raises(BudgetError, match=r"needs 6001 model rows.*budget=100; use n_samples <= 33"):
        tribute.feature_responsiveness(net, x, act, target=1, n_samples=2000, budget=100)


def test_actionability_errors_name_the_feature() -> None:
    x = np.zeros((1, 4))
    cases = [
        (tribute.Actionability(immutable=["agee"]), r"Actionability.immutable: feature 'agee' is not one of"),
        (tribute.Actionability(monotone={"debt": 2}, bounds={}), r"feature 'debt' has direction 2"),
        (tribute.Actionability(bounds={"years": (3.0, 1.0)}), r"feature 'years' has bounds \(3.0, 1.0\)"),
        (tribute.Actionability(bounds={"years": "x"}), r"feature 'years' has bounds 'x'"),
        (tribute.Actionability(immutable=["age"], bounds={"age": (0, 1)}), r"'age' is immutable and also"),
        (tribute.Actionability(bounds={"income": (0, 1)}), r"feature 'debt' is mutable but has no bounds"),
        (tribute.Actionability(integer=[7]), r"feature index 7 is out of range for 4 features"),
    ]
    for act, msg in cases:
        with pytest.raises(InputError, match=msg):
            tribute.feature_responsiveness(_linear, x, act, feature_names=NAMES, model_output="logit")
    with pytest.raises(InputError, match=r"batch x features table; got shape \(4,\)"):
        tribute.feature_responsiveness(_linear, np.zeros(4), tribute.Actionability(), model_output="logit")


def test_registered_and_seeded() -> None:
    info = tribute.analyses()["responsiveness"]
    assert info.kind == "decision" and info.returns == "ResponsivenessResult"
    x = np.array([[0.0, 1.0, 0.0, 0.0]])
    act = tribute.Actionability(bounds={n: (-2.0, 2.0) for n in NAMES})
    a = tribute.run_analysis("responsiveness", _linear, x, act, feature_names=NAMES, model_output="logit", seed=3)
    b = tribute.feature_responsiveness(_linear, x, act, feature_names=NAMES, model_output="logit", seed=3)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_decision_bench_suite_tiny(tmp_path: Path) -> None:
    """`tribute bench --suite decision-tiny`: the three ground truths hold on a few inputs."""
    import argparse
    import json

    from tribute.bench.decision_suite import cmd_decision_suite

    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    assert cmd_decision_suite(argparse.Namespace(suite="decision-tiny", seed=0, out=str(tmp_path))) == 0
    assert torch.equal(torch.random.get_rng_state(), state)  # the suite seeds torch inside a fork
    res = json.loads((tmp_path / "decision.json").read_text())
    rc, kl, ce = res["recourse"], res["shap_kl"], res["certified"]
    assert rc["max_abs_error_exact_features"] == 0.0 and rc["max_abs_error_vs_closed_form"] < 0.15
    assert rc["mean_score"]["age"] == 0.0 and rc["mean_score"]["postcode_score"] == 0.0
    assert kl["top3_is_planted_share"] == 1.0 and kl["mean_abs_credit_other"] < 1e-12
    assert kl["max_efficiency_gap"] < 1e-9
    assert kl["leaky_selection"]["leaky_accuracy"] == 1.0 and abs(kl["leaky_selection"]["kl_retained"]) < 1e-12
    radii = [row["median_radius"] for row in ce["rows"]]
    assert radii == sorted(radii) and all(row["violations"] == 0 for row in ce["rows"])
    cos_rows = ce["cosine"]["rows"]
    cos_radii = [row["median_radius_cos_0.9"] for row in cos_rows]
    assert cos_radii == sorted(cos_radii) and cos_radii[0] > 0
    assert all(row["median_radius_cos_0.8"] > row["median_radius_cos_0.9"] for row in cos_rows)
    assert all(row["checks"] > 0 and row["random_violations"] == 0 and row["pgd_violations"] == 0 for row in cos_rows)


def test_rows_at_the_model_match_n_evals() -> None:
    seen = {"rows": 0}

    def counting(rows: np.ndarray) -> np.ndarray:
        seen["rows"] += rows.shape[0]
        return _linear(rows)

    x = np.array([[0.0, 1.0, 1.0, 0.0], [0.2, 0.5, 0.0, 0.0]])
    act = tribute.Actionability(bounds={n: (-2.0, 2.0) for n in NAMES}, integer=["years"])
    r = tribute.feature_responsiveness(counting, x, act, feature_names=NAMES, model_output="logit", n_samples=50)
    assert seen["rows"] == r.n_evals == 2 + int(r.n_actions.sum())
    assert r.n_actions[0, 2] == 4 and r.exact[0, 2]  # years: -2..2 without the current 1


def test_one_hot_group_is_one_feature_enumerated_exactly() -> None:
    names = ["x0", "red", "blue", "green"]

    def model(rows: np.ndarray) -> np.ndarray:
        return rows @ np.array([1.0, 2.0, -1.0, 0.0]) - 1.0

    x = np.array([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])  # blue (z = -2), green (z = -1): denied
    act = tribute.Actionability(categorical={"colour": ["red", "blue", "green"]}, bounds={"x0": (0.0, 1.0)})
    r = tribute.feature_responsiveness(model, x, act, feature_names=names, model_output="logit", n_samples=500)
    assert r.feature_names == ["x0", "colour"]
    # blue -> red: z = 1 > 0; blue -> green: z = -1; green -> red: z = 1; green -> blue: z = -2
    assert r.scores[0, 1] == 0.5 and r.exact[0, 1] and r.n_actions[0, 1] == 2
    assert r.scores[1, 1] == 0.5 and r.stderr[1, 1] == 0.0
    # x0 in [0, 1] adds at most 1: not enough from blue (z <= -1), from green only at x0 = 1 (z = 0)
    assert r.reasons[0][0] == REASON_NO_FLIP and r.reasons[1][0] == REASON_NO_FLIP
    frozen = tribute.Actionability(categorical={"colour": ["red", "blue", "green"]}, immutable=["colour"],
                                   bounds={"x0": (0.0, 1.0)})
    r2 = tribute.feature_responsiveness(model, x, frozen, feature_names=names, model_output="logit")
    assert r2.reasons[0][1] == REASON_IMMUTABLE
    with pytest.raises(InputError, match=r"input 0 is not one-hot over group 'colour'"):
        tribute.feature_responsiveness(model, np.array([[0.0, 1.0, 1.0, 0.0]]), act, feature_names=names,
                                       model_output="logit")
    bad = tribute.Actionability(categorical={"colour": ["red", "blue"]}, bounds={"red": (0, 1), "x0": (0, 1)})
    with pytest.raises(InputError, match=r"'red' is a column of the one-hot group 'colour'"):
        tribute.feature_responsiveness(model, x, bad, feature_names=names, model_output="logit")


def test_sklearn_class_labels_are_labels_as_in_explain() -> None:
    """classes_ = [1, 2, 3]: target=2 is label 2 (column 1), as tribute.explain reads it."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.uniform(0, 3, size=(600, 2))
    y = 1 + np.digitize(X[:, 0], [1.0, 1.5])  # label 1 below 1.0, 2 on [1.0, 1.5), 3 above
    clf = LogisticRegression(C=100, max_iter=5000).fit(X, y)
    x = np.array([[0.3, 1.5]])
    act = tribute.Actionability(bounds={"x0": (0.0, 3.0), "x1": (0.0, 3.0)})
    r = tribute.feature_responsiveness(clf, x, act, target=2, n_samples=2000, seed=0)
    grid = np.linspace(0.0, 3.0, 30001)  # the truth: the share of x0 values predicted label 2
    truth = float(np.mean(clf.predict(np.column_stack([grid, np.full_like(grid, 1.5)])) == 2))
    assert truth < 0.25  # label 3 would be ~0.5
    assert abs(r.scores[0, 0] - truth) <= 4 * np.sqrt(truth * (1 - truth) / 2000)
    assert r.current.tolist() == [1] and r.target.tolist() == [2]
    r3 = tribute.feature_responsiveness(clf, x, act, target=3, n_samples=200, seed=0)
    assert r3.target.tolist() == [3]
    with pytest.raises(InputError, match="classes_"):
        tribute.feature_responsiveness(clf, x, act, target=0, n_samples=10)


def test_stderr_covers_small_scores_and_is_never_zero_when_sampled() -> None:
    """Truth 0.03 (class 1 iff x0 > 0.97, x0 ~ U[0, 1]): score +- 2 stderr covers it in >= 90% of
    200 seeds (the plain binomial sqrt(s (1 - s) / n) covered 0.79 and was 0 in 16 of 300)."""
    act = tribute.Actionability(bounds={"x0": (0.0, 1.0)})
    x = np.array([[0.0]])
    hits, zero = 0, 0
    for seed in range(200):
        r = tribute.feature_responsiveness(lambda X: np.asarray(X, float)[:, 0] - 0.97, x, act, seed=seed,
                                           n_samples=100, model_output="logit")
        s, se = float(r.scores[0, 0]), float(r.stderr[0, 0])
        hits += abs(s - 0.03) <= 2 * se
        zero += se == 0.0
    assert zero == 0
    assert hits / 200 >= 0.9


def test_the_decision_of_a_scikit_learn_classifier_is_its_predict() -> None:
    # A decision threshold of 0.9: these inputs are denied (predict 0) although their class-1
    # probability is over 0.5. The arg-max of predict_proba read them as already granted, and
    # every score was NaN ("already has the target class").
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import FixedThresholdClassifier

    x, y = load_breast_cancer(return_X_y=True)
    x = x[:, :5]
    clf = FixedThresholdClassifier(LogisticRegression(max_iter=5000), threshold=0.9).fit(x, y)
    p1 = clf.predict_proba(x)[:, 1]
    rows = np.flatnonzero((p1 > 0.5) & (p1 <= 0.9))[:3]
    r = tribute.feature_responsiveness(clf, x[rows], target=1, data=x, n_samples=50, seed=0)
    np.testing.assert_array_equal(r.current, [0, 0, 0])
    assert np.isfinite(r.scores).all() and (r.scores.max(1) > 0).all()


def test_the_predict_decision_is_read_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # the classifier's own predict ran on every candidate row in one call (millions of rows
    # for a large data set); it now runs in chunks, with the same decisions
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import FixedThresholdClassifier

    resp = importlib.import_module("tribute.methods.responsiveness")  # tribute.methods is a function too
    x, y = load_breast_cancer(return_X_y=True)
    x = x[:, :5]
    clf = FixedThresholdClassifier(LogisticRegression(max_iter=5000), threshold=0.9).fit(x, y)
    calls: list[int] = []
    predict = clf.predict

    def counted(a: np.ndarray) -> np.ndarray:
        calls.append(len(a))
        return predict(a)

    whole = tribute.feature_responsiveness(clf, x[:4], target=1, data=x, n_samples=50, seed=0)
    monkeypatch.setattr(resp, "PREDICT_CHUNK_ROWS", 7)
    monkeypatch.setattr(clf, "predict", counted)
    chunked = tribute.feature_responsiveness(clf, x[:4], target=1, data=x, n_samples=50, seed=0)
    np.testing.assert_array_equal(chunked.scores, whole.scores)
    assert max(calls) <= 7 and sum(calls) > 7


def test_a_sigmoid_model_read_as_a_logit_is_flagged_and_declared_probability_is_exact() -> None:
    """A one-column torch model returning sigmoid probabilities, not declared: its outputs are
    read as logits (decision output > 0: class 1 for every row, every score 0) -- that must not
    pass silently; declared ``model_output="probability"`` it matches the closed form."""

    class Sigmoid(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(x @ torch.as_tensor(W, dtype=x.dtype) + C)[:, None]

    x = np.array([[0.5, 1.0, 1.0, 30.0]])  # w.x + c = -2: class 0 (refused)
    act = tribute.Actionability(immutable=["age"], bounds={"income": (0, 6), "debt": (0, 3), "years": (0, 5)})
    xt = torch.as_tensor(x)
    with pytest.warns(UserWarning, match="model_output='probability'"):
        tribute.feature_responsiveness(Sigmoid(), xt, act, feature_names=NAMES, n_samples=50)
    r = tribute.feature_responsiveness(Sigmoid(), xt, act, feature_names=NAMES, n_samples=4000,
                                       model_output="probability")
    assert r.current.tolist() == [0] and r.target.tolist() == [1]
    for j, (lo, hi) in enumerate([(0, 6), (0, 3), (0, 5)]):
        truth = _closed_form(x[0], j, lo, hi)
        assert abs(r.scores[0, j] - truth) <= 4 * r.stderr[0, j] + 1e-12


def test_a_model_in_train_mode_decides_in_eval_mode_and_is_restored() -> None:
    """Dropout active made every decision random (scores changed from call to call and the
    current class was not the model's): the model runs in eval mode, as in tribute.explain."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Dropout(0.5),
                              torch.nn.Linear(16, 2)).double()
    x = torch.randn(12, 4, dtype=torch.float64)
    act = tribute.Actionability(bounds={j: (-1.0, 1.0) for j in range(4)})
    net.eval()
    ref = tribute.feature_responsiveness(net, x, act, n_samples=30)
    with torch.no_grad():
        current = net(x).argmax(1).numpy()
    net.train()
    got = tribute.feature_responsiveness(net, x, act, n_samples=30)
    assert net.training and all(m.training for m in net.modules())
    np.testing.assert_array_equal(got.current, current)
    np.testing.assert_array_equal(got.scores, ref.scores)


def test_budget_counts_both_passes_of_a_classifier_deciding_by_its_own_predict() -> None:
    # SVC(probability=True) decides with predict (Platt scaling may disagree with the arg-max of
    # predict_proba): every row is read twice. The budget bounds both passes, as n_evals does;
    # before, budget=11 ran 22 rows per input.
    from sklearn.svm import SVC

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    svc = SVC(probability=True, random_state=0).fit(X, y)
    calls = {"rows": 0}
    predict_proba, predict = svc.predict_proba, svc.predict

    def counted(f: object) -> object:
        def g(a: np.ndarray) -> np.ndarray:
            calls["rows"] += len(a)
            return f(a)  # type: ignore[operator]
        return g

    svc.predict_proba, svc.predict = counted(predict_proba), counted(predict)
    x = X[:2]
    act = tribute.Actionability(bounds={"x0": (-2.0, 2.0)}, immutable=["x1"])
    with pytest.raises(BudgetError, match=r"needs 12 model rows.*read twice.*budget=11"):
        tribute.feature_responsiveness(svc, x, act, n_samples=5, budget=11, feature_names=["x0", "x1"])
    r = tribute.feature_responsiveness(svc, x, act, n_samples=5, budget=12, feature_names=["x0", "x1"])
    assert r.n_evals == calls["rows"] <= 12 * len(x)


def test_hard_zero_one_labels_are_not_flagged_as_probabilities() -> None:
    # a callable returning a classifier's 0/1 predictions decides the same read either way; it
    # was warned "class 1 for every row" (rev34a)
    import warnings

    w = np.array([1.0, -1.0])

    def labels(a: np.ndarray) -> np.ndarray:
        return (np.asarray(a) @ w > 0).astype(float)

    x = np.array([[0.5, 1.0], [2.0, 0.0], [-1.0, 0.3]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        r = tribute.feature_responsiveness(labels, x, tribute.Actionability(bounds={"x0": (-3.0, 3.0)},
                                                                            immutable=["x1"]),
                                           n_samples=50, feature_names=["x0", "x1"])
    assert list(r.current) == [0, 1, 0]
