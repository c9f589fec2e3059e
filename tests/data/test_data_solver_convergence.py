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


@pytest.mark.parametrize(("solver", "max_iter", "message", "key", "floor"), [
    ("lissa", 3, "has not converged after 30 terms", "lissa_error_estimate", 1e-3),
    ("cg", 2, "stopped at max_iter=2 with relative residual", "cg_residual", 1e-6)])
def test_an_unconverged_solver_warns(solver: str, max_iter: int, message: str, key: str,
                                     floor: float) -> None:
    data, model, Xt = _ridge(0.05)
    exact = tribute.explain(model, Xt, method="influence", players=data)
    with pytest.warns(RuntimeWarning, match=message):
        got = tribute.explain(model, Xt, method="influence", players=data, solver=solver,
                              max_iter=max_iter)
    true_err = np.abs(np.asarray(got.values) - np.asarray(exact.values)).max() / np.abs(
        np.asarray(exact.values)).max()
    assert true_err > 1e-3  # the warning is about a real error
    assert got.extra[key] > floor


@pytest.mark.parametrize(("solver", "max_iter", "key"), [("lissa", 30, "lissa_error_estimate"),
                                                        ("cg", 200, "cg_residual")])
def test_a_converged_solver_is_quiet_and_exact(solver: str, max_iter: int, key: str) -> None:
    data, model, Xt = _ridge(1.0)
    exact = tribute.explain(model, Xt, method="influence", players=data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = tribute.explain(model, Xt, method="influence", players=data, solver=solver,
                              max_iter=max_iter)
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(exact.values), atol=1e-10)
    assert got.extra[key] < 1e-10
