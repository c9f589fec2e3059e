"""EK-FAC influence against the explicit solver and the exact Gauss-Newton matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_cases import Case, logistic_case, mlp_case, ridge_case

import tribute
from tribute.errors import UnsupportedModelError
from tribute.games.data import DataGame
from tribute.games.data_fits import RidgeFit
from tribute.methods.data_ekfac import ekfac_factors


def test_ekfac_equals_explicit_where_kronecker_is_exact() -> None:
    # least squares on one Linear layer: H = sum_i a_i a_i^T + l2 I exactly (one output, the
    # same loss curvature 1 for every example), so EK-FAC's block is the Hessian itself
    case = ridge_case(n=50, d=6)
    data = case.data()
    exp = tribute.explain(case.model, case.X_test, method="influence", players=data)
    ek = tribute.explain(case.model, case.X_test, method="influence", players=data,
                         solver="ekfac", damping=0.0)
    np.testing.assert_allclose(ek.values.numpy(), exp.values.numpy(), rtol=1e-8,
                               atol=1e-10 * float(exp.values.abs().max()))
    assert ek.extra["damping_per_layer"] == {"": 0.0}
    # the default damping rule: 0.1 x the layer's mean corrected eigenvalue, reported
    auto = tribute.explain(case.model, case.X_test, method="influence", players=data, solver="ekfac")
    game = tribute.build_game(case.model, case.X_test, players=data)
    assert isinstance(game, DataGame)
    (layer,) = ekfac_factors(game, game.model_params())
    assert auto.extra["damping"] == pytest.approx(0.1 * float(layer.Lam.mean()), rel=1e-12)


def test_conv_ekfac_equals_explicit_where_kronecker_is_exact() -> None:
    # a Conv2d whose kernel covers the whole image has one output position: least squares on
    # it is ridge regression on the flattened image, and EK-FAC's block is the Hessian itself
    g = torch.Generator().manual_seed(3)
    X = torch.randn(40, 2, 3, 3, generator=g, dtype=torch.float64)
    y = X.flatten(1) @ torch.randn(18, generator=g, dtype=torch.float64)
    conv = torch.nn.Conv2d(2, 1, 3).double()
    model = torch.nn.Sequential(conv, torch.nn.Flatten())
    ridge = RidgeFit(l2=1.0)(X, y, seed=0)
    assert isinstance(ridge, torch.nn.Linear)
    with torch.no_grad():
        conv.weight.copy_(ridge.weight.reshape(1, 2, 3, 3))
        assert conv.bias is not None
        conv.bias.copy_(ridge.bias)
    data = tribute.TrainingData(X, y, fit=None, loss="mse", l2=1.0, reduction="sum")
    Xt = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)
    exp = tribute.explain(model, Xt, method="influence", players=data)
    ek = tribute.explain(model, Xt, method="influence", players=data, solver="ekfac", damping=0.0)
    np.testing.assert_allclose(ek.values.numpy(), exp.values.numpy(), rtol=1e-8,
                               atol=1e-10 * float(exp.values.abs().max()))


def _layer_index(game: DataGame, p: dict[str, torch.Tensor], weight: str, bias: str) -> torch.Tensor:
    """Flat positions of ``[W | b]`` laid out as ``out x (in + 1)`` (row-major)."""
    offsets = np.cumsum([0] + [p[n].numel() for n in game.param_names])
    pos = dict(zip(game.param_names, offsets[:-1].tolist()))
    out_f = p[weight].shape[0]
    in_f = p[weight].numel() // out_f  # Conv2d: in x kh x kw, the order of weight.reshape(out, -1)
    return torch.cat([pos[weight] + torch.arange(out_f * in_f).reshape(out_f, in_f),
                      pos[bias] + torch.arange(out_f)[:, None]], 1).reshape(-1)


def _ggn(game: DataGame) -> torch.Tensor:
    """The training objective's Gauss-Newton matrix ``s sum_i J_i^T M_i J_i`` (no l2)."""
    p = game.model_params()
    out = game.train_outputs(p)
    _, M = game.loss_output_derivatives(out.reshape(out.shape[0], -1), game.y_train)
    J = torch.cat([j for _, j in game.train_jacobians(p)])
    J = J[:, : M.shape[1]]
    return game.removal_scale * torch.einsum("ncp,ncd,ndq->pq", J, M, J)


