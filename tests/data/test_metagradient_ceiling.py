"""The ceiling helpers of benchmarks/bench_data_metagradient_drop.py (``--ceiling``).

The ceiling's truth comes from a batched re-implementation of ``MLPFit``'s training run; these
tests hold it to the library's own retraining (the retrain bank), and the ridge datamodel to an
exactly linear game.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from data_cases import mlp_case

import tribute

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_data_metagradient_drop as bench


def test_batched_training_equals_mlpfit_on_subsets_and_weights() -> None:
    c = mlp_case(n=30, steps=25)
    W = torch.ones(4, 30, dtype=torch.float64)
    W[1, :5] = 0
    W[2, 7] = 0.5
    W[3, ::2] = 0
    P = bench.train_many(c.fit, c.X, c.y, W, 0)
    for k in range(4):
        keep = W[k] > 0
        w = W[k][keep]
        ref = c.fit(c.X[keep], c.y[keep], seed=0, weights=None if bool((w == 1).all()) else w)
        for name, p in ref.state_dict().items():
            np.testing.assert_allclose(P[name][k].numpy(), p.numpy(), rtol=0, atol=1e-12)


def test_retrained_outputs_match_the_bank_and_resume_without_training(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = mlp_case(n=16, steps=10)
    game = tribute.build_game(c.model, c.X_test, players=c.data(), target=c.y_test)
    masks = ~np.eye(16, dtype=bool)
    path = tmp_path / "loo.npz"
    out = bench.retrained_outputs(game, c.fit, masks, path, chunk=5)
    truth = game.value(torch.as_tensor(masks, dtype=torch.float64))[:, :, 0].numpy().T
    np.testing.assert_allclose(out, truth, rtol=0, atol=1e-10)

    def boom(*a: Any, **k: Any) -> None:
        raise AssertionError("trained again")

    monkeypatch.setattr(bench, "train_many", boom)
    np.testing.assert_array_equal(bench.retrained_outputs(game, c.fit, masks, path), out)
    with pytest.raises(AssertionError, match="trained again"):  # other masks: not reused
        bench.retrained_outputs(game, c.fit, masks[::-1].copy(), path)


def test_ridge_datamodel_recovers_a_linear_game() -> None:
    rng = np.random.default_rng(0)
    M = rng.random((400, 50)) < 0.9
    beta = rng.normal(size=(50, 3))
    coef, lam = bench.ridge_datamodel(M, M @ beta + 7.0)
    np.testing.assert_allclose(coef, beta.T, atol=1e-3)
    assert lam.shape == (3,)
    noisy, lam_noisy = bench.ridge_datamodel(M, M @ beta + rng.normal(size=(400, 3)) * 3.0)
    assert np.all(lam_noisy >= lam)  # cross-validation shrinks more under noise
    assert np.abs(noisy - beta.T).max() > 1e-2


def test_batched_truth_scores_like_the_bank(tmp_path: Path) -> None:
    """The ``--truth batched`` LDS equals ``linear_score`` through the retrain bank."""
    c = mlp_case(n=60, steps=10)
    game = tribute.build_game(c.model, c.X_test, players=c.data(), target=c.y_test)
    credits = np.random.default_rng(1).normal(size=(game.n_samples, 60))
    bank = bench.Scorer(game, c.fit, "bank", tmp_path, 3, 8)
    fast = bench.Scorer(game, c.fit, "batched", tmp_path, 3, 8)
    np.testing.assert_allclose(fast.full(), bank.full(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(fast.lds(credits), bank.lds(credits), rtol=0, atol=1e-12)
    assert len({round(x, 9) for x in bank.lds(credits)}) == 3  # three different subset sets
