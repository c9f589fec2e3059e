"""The data game, the retrain bank and retraining-based estimators against enumeration."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from data_cases import Case, ridge_case

import tribute
from tribute.errors import InputError
from tribute.games.data_bank import RetrainBank
from tribute.games.data_fits import RidgeFit
from tribute.metrics import linear_score


def _retrained_value(case: Case, keep: np.ndarray) -> np.ndarray:
    """v(S) by training directly (no bank): the model's raw output on the test points."""
    idx = torch.as_tensor(np.flatnonzero(keep), dtype=torch.long)
    with torch.no_grad():
        return case.fit(case.X[idx], case.y[idx], seed=0)(case.X_test)[:, 0].numpy()


def _snapshot(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], bool]:
    return {k: v.clone() for k, v in model.state_dict().items()}, model.training


def test_leave_one_out_equals_direct_retraining() -> None:
    case = ridge_case(n=12, n_test=3)
    before = _snapshot(case.model)
    attr = tribute.explain(case.model, case.X_test, method="feature_ablation", players=case.data())
    full = _retrained_value(case, np.ones(12))
    for i in range(12):
        keep = np.ones(12)
        keep[i] = 0
        np.testing.assert_allclose(attr.values[:, i].numpy(), full - _retrained_value(case, keep),
                                   rtol=1e-9, atol=1e-11)
    after = _snapshot(case.model)
    assert before[1] == after[1] and all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert attr.player_kind == "example" and attr.values.shape == (3, 12)


@pytest.mark.parametrize("method", ["exact_shapley", "banzhaf"])
def test_shapley_banzhaf_equal_enumeration_over_retrained_models(method: str) -> None:
    case = ridge_case(n=16, n_test=2)
    groups = np.arange(16) % 8  # 8 players, two examples each
    data = case.data(groups=groups)
    attr = tribute.explain(case.model, case.X_test, method=method, players=data)
    n = 8
    table = {}
    for bits in itertools.product([0, 1], repeat=n):
        table[bits] = _retrained_value(case, np.array(bits)[groups])
    phi = np.zeros((2, n))
    for i in range(n):
        for bits in table:
            if bits[i]:
                continue
            with_i = (*bits[:i], 1, *bits[i + 1 :])
            s = sum(bits)
            w = (math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n)
                 if method == "exact_shapley" else 1 / 2 ** (n - 1))
            phi[:, i] += w * (table[with_i] - table[bits])
    np.testing.assert_allclose(attr.values.numpy(), phi, rtol=1e-8, atol=1e-10)
    assert data.bank.n_trained == 2**n  # every coalition trained once (plus the determinism check)


def test_sampling_estimators_run_on_the_bank() -> None:
    case = ridge_case(n=10, n_test=2)
    data = case.data()
    exact = tribute.explain(case.model, case.X_test, method="exact_shapley", players=data).values
    trained = data.bank.n_trained
    for method in ("kernel_shap", "permutation_shapley"):
        attr = tribute.explain(case.model, case.X_test, method=method, players=data, budget=1024)
        assert attr.values.shape == (2, 10) and attr.stderr is not None
        np.testing.assert_allclose(attr.values.numpy(), exact.numpy(), atol=0.05 * float(exact.abs().max()))
    assert data.bank.n_trained == trained  # all 1024 coalitions of 10 players were already banked


def test_datamodels_recovers_an_additive_game_and_tracks_loo(ridge: Case) -> None:
    data = ridge.data()
    loo = tribute.explain(ridge.model, ridge.X_test, method="feature_ablation", players=data)
    dm = tribute.explain(ridge.model, ridge.X_test, method="datamodels", players=data, budget=300)
    for b in range(ridge.X_test.shape[0]):
        assert np.corrcoef(loo.values[b].numpy(), dm.values[b].numpy())[0, 1] > 0.85
    assert dm.extra["n_subsets"] == 300
    n = loo.values.shape[-1]  # training examples (players)
    assert tribute.methods()["datamodels"].default_budget(n) == max(100, 4 * n)  # registered, introspectable


def test_linear_score_on_held_out_subsets_of_the_bank(ridge: Case) -> None:
    data = ridge.data()
    attr = tribute.explain(ridge.model, ridge.X_test, method="influence", players=data)
    game = tribute.build_game(ridge.model, ridge.X_test, players=data)
    res = linear_score(game, attr, n_subsets=30)
    assert res.scores.shape == (6,) and res.mean > 0.9
    assert len(data.bank) == 30


