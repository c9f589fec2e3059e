"""Review rev50v of aud50v's explorer rule: tree_shap is offered where its credits are those of
the output every other method explains on the page.

An XGBoost ``binary:hinge`` classifier gives hard 0/1 classes (the page and the model-agnostic
methods explain them); its trees add up to the margin, a step of which is the class. The rule
refused boosted classifiers by their link only, and a hinge classifier's link is the identity:
tree_shap was offered and its credits were 0.296 off ``exact_shapley`` (exact enumeration over
the 5 players' coalitions) on the same game.
"""

from __future__ import annotations

import numpy as np
import pytest

from tribute.explorer.compute import method_catalogue
from tribute.explorer.subjects import Subject

xgboost = pytest.importorskip("xgboost")


def _subject(model: object, classes: list[str] | None, x: np.ndarray) -> Subject:
    return Subject(name="t", title="t", kind="tabular", model=model, inputs=x, baseline=x.mean(0),
                   target="predicted" if classes else None, class_names=classes,
                   feature_names=list("abcde"), labels=[""] * len(x), gradients=False)


def _data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(60, 5))
    return x, (x[:, 0] + x[:, 1] > 0).astype(int)


def _tree_shap(model: object, classes: list[str] | None, x: np.ndarray) -> dict[str, object]:
    entry: dict[str, object] = {e["name"]: e for e in method_catalogue(_subject(model, classes, x))}[
        "tree_shap"]
    return entry


def test_a_hinge_classifiers_margin_tree_shap_is_refused_and_a_regressors_is_offered() -> None:
    x, y = _data()
    hinge = xgboost.XGBClassifier(objective="binary:hinge", n_estimators=5, max_depth=2, n_jobs=1)
    entry = _tree_shap(hinge.fit(x, y), ["0", "1"], x)
    assert not entry["usable"]
    assert "hard 0/1 classes" in str(entry["why"]) and "exact_shapley" in str(entry["why"])
    # a regressor's trees add up to its prediction: offered
    reg = xgboost.XGBRegressor(n_estimators=5, max_depth=2, n_jobs=1).fit(x, x[:, 0] * 2 + x[:, 2])
    assert _tree_shap(reg, None, x)["usable"]
    # a count regressor's trees add up to the log of its prediction: refused, said so
    pois = xgboost.XGBRegressor(objective="count:poisson", n_estimators=5, max_depth=2, n_jobs=1)
    assert "not the predictions" in str(_tree_shap(pois.fit(x, np.exp(0.3 * x[:, 0])), None, x)["why"])

