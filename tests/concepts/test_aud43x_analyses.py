"""Audit aud43x (stop 43) of the analyses: feature responsiveness of a model with one raw output.

A scikit-learn regressor (``predict``: one raw number per row) was read as a classifier whose
decision is ``output > 0``, without a word: for ``f(x) = x0 + 2 x1 + 5`` at ``x = (-5, -1)``
(``f = -2``) the scores were 0.65 / 0.49, the shares of actions making ``f > 0`` -- a threshold
the user never gave. It is now refused, naming the fix (declare the output, or subtract the
threshold); the fix it names gives the closed-form scores of the threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from tribute.errors import InputError
from tribute.methods.responsiveness import Actionability, feature_responsiveness

sklearn_lm = pytest.importorskip("sklearn.linear_model")


def _regressor() -> tuple[Any, np.ndarray]:
    X = np.random.default_rng(0).normal(size=(50, 2))
    reg = sklearn_lm.LinearRegression().fit(X, X @ [1.0, 2.0] + 5.0)  # exact: x0 + 2 x1 + 5
    return reg, np.array([[-5.0, -1.0]])


ACT = Actionability(bounds={"x0": (-10.0, 10.0), "x1": (-10.0, 10.0)})


def test_a_regressors_raw_output_is_refused_not_thresholded_at_zero() -> None:
    reg, x = _regressor()
    with pytest.raises(InputError, match=r"one raw output.*model_output='logit'.*predict\(X\) - t"):
        feature_responsiveness(reg, x, ACT, n_samples=200)
    net = torch.nn.Linear(2, 1)
    with pytest.raises(InputError, match="one raw output"):
        feature_responsiveness(net, torch.tensor(x, dtype=torch.float32), ACT, n_samples=50, model_output="raw")


def test_the_named_fix_gives_the_closed_form_scores_of_the_threshold() -> None:
    reg, x = _regressor()
    t = 1.0  # approve when f(x) > 1: x0 > -2 (12 of the 20 units), x1 > 0.5 (9.5 of 20)
    res = feature_responsiveness(lambda X: reg.predict(X) - t, x, ACT, n_samples=4000,
                                 model_output="logit", seed=3)
    truth = np.array([12.0 / 20.0, 9.5 / 20.0])
    assert np.all(np.abs(res.scores[0] - truth) <= 4 * res.stderr[0]), (res.scores, truth, res.stderr)
    assert int(res.current[0]) == 0 and int(res.target[0]) == 1
