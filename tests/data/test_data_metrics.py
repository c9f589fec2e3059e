"""Data metrics (loo_correlation, mislabel_auc) and the metagradient against retraining."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_cases import Case, logistic_case, mlp_case

import tribute
from tribute.errors import InputError, UnsupportedModelError
from tribute.metrics import loo_correlation, mislabel_auc


def test_loo_correlation_is_one_for_loo_itself(ridge: Case) -> None:
    data = ridge.data()
    game = tribute.build_game(ridge.model, ridge.X_test, players=data)
    loo = tribute.explain(ridge.model, ridge.X_test, method="feature_ablation", players=data)
    res = loo_correlation(game, loo)
    np.testing.assert_allclose(res.scores, 1.0, atol=1e-12)
    inf = tribute.explain(ridge.model, ridge.X_test, method="influence", players=data)
    assert loo_correlation(game, inf).mean > 0.999
    np.testing.assert_allclose(res.extra["loo"], loo.values.numpy())


def test_mislabel_auc_finds_flipped_labels() -> None:
    case = logistic_case(n=80)
    flipped = np.arange(0, 80, 10)
    y = case.y.clone()
    y[flipped] = (y[flipped] + 1) % 3
    fit = case.fit
    model = fit(case.X, y, seed=0)
    data = tribute.TrainingData(case.X, y, fit=fit)
    attr = tribute.explain(model, case.X, method="influence", target=y, output="loss", players=data)
    game = tribute.build_game(model, case.X, target=y, output="loss", players=data)
    res = mislabel_auc(game, attr, ground_truth=flipped)
    assert res.extra["auc"] == pytest.approx(res.mean) and res.mean > 0.8  # labels are noisy too
    assert res.n == len(flipped)
    # a perfect detector and a reversed one
    perfect = np.zeros((80, 80))
    perfect[flipped, flipped] = 5.0
    attr.values = torch.as_tensor(perfect)
    assert mislabel_auc(game, attr, ground_truth=flipped).mean == 1.0
    with pytest.raises(InputError, match="some, but not all"):
        mislabel_auc(game, attr, ground_truth=np.zeros(80, dtype=bool))


def test_metagradient_matches_finite_differences_of_retraining() -> None:
    case = mlp_case(n=30, steps=40)
    data = case.data()
    mg = tribute.explain(case.model, case.X_test, method="metagradient", players=data,
                         target=case.y_test)
    assert mg.extra["replay_gap"] < 1e-10
    # d v / d w_i by central differences of real (weighted) retraining through the bank
    game = tribute.build_game(case.model, case.X_test, players=data, target=case.y_test)
    eps = 1e-4
    for i in (0, 7, 19):
        up, down = np.ones(30), np.ones(30)
        up[i] += eps
        down[i] -= eps
        v = game.value(np.stack([up, down]))[:, :, 0].numpy()
        np.testing.assert_allclose(mg.values[:, i].numpy(), (v[:, 0] - v[:, 1]) / (2 * eps),
                                   rtol=1e-4, atol=1e-7)


def test_metagradient_needs_a_differentiable_replay(ridge: Case) -> None:
    with pytest.raises(UnsupportedModelError, match="unrolled"):
        tribute.explain(ridge.model, ridge.X_test, method="metagradient", players=ridge.data())
    case = mlp_case(n=20, steps=10)
    wrong = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    with pytest.raises(InputError, match="reproduce"):
        tribute.explain(wrong, case.X_test, method="metagradient", players=case.data())


def test_evaluate_loo_correlation_on_a_regression_attribution_needs_no_target(ridge: Case) -> None:
    # a regression data game has no class-index targets: evaluate reads the attribution's own
    # (absent) target instead of demanding one
    data = ridge.data()
    attr = tribute.explain(ridge.model, ridge.X_test, method="influence", players=data)
    assert attr.targets is None
    plain = tribute.evaluate(ridge.model, ridge.X_test, attr, "loo_correlation", players=data)
    named = tribute.evaluate(ridge.model, ridge.X_test, attr, "loo_correlation", players=data,
                             target="predicted")
    np.testing.assert_array_equal(plain.scores, named.scores)
    assert plain.mean > 0.999
