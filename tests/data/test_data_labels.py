"""Training labels and test targets in the shapes users pass to a data game (audit aud30d)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.games.data_fits import LogisticFit


def _classifier() -> tuple[torch.Tensor, torch.Tensor, torch.nn.Module, LogisticFit]:
    rng = np.random.default_rng(3)
    X, y = torch.tensor(rng.normal(size=(9, 2))), torch.tensor(rng.integers(0, 3, 9))
    fit = LogisticFit(3, l2=0.5)
    return X, y, fit(X, y, seed=0), fit


def test_one_hot_training_labels_are_refused_with_the_fix() -> None:
    X, y, model, fit = _classifier()
    onehot = torch.nn.functional.one_hot(y, 3)
    # before: torch's "Expected input batch_size (1) to match target batch_size (3)" from a
    # vmapped gradient deep inside the estimator
    with pytest.raises(tribute.InputError, match=r"y_train has shape \(9, 3\).*argmax"):
        tribute.explain(model, X[:2], method="grad_dot", target=y[:2],
                        players=tribute.TrainingData(X, onehot, fit=fit))


def test_a_list_target_says_what_a_list_means() -> None:
    X, y, model, fit = _classifier()
    with pytest.raises(tribute.InputError, match="several classes explained for every test point"):
        tribute.explain(model, X[:3], method="grad_dot", target=[0, 1, 2],
                        players=tribute.TrainingData(X, y, fit=fit))
    got = tribute.explain(model, X[:3], method="grad_dot", target=np.asarray([0, 1, 2]),
                          players=tribute.TrainingData(X, y, fit=fit))
    assert np.asarray(got.values).reshape(3, -1).shape == (3, 9)
