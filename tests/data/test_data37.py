"""Audit data37: training-data attribution items left open by stop 36 (fingerprints of the
training data, CG restarts after a missed negative eigenvalue, the determinism check within
the budget) with truths computed outside the estimators."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.games.data_fits import MLPFit, RidgeFit
from tribute.methods import data_influence
from tribute.metrics.faithfulness import linear_score


def _tiny_mlp(steps: int = 4) -> tuple[tribute.TrainingData, torch.nn.Module, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    X = torch.randn(16, 3, generator=g, dtype=torch.float64)
    y = (X[:, 0] * X[:, 1] > 0).long()
    Xt = torch.randn(2, 3, generator=g, dtype=torch.float64)
    fit = MLPFit(2, hidden=4, steps=steps, lr=0.3)  # partly trained: an indefinite Hessian
    return tribute.TrainingData(X, y, fit=fit), fit(X, y, seed=0), Xt, (Xt[:, 0] > 0).long()


def test_cg_recovers_when_power_iteration_misses_the_negative_eigenvalue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Power iterations that report lambda_min > 0 for an indefinite Hessian left the automatic
    damping at 0, CG met negative curvature, and the restarts "doubled" a zero margin: refused
    with 'H + 0 I is not positive definite (lambda_min ~ +0.0005)'. Truth: the explicit solver
    with the damping CG ended with (the same linear system solved exactly)."""
    data, model, Xt, yt = _tiny_mlp()
    game = data.make_game(tribute.models.as_model(model, "torch"), Xt, target=yt)
    ev = torch.linalg.eigvalsh(game.hessian())
    lo, hi = float(ev[0]), float(ev[-1])
    assert lo < -1e-3 * hi  # the case: an indefinite Hessian
    # what the audit saw: 50 power iterations converged to a small positive lambda_min
    monkeypatch.setattr(data_influence, "_power_extremes", lambda *a, **k: (5e-4 * hi, hi))
    cg = tribute.explain(model, Xt, method="influence", players=data, target=yt, solver="cg",
                         tol=1e-12, max_iter=400)
    d = cg.extra["damping"]
    assert d > -lo and cg.extra["damping_restarts"] >= 1
    assert cg.extra["lambda_min"] <= 0  # the reported bound no longer contradicts the refusal
    exact = tribute.explain(model, Xt, method="influence", players=data, target=yt, damping=d)
    scale = float(np.abs(exact.values.numpy()).max())
    np.testing.assert_allclose(cg.values.numpy(), exact.values.numpy(), rtol=0, atol=1e-8 * scale)
    # a given damping below -lambda_min is refused, with a message that agrees with itself
    with pytest.raises(InputError, match=r"lambda_min <= -") as err:
        tribute.explain(model, Xt, method="influence", players=data, target=yt, solver="cg",
                        damping=0.0)
    assert "raise damping above" in str(err.value)


def _ridge(seed: int, n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return X, X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)


