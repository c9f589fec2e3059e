"""rev45a: review of aud45a's refusal of a ``model_output=`` the called method contradicts.

* ``model_output="probability"`` on ``SVC`` (called through ``decision_function``) where the
  explained rows' scores happen to lie in [0, 1] (0.172, 0.140) and the baseline's does not
  (-2.68): the reference-range check reads the explained rows only, so main explained clipped
  scores silently (``output="prob"`` credit 2.84 for feature 0, a "probability" moved by more
  than 1). aud45a's own test used rows whose scores are negative, refused on main already.
* The refusal's advice: ``model=randomforestclassifier.decision_function`` for an estimator
  that has none; ``XGBClassifier.decision_function`` named for XGBoost's ``binary:logitraw``,
  whose margins tribute reads from ``predict(output_margin=True)``.
* Legitimate neighbours keep working, each against Shapley values enumerated here over the
  2^n coalitions of the estimator's own method.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from _brute import brute_shapley

import tribute
from tribute.errors import ModelOutputError

pytest.importorskip("sklearn")


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    return x, (x[:, 0] > 0).astype(int)


def _shapley(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact Shapley values against the one baseline row ``b`` (enumeration, no tribute code)."""
    return brute_shapley(f, x, b[None, :])


def test_scores_in_unit_interval_on_the_rows_but_not_the_baseline_are_refused() -> None:
    from sklearn.svm import SVC

    x, y = _data()
    model = SVC().fit(x, y)
    scores = model.decision_function(x[[0, 1, 9]])
    assert 0.0 <= scores[0] <= 1.0 and 0.0 <= scores[1] <= 1.0 and scores[2] < 0.0
    for output in ("prob", "logit"):
        with pytest.raises(ModelOutputError, match="decision_function"):
            tribute.explain(model, x[:2], method="exact_shapley", baseline=x[9], output=output,
                            target=1, model_output="probability")


def test_the_advice_names_methods_the_estimator_has() -> None:
    from sklearn.ensemble import RandomForestClassifier

    x, y = _data()
    forest = RandomForestClassifier(5, random_state=0).fit(x, y)
    with pytest.raises(ModelOutputError, match="predict_proba") as info:
        tribute.explain(forest, x[:2], method="exact_shapley", baseline=x[9], output="prob",
                        target=1, model_output="logit")
    assert "decision_function" not in str(info.value)


def test_the_advice_names_xgboost_margins() -> None:
    xgb = pytest.importorskip("xgboost")
    x, y = _data()
    model = xgb.XGBClassifier(n_estimators=5, objective="binary:logitraw").fit(x, y)
    with pytest.raises(ModelOutputError, match=r"predict\(output_margin=True\)") as info:
        tribute.explain(model, x[:2], method="exact_shapley", baseline=x[9], output="prob",
                        target=1, model_output="probability")
    assert "decision_function" not in str(info.value).split("Drop")[0]


class _ProbabilityScores:
    """A classifier whose decision_function returns probabilities of class 1 (in [0, 1])."""

    _estimator_type = "classifier"
    classes_ = np.array([0, 1])

    def fit(self, *args: Any) -> _ProbabilityScores:
        return self

    def decision_function(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(1.0 / (1.0 + np.exp(-(np.asarray(rows) @ np.array([2.0, -1.0, 0.5])))))


@functools.lru_cache(maxsize=1)
def _cases() -> list[tuple[str, Any, str | None, str, Callable[[Any], np.ndarray]]]:
    """(name, estimator, model_output, output, the explained function of the rows)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, OneClassSVM

    x, y = _data()
    multi = np.stack([y, (x[:, 1] > 0).astype(int)], 1)
    calib = CalibratedClassifierCV(SVC(), cv=3).fit(x, y)
    svc = SVC().fit(x, y)
    one = OneClassSVM(gamma=0.5).fit(x)
    ovr = OneVsRestClassifier(LogisticRegression()).fit(x, multi)
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    lr = LogisticRegression().fit(x, y)

    class Float32Proba:
        _estimator_type = "classifier"
        classes_ = np.array([0, 1])

        def fit(self, *args: Any) -> Float32Proba:
            return self

        def predict_proba(self, rows: np.ndarray) -> np.ndarray:
            return np.asarray(lr.predict_proba(rows), dtype=np.float32)

    def logit(p: np.ndarray) -> np.ndarray:
        return np.log(p) - np.log1p(-p)

    return [
        ("calibrated, probability", calib, "probability", "prob", lambda r: calib.predict_proba(r)[:, 1]),
        ("calibrated, undeclared logit", calib, None, "logit", lambda r: logit(calib.predict_proba(r)[:, 1])),
        ("svc, logit", svc, "logit", "prob", lambda r: 1 / (1 + np.exp(-svc.decision_function(r)))),
        ("svc, raw", svc, "raw", "raw", lambda r: svc.decision_function(r)),
        ("one-class, logit", one, "logit", "raw", lambda r: one.decision_function(r)),
        ("one-class, raw", one, "raw", "raw", lambda r: one.decision_function(r)),
        ("probability scores", _ProbabilityScores(), "probability", "prob",
         lambda r: _ProbabilityScores().decision_function(r)),
        ("multi-label, probability", ovr, "probability", "prob", lambda r: ovr.predict_proba(r)[:, 1]),
        ("pipeline, probability", pipe, "probability", "logit", lambda r: logit(pipe.predict_proba(r)[:, 1])),
        ("float32 predict_proba, probability", Float32Proba(), "probability", "prob",
         lambda r: Float32Proba().predict_proba(r)[:, 1].astype(np.float64)),
    ]


@pytest.mark.parametrize("index", range(10))
def test_legitimate_declarations_still_work(index: int) -> None:
    name, model, model_output, output, f = _cases()[index]
    x, _ = _data()
    for rows, base in ((x[:3], x[9]), (x[[0]], x[1]), (x[[0]] * 8.0, x[1] * 8.0)):  # near-certain rows
        attr = tribute.explain(model, rows, method="exact_shapley", baseline=base, output=output,
                               target=None if "one-class" in name or model_output == "raw" else 1,
                               model_output=model_output)
        for i in range(rows.shape[0]):
            truth = _shapley(f, rows[i], base)
            np.testing.assert_allclose(np.asarray(attr.values, dtype=np.float64)[i], truth,
                                       atol=1e-6 if "float32" in name else 1e-9, err_msg=name)
