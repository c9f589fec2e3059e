"""rev51e: datamodels with ``alpha=0`` on a subset draw that cannot separate a player.

aud51e made LIME's unpenalised fit give NaN stderr (and a StderrWarning) to players the drawn
coalitions leave undetermined, but only where a sampler's support is known; datamodels' fit
(:func:`weighted_ridge`, no support) kept the hole. An additive data game
``v(S) = sum_{i in S} a_i`` (truth: the OLS slopes are ``a_i`` for any full-rank draw), 6
examples, ``subset_fraction=0.1``, 20 subsets, seed 0: examples 3 and 4 are never kept, their
credits came back 0 (truth 0.8 and 1.4) with stderr 1.8e-16 and no warning. In 60 seeds of 3
such configurations, 13 draws had a credit off by up to 1.57 under a stderr below 1e-6.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute


class _AddFit:
    """A deterministic fit whose model outputs ``sum a_i`` over the training examples present."""

    loss = "mse"
    l2 = 0.0
    reduction = "mean"

    def __init__(self, X_all: torch.Tensor, a: torch.Tensor) -> None:
        self.X_all, self.a = X_all, a

    def __repr__(self) -> str:
        return f"_AddFit({self.a.tolist()})"

    def __call__(self, X: torch.Tensor, y: torch.Tensor, *, seed: int = 0, weights: Any = None) -> nn.Module:
        X = torch.as_tensor(X, dtype=torch.float64).reshape(-1, self.X_all.shape[1])
        v = sum(float(self.a[i]) for i in range(len(self.X_all)) if bool((X == self.X_all[i]).all(1).any()))
        m = nn.Linear(self.X_all.shape[1], 1).double()
        with torch.no_grad():
            m.weight.zero_()
            m.bias.fill_(v)
        return m


def _explain(fraction: float, budget: int, seed: int, alpha: float,
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    n = 6
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 2, generator=g, dtype=torch.float64)
    Xt = torch.randn(1, 2, generator=g, dtype=torch.float64)
    a = torch.linspace(-1, 2, n, dtype=torch.float64)
    fit = _AddFit(X, a)
    data = tribute.TrainingData(X, torch.zeros(n, dtype=torch.float64), fit=fit, loss="mse")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        at = tribute.explain(fit(X, torch.zeros(n)), Xt, method="datamodels", players=data, budget=budget,
                             seed=seed, progress=False, alpha=alpha, subset_fraction=fraction)
    msgs = [str(w.message) for w in rec if issubclass(w.category, tribute.StderrWarning)]
    assert at.stderr is not None
    return (np.asarray(at.values).reshape(-1), np.asarray(at.stderr).reshape(-1), a.numpy(), msgs)


def test_datamodels_alpha0_players_never_kept_get_nan_stderr_not_zero() -> None:
    vals, se, truth, msgs = _explain(0.1, 20, 0, 0.0)
    off = np.abs(vals - truth) > 1e-6
    assert off.tolist() == [False, False, False, True, True, False], vals  # 3 and 4 never kept
    assert np.isnan(se[off]).all(), se
    # the players the draw does separate keep their exact credits and a finite stderr
    assert np.isfinite(se[~off]).all() and (se[~off] < 1e-9).all(), se
    assert any(m.startswith("datamodels:") and "cannot separate the credits of players 3, 4" in m
               for m in msgs), msgs


@pytest.mark.parametrize(("fraction", "budget", "alpha"), [(0.5, 40, 0.0), (0.5, 40, 1e-3)])
def test_datamodels_separating_draw_or_penalty_is_not_flagged(fraction: float, budget: int, alpha: float) -> None:
    # a full-rank draw (every example varied), or the default-style penalty: no new NaN, no warning
    vals, se, truth, msgs = _explain(fraction, budget, 0, alpha)
    assert np.isfinite(se).all(), se
    assert not any("cannot separate" in m for m in msgs), msgs
    if alpha == 0:
        assert np.allclose(vals, truth, atol=1e-9)


def test_datamodels_default_alpha_players_never_kept_get_nan_stderr() -> None:
    # the sibling at datamodels' default penalty: credits 0 (truth 0.8, 1.4) with stderr 1e-4
    vals, se, truth, msgs = _explain(0.1, 20, 0, 1e-3)
    assert np.allclose(truth[[3, 4]], [0.8, 1.4])
    assert vals[3] == 0.0 and vals[4] == 0.0
    assert np.isnan(se[[3, 4]]).all(), se
    assert np.isfinite(se[[0, 1, 2, 5]]).all(), se
    assert any(m.startswith("datamodels:") and "players 3, 4 are never kept or never removed" in m
               for m in msgs), msgs
