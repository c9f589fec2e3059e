"""rev48b: evaluate's own re-explain calls (max_sensitivity, stability, random_logit) hand
explain the attribution's output columns; on a classifier whose classes_ are strings of
integers (['1', '10', '2']) every such call raised small48b's "integers read as output columns"
warning (1, 5 and 1 per evaluate call) although the user named the class correctly. The
scores must equal those of the same model fitted on labels that are not integer-like."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import tribute


@pytest.mark.parametrize("metric", ["max_sensitivity", "stability", "random_logit"])
@pytest.mark.parametrize("per_sample", [False, True])
def test_reexplain_does_not_warn_on_integer_string_classes(metric: str, per_sample: bool) -> None:
    rng = np.random.default_rng(0)
    x_all = rng.normal(size=(90, 3))
    idx = rng.integers(0, 3, 90)
    y_int = np.array(["1", "10", "2"], dtype=object)[idx]  # classes_ sorted as strings
    y_abc = np.array(["a", "b", "c"], dtype=object)[idx]  # same order, not integer-like
    clf = LogisticRegression(max_iter=500).fit(x_all, y_int)
    ref = LogisticRegression(max_iter=500).fit(x_all, y_abc)
    x, base = x_all[:3], x_all[:20].mean(0)
    scores = []
    for model, y in ((clf, y_int), (ref, y_abc)):
        target = y[:3] if per_sample else "10" if model is clf else "b"
        attr = tribute.explain(model, x, method="kernel_shap", target=target, budget=32, seed=0,
                               baseline=base)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = tribute.evaluate(model, x, attr, metric=metric, baseline=base)
        assert not [w for w in caught if "strings of integers" in str(w.message)], metric
        scores.append(np.asarray(res.scores, dtype=float))
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-6, atol=1e-9)
