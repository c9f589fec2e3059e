"""Audit aud50v: the explorer offers a model-specific method exactly where it reads the model.

The catalogue's rule was "model-specific methods on image subjects only". Measured (tribute.explain
called directly with the subject's settings is the truth): ``tree_shap`` was refused on every
tree subject (a random forest regressor, a decision tree / forest classifier) and offered on a
CNN, where it raised; DeepLIFT, LRP, guided backprop, deconvolution and AttnLRP were refused on a
torch MLP's table although each runs; AttnLRP was offered on a CNN and raised. A boosted
classifier's ``tree_shap`` explains its margin (log-odds), not the probabilities the page shows
and the other methods explain (1.24 apart from exact_shapley on a GradientBoostingClassifier):
refused there, with the reason.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import tribute

pytest.importorskip("starlette")

from tribute.explorer.compute import _explain, method_catalogue
from tribute.explorer.subjects import Subject

_MODEL_SPECIFIC = ("tree_shap", "deeplift", "lrp", "guided_backprop", "deconvolution", "attnlrp",
                   "grad_cam")


def _table(model: object, classes: list[str] | None) -> Subject:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    inputs: object = X
    base: object = X.mean(0)
    if isinstance(model, torch.nn.Module):
        inputs, base = torch.from_numpy(X), torch.from_numpy(X.mean(0))
    return Subject(name="t", title="t", kind="tabular", model=model, inputs=inputs, baseline=base,
                   target="predicted" if classes else None, class_names=classes,
                   feature_names=list("abcd"), labels=[""] * 30,
                   gradients=isinstance(model, torch.nn.Module))


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int), 2 * X[:, 0] + X[:, 2]


def _subjects() -> list[Subject]:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestRegressor
    from sklearn.tree import DecisionTreeClassifier

    X, y, yr = _data()
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(),
                              torch.nn.Linear(6, 2)).double().eval()
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(2 * 5 * 5, 2)).eval()
    image = Subject(name="i", title="i", kind="image", model=cnn, inputs=torch.randn(2, 1, 5, 5),
                    class_names=["0", "1"], labels=["", ""])
    return [_table(RandomForestRegressor(n_estimators=3, max_depth=3, random_state=0).fit(X, yr), None),
            _table(DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y), ["0", "1"]),
            _table(GradientBoostingClassifier(n_estimators=3, max_depth=2).fit(X, y), ["0", "1"]),
            _table(mlp, ["0", "1"]), image]


def _runs(s: Subject, method: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _explain(s, 1, method, {}, None, 0)
    except tribute.errors.TributeError:
        return False
    return True


@pytest.mark.slow
def test_model_specific_methods_are_offered_where_they_run() -> None:
    offered_somewhere = set()
    for s in _subjects():
        cat = {e["name"]: e for e in method_catalogue(s)}
        for method in _MODEL_SPECIFIC:
            e = cat[method]
            if e["usable"]:
                offered_somewhere.add(method)
                assert _runs(s, method), (s.model, method)
            elif "margin" not in e["why"]:  # the boosted classifier's tree_shap: runs, refused
                assert not _runs(s, method), (s.model, method, e["why"])
    # offered on a table: tree_shap (trees), deeplift/lrp/... (the MLP); was image-only
    assert {"tree_shap", "deeplift", "lrp", "guided_backprop", "grad_cam"} <= offered_somewhere


def test_tree_shap_offered_on_trees_equals_exact_shapley_and_margin_is_refused() -> None:
    subjects = _subjects()
    for s in subjects[:2]:  # regressor, decision tree classifier (probabilities)
        assert {e["name"]: e for e in method_catalogue(s)}["tree_shap"]["usable"]
        a = _explain(s, 1, "tree_shap", {}, None, 0)
        b = _explain(s, 1, "exact_shapley", {}, None, 0)
        np.testing.assert_allclose(np.asarray(a.values, float), np.asarray(b.values, float),
                                   atol=1e-12)
    why = {e["name"]: e for e in method_catalogue(subjects[2])}["tree_shap"]["why"]
    assert "margin" in why and "exact_shapley" in why
    image = {e["name"]: e for e in method_catalogue(subjects[4])}
    assert not image["tree_shap"]["usable"] and "torch module" in image["tree_shap"]["why"]
    assert not image["attnlrp"]["usable"] and "Conv2d" in image["attnlrp"]["why"]
