"""Review rev44d of aud44d: the training data is hashed once per explain call (not once per
block of coalitions) while in-place edits between calls are still caught; mislabel_auc's
input check accepts regression targets that are a float32 copy of y_train or shaped n x 1."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import tribute
import tribute.games.base as games_base
import tribute.games.data as games_data
import tribute.games.data_bank as data_bank
from tribute.errors import InputError
from tribute.games.data_fits import LogisticFit, RidgeFit
from tribute.metrics import mislabel_auc


def _ridge_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = X @ np.array([1.0, -1.0]) + 0.3 * rng.normal(size=n)
    return X, y, torch.tensor(rng.normal(size=(2, 2)))


def _refit_loo(data: tribute.TrainingData, fit: Any, Xt: torch.Tensor) -> np.ndarray:
    """v(all) - v(all without i), each by calling fit directly (no retrain bank)."""
    n = data.n_train
    full = fit(data.X, data.y, seed=0)(Xt).reshape(-1)
    cols = []
    for i in range(n):
        keep = torch.arange(n) != i
        cols.append(full - fit(data.X[keep], data.y[keep], seed=0)(Xt).reshape(-1))
    return torch.stack(cols, 1).detach().numpy()


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_training_data_is_hashed_once_per_explain_call(kind: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # before: array training data was re-hashed on every block of coalitions (plus once for
    # the fingerprint): 7 hashes for a 60-player leave-one-out in blocks of 10 coalitions;
    # at 60,000 x 784 (139 coalitions per block) about 430 hashes of 0.12 s per LOO call
    calls = [0]
    real = data_bank.data_fingerprint

    def counting(X: torch.Tensor, y: torch.Tensor) -> str:
        calls[0] += 1
        return real(X, y)

    monkeypatch.setattr(games_data, "data_fingerprint", counting)
    monkeypatch.setattr(data_bank, "data_fingerprint", counting)
    monkeypatch.setattr(games_base, "VALUE_BLOCK_ELEMENTS", 10 * 60)
    fit = RidgeFit(l2=1.0)
    X, y, Xt = _ridge_data(60)
    Xd: Any = X if kind == "numpy" else torch.tensor(X)
    yd: Any = y if kind == "numpy" else torch.tensor(y)
    data = tribute.TrainingData(Xd, yd, fit=fit)
    model = fit(data.X, data.y, seed=0)
    evaluate_calls = [0]
    real_evaluate = games_data.DataGame._evaluate

    def counting_evaluate(self: Any, masks: torch.Tensor, shared: bool) -> torch.Tensor:
        evaluate_calls[0] += 1
        return real_evaluate(self, masks, shared)

    monkeypatch.setattr(games_data.DataGame, "_evaluate", counting_evaluate)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ModelMismatchWarning
        for call in range(2):
            calls[0] = 0
            attr = tribute.explain(model, Xt, method="feature_ablation", players=data)
            assert evaluate_calls[0] >= 5  # the case runs in several blocks
            assert calls[0] <= 1, (call, calls[0])
    np.testing.assert_allclose(attr.values.numpy(), _refit_loo(data, fit, Xt), rtol=0, atol=1e-12)
    # an in-place edit between calls is still caught: new bank, new fingerprint
    if kind == "numpy":
        Xd[3, 0] += 2.0
    else:
        yd[3] += 2.0
    model = fit(data.X, data.y, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = tribute.explain(model, Xt, method="feature_ablation", players=data)
    assert again.params["data_fingerprint"] != attr.params["data_fingerprint"]
    np.testing.assert_allclose(again.values.numpy(), _refit_loo(data, fit, Xt), rtol=0, atol=1e-12)


def test_a_reused_game_sees_an_edit_made_between_metric_calls() -> None:
    # the pinned digest is dropped when a fresh hash (the metric's fingerprint check) differs
    fit = RidgeFit(l2=1.0)
    X, y, Xt = _ridge_data(6, seed=1)
    data = tribute.TrainingData(X, y, fit=fit)
    game = tribute.build_game(fit(data.X, data.y, seed=0), Xt, players=data)
    loo = torch.tensor(1.0 - np.eye(6))  # the 6 leave-one-out coalitions
    v0 = game.value(loo)[:, :, 0].numpy()
    X[2, 1] -= 1.5
    data.fingerprint()  # what every metric's data check does first
    v1 = game.value(loo)[:, :, 0].numpy()
    keep = np.arange(6) != 4
    truth = fit(data.X[keep], data.y[keep], seed=0)(Xt).reshape(-1).detach().numpy()
    assert abs(v1[:, 4] - truth).max() < 1e-12
    assert abs(v0[:, 4] - truth).max() > 1e-3  # the edit changed that subset's model


def test_on_disk_bank_refuses_data_edited_in_place_and_names_the_fix(tmp_path: Path) -> None:
    fit = RidgeFit(l2=1.0)
    X, y, Xt = _ridge_data(5, seed=2)
    data = tribute.TrainingData(X, y, fit=fit, bank=tmp_path / "bank")
    model = fit(data.X, data.y, seed=0)
    tribute.explain(model, Xt, method="feature_ablation", players=data)
    y[1] += 1.0
    with pytest.raises(InputError, match=r"different data.*use another bank path"):
        tribute.explain(fit(data.X, data.y, seed=0), Xt, method="feature_ablation", players=data)


@pytest.mark.parametrize("case", ["float32_target", "column_y_train"])
def test_mislabel_auc_accepts_regression_targets_equal_to_y_train(case: str) -> None:
    # before: a float32 copy of a float64 y_train, or y_train of shape (n, 1) with target
    # (n, 1), was refused as "targets differ from y_train at 30 of 30 examples"
    rng = np.random.default_rng(5)
    n = 30
    X = rng.normal(size=(n, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=n)
    flip = np.zeros(n, dtype=bool)
    flip[:5] = True
    y[:5] += 3.0  # corrupted targets
    fit = RidgeFit(l2=1.0)
    ytr: Any = y if case == "float32_target" else y[:, None]
    target: Any = y.astype(np.float32) if case == "float32_target" else y[:, None]
    data = tribute.TrainingData(X, ytr, fit=fit)
    model = fit(data.X, data.y, seed=0)
    attr = tribute.explain(model, X, target=target, output="loss", method="grad_dot", players=data)
    game = tribute.build_game(model, X, target=target, output="loss", players=data)
    got = mislabel_auc(game, attr, ground_truth=flip).extra["auc"]
    # truth: |phi_ii| = |g_i|^2, g_i = 2 (pred_i - y_i) [x_i, 1] for the linear model, by hand
    w = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()  # weight, bias
    Z = np.hstack([X, np.ones((n, 1))])
    pred = Z @ w
    assert np.allclose(pred, model(torch.tensor(X)).detach().numpy().reshape(-1))
    self_inf = (2.0 * (pred - y)) ** 2 * (Z**2).sum(1)
    assert got == pytest.approx(roc_auc_score(flip, self_inf), abs=1e-12)
    # a target that really differs is still refused
    bad = target.copy()
    bad[7] += 0.5
    attr = tribute.explain(model, X, target=bad, output="loss", method="grad_dot", players=data)
    game = tribute.build_game(model, X, target=bad, output="loss", players=data)
    with pytest.raises(InputError, match="1 of 30"):
        mislabel_auc(game, attr, ground_truth=flip)


def test_mislabel_auc_accepts_class_labels_shaped_n_by_1() -> None:
    rng = np.random.default_rng(6)
    n = 24
    X = rng.normal(size=(n, 2))
    y = (X[:, 0] > 0).astype(np.int64)
    flip = np.zeros(n, dtype=bool)
    flip[:4] = True
    y[:4] = 1 - y[:4]
    fit = LogisticFit(2, l2=1.0)
    data = tribute.TrainingData(X, y[:, None], fit=fit)
    model = fit(data.X, data.y.reshape(-1), seed=0)
    attr = tribute.explain(model, X, target=y, output="loss", method="grad_dot", players=data)
    game = tribute.build_game(model, X, target=y, output="loss", players=data)
    got = mislabel_auc(game, attr, ground_truth=flip).extra["auc"]
    V = np.asarray(attr.values).reshape(n, n)
    assert got == pytest.approx(roc_auc_score(flip, np.abs(np.diag(V))), abs=1e-12)
