"""rev51v: the explorer's internals cache also keys an estimator's fitted classes.

aud51v keyed the tree_shap rule's cache by the estimator's parameters (a refit in place with
another objective kept its first answer). Its sibling: a ``GradientBoostingClassifier`` refit in
place on three classes with the same parameters kept the binary answer under ``output='logit'``:
tree_shap was offered and raised UnsupportedModelError on click. Truth: a fresh subject of the
refit model, whose catalogue refuses tree_shap there.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("starlette")
from tribute.explorer import compute
from tribute.explorer.subjects import Subject


def _subject(model: object) -> Subject:
    x = np.random.default_rng(0).normal(size=(90, 4))
    return Subject(name="t", title="t", kind="tabular", model=model, inputs=x[:2].copy(),
                   baseline=x.mean(0), target=None, output="logit",
                   class_names=[str(c) for c in getattr(model, "classes_", [])],
                   feature_names=[f"x{i}" for i in range(4)], gradients=False)


def _usable(subject: Subject) -> bool:
    return bool(next(e for e in compute.method_catalogue(subject) if e["name"] == "tree_shap")["usable"])


def test_a_classifier_refit_in_place_on_more_classes_is_read_again() -> None:
    from sklearn.ensemble import GradientBoostingClassifier

    x = np.random.default_rng(0).normal(size=(90, 4))
    s = x[:, 0] + x[:, 1] * x[:, 2]
    model = GradientBoostingClassifier(n_estimators=3, max_depth=2, random_state=0).fit(x, (s > 0).astype(int))
    subject = _subject(model)
    assert _usable(subject)  # binary: the log-odds are the trees' margin
    model.fit(x, np.digitize(s, [-0.5, 0.5]))  # same parameters, three classes
    subject.class_names = ["0", "1", "2"]
    assert not _usable(_subject(model))  # the truth: a fresh subject refuses it
    assert not _usable(subject)