def test_credits_scored_on_another_training_set_of_the_same_size_are_refused() -> None:
    """LOO-correlation of exact leave-one-out credits is 1 on their own training set; scored
    on another draw of 12 examples it came out 0.69, 0.67, -0.65 (numbers about other
    examples), silently."""
    fit = RidgeFit(l2=0.5)
    X, y = _ridge(0)
    X2, y2 = _ridge(1)
    data, other = tribute.TrainingData(X, y, fit=fit), tribute.TrainingData(X2, y2, fit=fit)
    model, Xt = fit(X, y, seed=0), X2[:3]
    attr = tribute.explain(model, Xt, method="feature_ablation", players=data)
    fp = data.fingerprint()
    assert attr.params["data_fingerprint"] == fp != other.fingerprint()
    own = tribute.evaluate(model, Xt, attr, "loo_correlation", players=data)
    assert np.allclose(own.scores, 1.0)
    with pytest.raises(InputError, match=f"fingerprint {fp}.*fingerprint {other.fingerprint()}.*Pass the TrainingData"):
        tribute.evaluate(model, Xt, attr, "loo_correlation", players=other)
    with pytest.raises(InputError, match="fingerprint"):  # a metric called on a game directly
        game = other.make_game(tribute.models.as_model(model, "torch"), Xt)
        linear_score(game, attr, n_subsets=8)
    # the same examples in a new TrainingData (a copy) are the same data; other labels,
    # groups or an in-place change are not
    assert tribute.TrainingData(X.clone(), y.clone(), fit=fit).fingerprint() == fp
    assert tribute.TrainingData(X, y + 1, fit=fit).fingerprint() != fp
    assert tribute.TrainingData(X, y, fit=fit, groups=np.arange(12) // 2).fingerprint() != fp
    X[0, 0] += 1.0
    assert data.fingerprint() != fp
    # an attribution built by hand (no fingerprint) is not checked
    game = tribute.TrainingData(X2, y2, fit=fit).make_game(tribute.models.as_model(model, "torch"), Xt)
    attr.params.pop("data_fingerprint")
    assert np.isfinite(linear_score(game, attr, n_subsets=8).scores).all()


def test_retrains_stay_within_the_budget() -> None:
    """exact enumeration of 7 players under budget=128 is 128 coalitions; the retrain bank's
    determinism check trained the first one twice: 129 fits for a budget of 128. Within the
    budget the check waits for a call with room, and is then made."""
    X, y = _ridge(2, n=7)
    calls = []

    class Counting(RidgeFit):
        def __call__(self, X: torch.Tensor, y: torch.Tensor, **kw: object) -> torch.nn.Module:
            calls.append(1)
            return super().__call__(X, y, **kw)  # type: ignore[arg-type]

    fit = Counting(l2=0.5)
    data = tribute.TrainingData(X, y, fit=fit)
    model = fit(X, y, seed=0)
    calls.clear()
    attr = tribute.explain(model, X[:2], method="exact_shapley", players=data, budget=128)
    assert attr.n_evals <= 128 and len(calls) == 128 and attr.extra["n_retrains"] == 128
    assert data.bank.n_fits == 128 and not data.bank._deterministic_checked
    # a later call with room makes the check (one more fit than its new subsets)
    data2 = tribute.TrainingData(X, y, fit=fit)
    calls.clear()
    a2 = tribute.explain(model, X[:2], method="datamodels", players=data2, budget=40, seed=0)
    assert data2.bank._deterministic_checked and len(calls) == a2.extra["n_retrains"] <= 40
    assert len(calls) == len(data2.bank) + 1
    # without a budget (a metric's game) the check is made as before
    data3 = tribute.TrainingData(X, y, fit=fit)
    game = data3.make_game(tribute.models.as_model(model, "torch"), X[:2])
    calls.clear()
    game.value(torch.ones(1, 7))
    assert len(calls) == game.n_fits == 2 and data3.bank._deterministic_checked


def test_deferred_determinism_check_still_refuses_a_random_fit() -> None:
    """Under a budget the check moves to the end of the estimator's run; a fit that draws from
    the global RNG is still refused there (not a silent pass)."""
    X, y = _ridge(4, n=7)

    class Noisy(RidgeFit):
        def __call__(self, X: torch.Tensor, y: torch.Tensor, **kw: object) -> torch.nn.Module:
            m = super().__call__(X, y, **kw)  # type: ignore[arg-type]
            with torch.no_grad():
                for p in m.parameters():
                    p.add_(1e-3 * torch.randn(p.shape, dtype=p.dtype))
            return m

    fit = Noisy(l2=0.5)
    data = tribute.TrainingData(X, y, fit=fit)
    with pytest.raises(InputError, match="not deterministic"):
        tribute.explain(RidgeFit(l2=0.5)(X, y, seed=0), X[:2], method="datamodels", players=data,
                        budget=40, seed=0)
