"""feature_responsiveness plans a second pass only where the classifier's own predict runs (rev34c)."""

from __future__ import annotations

import numpy as np

import tribute


class ProbaOnly:
    """An unknown classifier with predict_proba and no predict: its rows are read once."""

    classes_ = np.array([0, 1])

    def __init__(self) -> None:
        self.rows = 0

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        self.rows += len(x)
        p = 1.0 / (1.0 + np.exp(-(x[:, 0] + x[:, 1])))
        return np.stack([1.0 - p, p], 1)


def test_budget_of_a_classifier_without_predict_counts_one_pass() -> None:
    # budget=6 was refused as "needs 12 model rows ... each read twice" though the model reads 6
    model, x = ProbaOnly(), np.random.default_rng(0).normal(size=(2, 2))
    act = tribute.Actionability(bounds={"x0": (-2.0, 2.0)}, immutable=["x1"])
    r = tribute.feature_responsiveness(model, x, act, n_samples=5, budget=6, feature_names=["x0", "x1"])
    assert r.n_evals == model.rows <= 6 * len(x)