def test_top_lists_proponents_and_opponents(ridge: Case) -> None:
    attr = tribute.explain(ridge.model, ridge.X_test, method="influence", players=ridge.data())
    top = attr.top(0, k=3)
    v = attr.values[0].numpy()
    assert [i for i, _, _ in top["proponents"]] == list(np.argsort(-v)[:3])
    assert [i for i, _, _ in top["opponents"]] == list(np.argsort(v)[:3])
    assert all(c > 0 for _, _, c in top["proponents"]) and all(c < 0 for _, _, c in top["opponents"])
    with pytest.raises(InputError, match="index=99"):
        attr.top(99)


# ------------------------------------------------------------------ the bank
def test_bank_resumes_from_disk_and_refuses_a_changed_fit(tmp_path: Path, ridge: Case) -> None:
    masks = (np.random.default_rng(0).random((5, 100)) < 0.5).astype(float)
    bank = RetrainBank(ridge.fit, ridge.X, ridge.y, path=tmp_path, shard_size=2)
    p1 = bank.params(masks)
    assert bank.n_trained == 5 and len(list(tmp_path.glob("shard-*.npz"))) >= 3
    again = RetrainBank(ridge.fit, ridge.X, ridge.y, path=tmp_path)
    np.testing.assert_array_equal(again.params(masks), p1)
    assert again.n_trained == 0  # nothing retrained
    shards = sorted(tmp_path.glob("shard-*.npz"))
    with pytest.raises(InputError, match="different fit"):
        RetrainBank(RidgeFit(l2=2.0), ridge.X, ridge.y, path=tmp_path)
    assert sorted(tmp_path.glob("shard-*.npz")) == shards  # nothing lost
    with pytest.raises(InputError, match="different data"):
        RetrainBank(ridge.fit, ridge.X + 1, ridge.y, path=tmp_path)


def test_bank_partial_shards_resume(tmp_path: Path, ridge: Case) -> None:
    """An interruption after some shards: reopening trains only the missing subsets."""
    masks = (np.random.default_rng(1).random((6, 100)) < 0.5).astype(float)
    RetrainBank(ridge.fit, ridge.X, ridge.y, path=tmp_path).params(masks[:4])
    bank = RetrainBank(ridge.fit, ridge.X, ridge.y, path=tmp_path)
    bank.params(masks)
    assert bank.n_trained == 2


@pytest.mark.slow  # spawning workers that import torch takes ~20 s on a loaded 2-core box
def test_bank_workers_give_identical_results(ridge: Case) -> None:
    masks = (np.random.default_rng(2).random((4, 100)) < 0.5).astype(float)
    one = RetrainBank(ridge.fit, ridge.X, ridge.y).params(masks)
    two = RetrainBank(ridge.fit, ridge.X, ridge.y, workers=2, check_determinism=False).params(masks)
    np.testing.assert_array_equal(one, two)


_CALLS = {"n": 0}


def _noisy_fit(X: torch.Tensor, y: torch.Tensor, *, seed: int,
               weights: torch.Tensor | None = None) -> torch.nn.Module:
    _CALLS["n"] += 1
    model = RidgeFit()(X, y, seed=seed, weights=weights)
    with torch.no_grad():
        bias = model.bias
        assert isinstance(bias, torch.Tensor)
        bias.add_(0.1 * _CALLS["n"])  # depends on hidden state, not on the seed
    return model


def test_non_deterministic_fit_is_detected(ridge: Case) -> None:
    data = tribute.TrainingData(ridge.X, ridge.y, fit=_noisy_fit, loss="mse")
    with pytest.raises(InputError, match="not deterministic"):
        tribute.explain(ridge.model, ridge.X_test, method="feature_ablation", players=data)


def test_bad_inputs_give_clear_errors(ridge: Case) -> None:
    with pytest.raises(InputError, match="100 examples but y_train has shape"):
        tribute.TrainingData(ridge.X, ridge.y[:50], fit=ridge.fit)
    with pytest.raises(InputError, match="Did you mean 'cross_entropy'"):
        tribute.TrainingData(ridge.X, ridge.y, fit=ridge.fit, loss="cross_entropi")
    with pytest.raises(InputError, match="groups"):
        tribute.TrainingData(ridge.X, ridge.y, fit=ridge.fit, groups=np.zeros(3, dtype=int))
    with pytest.raises(InputError, match="per-example shape"):
        tribute.explain(ridge.model, torch.randn(2, 7, dtype=torch.float64), method="influence",
                        players=ridge.data())
    data = tribute.TrainingData(ridge.X, ridge.y, loss="mse")  # no fit: gradient methods only
    with pytest.raises(InputError, match="no fit"):
        tribute.explain(ridge.model, ridge.X_test, method="feature_ablation", players=data)
    with pytest.raises(tribute.UnsupportedModelError, match="works on"):
        tribute.explain(ridge.model, ridge.X_test, method="saliency", players=ridge.data())