def cnn_case(n: int = 30, n_test: int = 3, seed: int = 0) -> Case:
    """A small CNN (Conv2d 3x3 with padding and stride, tanh, Conv2d, Linear) on 6x6 images.

    Trained for a few steps by plain gradient descent (EK-FAC needs the model, not a fit).
    """
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n + n_test, 1, 6, 6, generator=g, dtype=torch.float64)
    y = (X[:, 0, :3].sum((1, 2)) > X[:, 0, 3:].sum((1, 2))).long()
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1, stride=2), torch.nn.Tanh(),
        torch.nn.Conv2d(3, 4, 2, dilation=1), torch.nn.Tanh(), torch.nn.Flatten(),
        torch.nn.Linear(16, 2)).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X[:n]), y[:n]).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return Case(X[:n], y[:n], X[n:], y[n:], None, model)


@pytest.mark.parametrize("make", [logistic_case, mlp_case, cnn_case])
def test_corrected_eigenvalues_are_the_gauss_newton_diagonal_in_the_kronecker_basis(make: object) -> None:
    case: Case = make()  # type: ignore[operator]
    game = tribute.build_game(case.model, case.X_test, target="predicted", players=case.data())
    assert isinstance(game, DataGame)
    p = game.model_params()
    H = _ggn(game)
    layers = ekfac_factors(game, p)
    for L in layers:
        assert L.bias is not None
        out_f = p[L.weight].shape[0]
        in_f = p[L.weight].numel() // out_f
        idx = _layer_index(game, p, L.weight, L.bias)
        block = H[idx][:, idx]
        Q = torch.kron(L.QS, L.QA)  # vec(Q_S^T V Q_A) = Q^T vec(V) for row-major vec
        diag = torch.diagonal(Q.T @ block @ Q).reshape(out_f, in_f + 1)
        np.testing.assert_allclose(L.Lam.numpy(), diag.numpy(), rtol=1e-8,
                                   atol=1e-10 * float(diag.abs().max()))


@pytest.mark.parametrize("make", [logistic_case, mlp_case, cnn_case])
def test_ekfac_scores_equal_an_explicit_inverse_of_the_ekfac_matrix(make: object) -> None:
    # the influence scores are -s G_test H_k^-1 g_i with H_k the block-diagonal matrix
    # Q diag(Lam + l2 + d) Q^T formed and inverted explicitly (damping 0.3 on every layer)
    case: Case = make()  # type: ignore[operator]
    data = case.data()
    game = tribute.build_game(case.model, case.X_test, target="predicted", players=data)
    assert isinstance(game, DataGame)
    p = game.model_params()
    d = 0.3
    Hk = torch.zeros(game.n_params, game.n_params, dtype=torch.float64)
    for L in ekfac_factors(game, p):
        assert L.bias is not None
        idx = _layer_index(game, p, L.weight, L.bias)
        Q = torch.kron(L.QS, L.QA)
        Hk[idx[:, None], idx[None, :]] = Q @ torch.diag(L.Lam.reshape(-1) + data.l2 + d) @ Q.T
    train = torch.cat([g for _, g in game.train_grads(p)])
    want = -game.removal_scale * torch.linalg.solve(Hk, game.test_grads(p).T).T @ train.T
    if game.data.reduction == "mean":  # a mean objective's credits are centred (data_influence doc)
        want = want - want.mean(1, keepdim=True)
    ek = tribute.explain(case.model, case.X_test, method="influence", players=data,
                         target="predicted", solver="ekfac", damping=d)
    np.testing.assert_allclose(ek.values.numpy(), want.numpy(), rtol=1e-8,
                               atol=1e-10 * float(want.abs().max()))


def test_ekfac_leaves_the_model_alone_and_reports_damping_per_layer() -> None:
    case = mlp_case(n=60, steps=80)
    data = case.data()
    before = {k: v.clone() for k, v in case.model.state_dict().items()}
    hooks = [len(m._forward_hooks) for m in case.model.modules()]
    ek = tribute.explain(case.model, case.X_test, method="influence", players=data, solver="ekfac")
    assert all(torch.equal(before[k], v) for k, v in case.model.state_dict().items())
    assert hooks == [len(m._forward_hooks) for m in case.model.modules()]
    assert set(ek.extra["damping_per_layer"]) == {"0", "2"}


def test_ekfac_refuses_parameters_outside_linear_layers() -> None:
    case = ridge_case(n=20, d=3)

    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 1).double()
            self.scale = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x) * self.scale

    model = Scaled()
    with pytest.raises(UnsupportedModelError, match=r"nn.Linear layers only.*'scale'.*solver='cg'"):
        tribute.explain(model, case.X_test, method="influence", players=case.data(), solver="ekfac")
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
