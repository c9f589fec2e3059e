"""Retraining-free data estimators against closed forms, manual autograd and real retraining."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from data_cases import Case, logistic_case, ridge_case

import tribute
from tribute.errors import InputError
from tribute.games.data import DataGame


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(np.asarray(a), np.asarray(b))[0, 1])


def _flat_grad(fn: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(fn, list(model.parameters()))])


def _manual_grads(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    """Test-output (raw regression output) and training-loss gradients by plain autograd."""
    m = case.model
    test = torch.stack([_flat_grad(m(case.X_test[i : i + 1])[0, 0], m) for i in range(len(case.X_test))])
    train = torch.stack([_flat_grad(0.5 * (m(case.X[i : i + 1])[0, 0] - case.y[i]) ** 2, m)
                         for i in range(len(case.X))])
    return test, train


def test_grad_dot_cos_tracin_match_manual_autograd() -> None:
    case = ridge_case(n=20, n_test=3)
    test, train = _manual_grads(case)
    dot = tribute.explain(case.model, case.X_test, method="grad_dot", players=case.data(), lr=0.5)
    np.testing.assert_allclose(dot.values.numpy(), (-0.5 * test @ train.T).numpy(), rtol=1e-10)
    cos = tribute.explain(case.model, case.X_test, method="grad_cos", players=case.data())
    want = -(test / test.norm(dim=1, keepdim=True)) @ (train / train.norm(dim=1, keepdim=True)).T
    np.testing.assert_allclose(cos.values.numpy(), want.numpy(), rtol=1e-10)
    # TracIn over two checkpoints with learning rates = the lr-weighted sum of grad_dot
    other = ridge_case(n=20, n_test=3, l2=5.0).model
    data = case.data(checkpoints=[(case.model, 0.3), (other, 0.7)])
    tr = tribute.explain(case.model, case.X_test, method="tracin", players=data)
    d2 = tribute.explain(other, case.X_test, method="grad_dot", players=case.data())
    np.testing.assert_allclose(tr.values.numpy(), 0.3 * (-test @ train.T).numpy() + 0.7 * d2.values.numpy(),
                               rtol=1e-9)


def test_checkpoint_of_another_architecture_is_refused() -> None:
    case = ridge_case(n=20, n_test=3)
    data = case.data(checkpoints=[torch.nn.Linear(7, 1).double()])
    with pytest.raises(InputError, match="architecture"):
        tribute.explain(case.model, case.X_test, method="tracin", players=data)


def test_influence_explicit_matches_exact_loo_on_ridge() -> None:
    case = ridge_case(n=100)
    data = case.data()
    loo = tribute.explain(case.model, case.X_test, method="feature_ablation", players=data).values
    inf = tribute.explain(case.model, case.X_test, method="influence", players=data)
    assert min(_corr(loo[b], inf.values[b]) for b in range(6)) >= 0.999
    assert inf.extra["damping"] == 0.0 and inf.params["damping_used"] == 0.0
    # the leave-one-out Newton step is exact for ridge: phi = r / (1 - h_ii)
    step = tribute.explain(case.model, case.X_test, method="influence", players=data, loo_step=True)
    np.testing.assert_allclose(step.values.numpy(), loo.numpy(), rtol=1e-7, atol=1e-10)


def test_influence_on_logistic_regression_tracks_loo() -> None:
    case = logistic_case(n=100)
    data = case.data()
    kw = {"players": data, "target": "predicted"}
    loo = tribute.explain(case.model, case.X_test, method="feature_ablation", **kw).values
    plain = tribute.explain(case.model, case.X_test, method="influence", **kw).values
    step = tribute.explain(case.model, case.X_test, method="influence", loo_step=True, **kw).values
    assert min(_corr(loo[b], plain[b]) for b in range(6)) >= 0.99
    assert min(_corr(loo[b], step[b]) for b in range(6)) >= 0.999


def test_iterated_loo_newton_reaches_exact_leave_one_out_on_logistic_regression() -> None:
    case = logistic_case(n=60, n_test=4)
    data = case.data()
    kw = {"players": data, "target": "predicted"}
    loo = tribute.explain(case.model, case.X_test, method="feature_ablation", **kw).values
    one = tribute.explain(case.model, case.X_test, method="influence", loo_step=True, **kw).values
    it = tribute.explain(case.model, case.X_test, method="influence", loo_step=True,
                         loo_iters=50, **kw)
    # converged chord-Newton iterates are the leave-one-out optima: retraining to ~1e-10
    assert 2 <= it.extra["loo_iterations"] < 50
    np.testing.assert_allclose(it.values.numpy(), loo.numpy(), rtol=0, atol=1e-8 * float(loo.abs().max()))
    assert float((one - loo).abs().max()) > 1e3 * float((it.values - loo).abs().max())
    # two iterations already beat the single step, and loo_iters=1 is the single step itself
    two = tribute.explain(case.model, case.X_test, method="influence", loo_step=True, loo_iters=2, **kw)
    assert float((two.values - loo).abs().max()) < 0.5 * float((one - loo).abs().max())
    with pytest.raises(InputError, match="loo_step=True"):
        tribute.explain(case.model, case.X_test, method="influence", loo_iters=3, **kw)
    with pytest.raises(InputError, match="loo_iters"):
        tribute.explain(case.model, case.X_test, method="influence", loo_step=True, loo_iters=0, **kw)


@pytest.mark.parametrize("solver", ["cg", "lissa"])
def test_iterative_solvers_match_explicit(solver: str) -> None:
    # well conditioned (l2 = 20 on 30 examples) so that LiSSA converges in 200 steps
    case = logistic_case(n=30, n_test=2, l2=20.0)
    kw = {"players": case.data(), "target": "predicted"}
    exp = tribute.explain(case.model, case.X_test, method="influence", **kw).values
    it = tribute.explain(case.model, case.X_test, method="influence", solver=solver,
                         max_iter=20 if solver == "lissa" else 50, **kw)
    tol = 1e-4 if solver == "lissa" else 1e-7
    np.testing.assert_allclose(it.values.numpy(), exp.numpy(), rtol=tol, atol=tol * float(exp.abs().max()))
    assert it.extra["damping"] == 0.0 and it.extra["lambda_max"] > it.extra["lambda_min"] > 0


def test_representer_points_sum_to_the_logit() -> None:
    case = logistic_case(n=60)
    rep = tribute.explain(case.model, case.X_test, method="representer", players=case.data(),
                          target=1, output="logit")
    with torch.no_grad():
        logit = case.model(case.X_test)[:, 1]
    np.testing.assert_allclose(rep.values.sum(1).numpy(), logit.numpy(), rtol=1e-7, atol=1e-9)
    with pytest.raises(InputError, match="l2"):
        tribute.explain(case.model, case.X_test, method="representer", players=case.data(l2=0.0))


def test_trak_equals_its_closed_form_and_refuses_singular_kernels() -> None:
    case = logistic_case(n=60)
    data = case.data()
    kw = {"players": data, "target": "predicted"}
    game = tribute.build_game(case.model, case.X_test, **kw)
    assert isinstance(game, DataGame)
    p = game.model_params()
    Phi = torch.cat([G for _, G in game.train_grads(p, what="output")])
    Psi = -torch.cat([G for _, G in game.train_grads(p, what="loss")])
    T = game.test_grads(p)
    want = T @ torch.linalg.solve(Phi.T @ Phi, Psi.T)
    exact = tribute.explain(case.model, case.X_test, method="trak", projector="none", **kw)
    np.testing.assert_allclose(exact.values.numpy(), want.numpy(), rtol=1e-6, atol=1e-9)
    # a Gaussian projection to k >= n_params spans the same space: the same scores
    proj = tribute.explain(case.model, case.X_test, method="trak", proj_dim=30, **kw)
    np.testing.assert_allclose(proj.values.numpy(), want.numpy(), rtol=1e-5, atol=1e-7)
    # the out-to-loss term: for cross-entropy -grad loss_i = (1 - p_i) grad margin_i
    with torch.no_grad():
        p_y = torch.softmax(case.model(case.X), 1).gather(1, case.y[:, None])[:, 0]
    np.testing.assert_allclose(Psi.numpy(), ((1 - p_y)[:, None] * Phi).numpy(), rtol=1e-8, atol=1e-12)
    # k >= n_train with fewer parameters (18) than examples (60): still the same space, exact
    # (aud51k: refused as singular before)
    at_n = tribute.explain(case.model, case.X_test, method="trak", proj_dim=60, **kw)
    np.testing.assert_allclose(at_n.values.numpy(), want.numpy(), rtol=1e-5, atol=1e-7)
    # k and the parameters both >= n_train: singular, refused unless regularised
    few = logistic_case(n=18)
    kw_few = {"players": few.data(), "target": "predicted"}
    with pytest.raises(InputError, match="singular"):
        tribute.explain(few.model, few.X_test, method="trak", proj_dim=18, **kw_few)
    reg = tribute.explain(few.model, few.X_test, method="trak", proj_dim=18, regularization=1e-3, **kw_few)
    assert np.isfinite(reg.values.numpy()).all()


def test_outputs_and_sign_convention(ridge: Case) -> None:
    """Every estimator agrees in sign with leave-one-out on a convex problem."""
    data = ridge.data()
    loo = tribute.explain(ridge.model, ridge.X_test, method="feature_ablation", players=data).values
    for method in ("grad_dot", "influence", "trak", "representer", "tracin"):
        kw: dict[str, Any] = {"proj_dim": 4} if method == "trak" else {}
        v = tribute.explain(ridge.model, ridge.X_test, method=method, players=data, **kw).values
        assert _corr(loo.flatten(), v.flatten()) > 0.5, method
    # first order in the test loss: accurate when the test residual is not ~0 (else the
    # second-order term of 0.5 (f - y)^2 dominates the leave-one-out change)
    y_off = ridge.y_test + 1.0
    loss = tribute.explain(ridge.model, ridge.X_test, method="influence", players=data,
                           output="loss", target=y_off)
    loo_loss = tribute.explain(ridge.model, ridge.X_test, method="feature_ablation", players=data,
                               output="loss", target=y_off)
    assert min(_corr(loo_loss.values[b], loss.values[b]) for b in range(6)) > 0.99


def test_groups_sum_example_credits() -> None:
    case = ridge_case(n=20, n_test=2)
    groups = np.arange(20) // 5
    per_ex = tribute.explain(case.model, case.X_test, method="grad_dot", players=case.data()).values
    grp = tribute.explain(case.model, case.X_test, method="grad_dot", players=case.data(groups=groups))
    np.testing.assert_allclose(grp.values.numpy(), per_ex.reshape(2, 4, 5).sum(2).numpy(), rtol=1e-12)
    assert grp.player_names == [f"group {i}" for i in range(4)]


def test_influence_absolute_eigenvalues_on_an_indefinite_hessian() -> None:
    from data_cases import mlp_case

    case = mlp_case(n=40, steps=60)
    kw = {"players": case.data(), "target": "predicted"}
    game = tribute.build_game(case.model, case.X_test, **kw)
    assert isinstance(game, DataGame)
    p = game.model_params()
    ev, V = torch.linalg.eigh(game.hessian(p))
    assert float(ev[0]) < 0  # the case is indefinite: the two rules differ
    d = 1e-3 * float(ev.abs().max())
    U = V @ ((V.T @ game.test_grads(p).T) / (ev.abs() + d)[:, None])
    train = torch.cat([g for _, g in game.train_grads(p)])
    want = -game.removal_scale * U.T @ train.T
    if game.data.reduction == "mean":  # a mean objective's credits are centred (data_influence doc)
        want = want - want.mean(1, keepdim=True)
    got = tribute.explain(case.model, case.X_test, method="influence", indefinite="abs", **kw)
    np.testing.assert_allclose(got.values.numpy(), want.numpy(), rtol=1e-7, atol=1e-10 * float(want.abs().max()))
    assert got.extra["damping"] == pytest.approx(d, rel=1e-12)
    shift = tribute.explain(case.model, case.X_test, method="influence", **kw)
    assert not np.allclose(shift.values.numpy(), got.values.numpy())
    # positive definite Hessian (logistic regression): the same as the shift rule (no damping)
    lg = logistic_case(n=40)
    lkw = {"players": lg.data(), "target": "predicted"}
    np.testing.assert_allclose(
        tribute.explain(lg.model, lg.X_test, method="influence", indefinite="abs", **lkw).values.numpy(),
        tribute.explain(lg.model, lg.X_test, method="influence", **lkw).values.numpy(), rtol=1e-10)
    with pytest.raises(InputError, match="indefinite='abs' needs"):
        tribute.explain(lg.model, lg.X_test, method="influence", indefinite="abs", solver="cg", **lkw)
    with pytest.raises(InputError, match="indefinite='nope'"):
        tribute.explain(lg.model, lg.X_test, method="influence", indefinite="nope", **lkw)
