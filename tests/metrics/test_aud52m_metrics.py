"""aud52m: shapley_error / infidelity of tree_shap's margins scored on the probability game.

tree_shap of a boosted classifier explains the trees' margin (log-odds) with ``output="raw"``,
while evaluate's default game (the attribution's ``output="raw"``) reads ``predict_proba``:
exact interventional TreeSHAP values scored a ``shapley_error`` of 3.3-5.2 (their own game,
``output="logit"``, gives 1e-15), silently; ``tribute evaluate`` (the bench runner) ranked them
below the wrong class's credits. deeplift skips a final Softmax and explains the logits, scored
against the softmax output the same way. Metrics that read only the credits' order (deletion)
keep scoring the model's output.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.ensemble import GradientBoostingClassifier, RandomForestRegressor

import tribute
from tribute.errors import InputError
from tribute.metrics import OutputMismatchWarning


def _data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(200, 5))
    return x, (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)


@pytest.mark.parametrize("metric", ["shapley_error", "infidelity"])
def test_margin_credits_of_a_binary_classifier_refuse_the_probability_game(metric: str) -> None:
    x, y = _data()
    model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x, y)
    rows, bg = x[:4], x[100:120]
    attr = tribute.explain(model, rows, method="tree_shap", baseline=bg, kernel="numpy")
    with pytest.raises(InputError, match=r"reads the model's probabilities.*output='logit'") as err:
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


@pytest.mark.parametrize("final", [torch.nn.Softmax(dim=1), torch.nn.LogSoftmax(dim=1)])
def test_deeplift_logits_refuse_the_softmax_output_game(final: torch.nn.Module) -> None:
    # deeplift skips a final Softmax and explains the logits: shapley_error 1.98 against the
    # softmax output's Shapley values where the same credits score 0.085 on the logits
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3), final).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    attr = tribute.explain(net, x, method="deeplift")
    for metric in ("shapley_error", "infidelity"):
        with pytest.raises(InputError, match=r"logits before the model's final Softmax.*model\[:-1\]"):
            tribute.evaluate(net, x, attr, metric=metric)
        assert np.isfinite(tribute.evaluate(net, x, attr, metric=metric, output="raw").mean)  # asked for
    assert np.isfinite(tribute.evaluate(net, x, attr, metric="deletion").mean)  # order only
    # explained and evaluated without the final layer: scored, on the logits
    logits = tribute.explain(net[:-1], x, method="deeplift")
    own = tribute.evaluate(net[:-1], x, logits, metric="shapley_error").mean
    np.testing.assert_allclose(np.asarray(logits.values), np.asarray(attr.values), atol=1e-12)
    # the softmax model's credits on the logits model: not refused (the model decides), and
    # warned as credits of another model (their recorded output is the softmax's)
    with pytest.warns(OutputMismatchWarning):
        other = tribute.evaluate(net[:-1], x, attr, metric="shapley_error").mean
    assert own == pytest.approx(other)


def test_deeplift_of_a_model_without_a_final_softmax_is_scored() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    attr = tribute.explain(net, x, method="deeplift")
    assert attr.extra["explained"] == "output"
    assert np.isfinite(tribute.evaluate(net, x, attr, metric="shapley_error").mean)
