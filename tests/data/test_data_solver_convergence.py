"""The iterative influence solvers say when they stopped short of convergence (audit aud30d).

Before, ``influence(solver="lissa")`` returned whatever ``10 x max_iter`` terms gave: on a small
MLP (condition number ~1000 after the automatic damping) the credits were 18% off the explicit
solver's at the same damping, silently; ``solver="cg"`` stopped by ``max_iter=3`` was 55% off,
silently.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import tribute
from tribute.games.data_fits import RidgeFit


def _ridge(scale: float) -> tuple[tribute.TrainingData, torch.nn.Module, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3)) * np.array([1.0, 1.0, scale])  # one weak direction
    y = X @ np.array([1.0, -1.0, 0.5]) + 0.1 * rng.normal(size=20)
    fit = RidgeFit(l2=1e-3)
    model = fit(torch.tensor(X), torch.tensor(y), seed=0)
    return tribute.TrainingData(X, y, fit=fit), model, rng.normal(size=(2, 3))


def test_an_unconverged_series_warns_with_its_estimated_error() -> None:
    data, model, Xt = _ridge(0.05)
    exact = tribute.explain(model, Xt, method="influence", players=data)
    with pytest.warns(RuntimeWarning, match="has not converged after 30 terms"):
        got = tribute.explain(model, Xt, method="influence", players=data, solver="lissa",
                              max_iter=3)
    true_err = np.abs(np.asarray(got.values) - np.asarray(exact.values)).max() / np.abs(
        np.asarray(exact.values)).max()
    assert true_err > 0.05  # the warning is about a real error
    est = got.extra["lissa_error_estimate"]
    assert est > 1e-3


def test_a_converged_series_is_quiet_and_exact() -> None:
    data, model, Xt = _ridge(1.0)
    exact = tribute.explain(model, Xt, method="influence", players=data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = tribute.explain(model, Xt, method="influence", players=data, solver="lissa",
                              max_iter=30)
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(exact.values), atol=1e-10)
    assert got.extra["lissa_error_estimate"] < 1e-10


def test_cg_stopped_by_max_iter_warns_with_its_residual() -> None:
    data, model, Xt = _ridge(0.05)
    exact = tribute.explain(model, Xt, method="influence", players=data)
    with pytest.warns(RuntimeWarning, match="stopped at max_iter=2 with relative residual"):
        got = tribute.explain(model, Xt, method="influence", players=data, solver="cg",
                              max_iter=2)
    true_err = np.abs(np.asarray(got.values) - np.asarray(exact.values)).max() / np.abs(
        np.asarray(exact.values)).max()
    assert true_err > 1e-3 and got.extra["cg_residual"] > 1e-6
    with warnings.catch_warnings():  # converged within max_iter: quiet
        warnings.simplefilter("error", RuntimeWarning)
        done = tribute.explain(model, Xt, method="influence", players=data, solver="cg")
    np.testing.assert_allclose(np.asarray(done.values), np.asarray(exact.values), atol=1e-9)
