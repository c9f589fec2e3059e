"""aud52m: shapley_error / infidelity of tree_shap's margins scored on the probability game.

tree_shap of a boosted classifier explains the trees' margin (log-odds) with ``output="raw"``,
while evaluate's default game (the attribution's ``output="raw"``) reads ``predict_proba``:
exact interventional TreeSHAP values scored a ``shapley_error`` of 3.3-5.2 (their own game,
``output="logit"``, gives 1e-15), silently. Metrics that read only the credits' order
(deletion) keep scoring the probability game.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier, RandomForestRegressor

import tribute
from tribute.errors import InputError


def _data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(200, 5))
    return x, (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)


@pytest.mark.parametrize("metric", ["shapley_error", "infidelity"])
def test_margin_credits_of_a_binary_classifier_refuse_the_probability_game(metric: str) -> None:
    x, y = _data()
    model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x, y)
    rows, bg = x[:4], x[100:120]
    attr = tribute.explain(model, rows, method="tree_shap", baseline=bg, kernel="numpy")
    with pytest.raises(InputError, match=r"output='logit'.*probabilities") as err:
        tribute.evaluate(model, rows, attr, metric=metric, baseline=bg)
    assert "margin (log-odds)" in str(err.value) and metric in str(err.value)
    # the credits' own game: exact values
    own = tribute.evaluate(model, rows, attr, metric=metric, baseline=bg, output="logit")
    if metric == "shapley_error":
        assert own.mean < 1e-10
        # asked for explicitly, the probability game is scored (far from the credits' units)
        assert tribute.evaluate(model, rows, attr, metric=metric, baseline=bg, output="raw").mean > 1.0


def test_margin_credits_with_no_matching_output_name_no_output_logit() -> None:
    x, y = _data()
    y3 = y + (x[:, 3] > 0.5)
    model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x, y3)
    rows, bg = x[:4], x[100:120]
    attr = tribute.explain(model, rows, method="tree_shap", baseline=bg, kernel="numpy")
    with pytest.raises(InputError, match="No output= reads that quantity") as err:
        tribute.evaluate(model, rows, attr, metric="shapley_error", baseline=bg)
    assert "output='logit' to score" not in str(err.value)


def test_order_metrics_and_matching_units_are_not_refused() -> None:
    x, y = _data()
    model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x, y)
    rows, bg = x[:4], x[100:120]
    attr = tribute.explain(model, rows, method="tree_shap", baseline=bg, kernel="numpy")
    # deletion reads the credits' order only: the probability game, as before
    got = tribute.evaluate(model, rows, attr, metric="deletion", baseline=bg)
    same = tribute.evaluate(model, rows, attr, metric="deletion", baseline=bg, output="raw")
    np.testing.assert_array_equal(got.scores, same.scores)
    # credits in the game's own units: tree_shap explained for output="logit", a forest's
    # predictions, kernel_shap of the probability game
    logit = tribute.explain(model, rows, method="tree_shap", baseline=bg, output="logit", kernel="numpy")
    assert tribute.evaluate(model, rows, logit, metric="shapley_error", baseline=bg).mean < 1e-10
    forest = RandomForestRegressor(n_estimators=5, max_depth=3, random_state=0).fit(x, x[:, 0])
    fa = tribute.explain(forest, rows, method="tree_shap", baseline=bg, kernel="numpy")
    assert tribute.evaluate(forest, rows, fa, metric="shapley_error", baseline=bg).mean < 1e-10
    ks = tribute.explain(model, rows, method="exact_shapley", baseline=bg.mean(0))
    assert tribute.evaluate(model, rows, ks, metric="shapley_error", baseline=bg.mean(0)).mean < 1e-10


def test_bench_runner_marks_margin_credits_na_on_the_probability_game() -> None:
    # `tribute evaluate --methods tree_shap --metrics shapley_error` ranked the exact margin
    # credits (3.44) below the wrong class's credits (2.02) on a GradientBoostingClassifier
    from tribute.bench import runner
    from tribute.bench.suites import Case

    x, y = _data()
    model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x, y)
    rows = x[:6]
    case = Case(name="user", title="t", description="d", modality="tabular", model=model,
                inputs=rows, target=model.predict(rows).astype(np.int64),
                baseline=x[100:120].mean(0), n_classes=2,
                method_params={"tree_shap": {"kernel": "numpy"}})  # no numba compile in a test
    metrics, _ = runner.resolve_metrics(["shapley_error", "infidelity", "deletion"])
    _, scores = runner.run_cases([case], methods=["tree_shap", "exact_shapley"], metrics=metrics,
                                 references=False, log=None)
    got = {(s.method, s.metric): s for s in scores}
    for metric in ("shapley_error", "infidelity"):
        assert got[("tree_shap", metric)].status == "n/a"
        assert "unlike units" in got[("tree_shap", metric)].message
        assert got[("exact_shapley", metric)].status == "ok"
    assert got[("tree_shap", "deletion")].status == "ok"
    assert got[("exact_shapley", "shapley_error")].mean < 1e-10
