"""Audit aud46d: training-data attribution checked against truths computed outside tribute
(closed-form ridge influence in torch linear algebra; the exact Gauss-Newton solve that EK-FAC
equals on one linear layer with squared error)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError, UnsupportedModelError

N, D, L2 = 10, 3, 0.4


def _ridge_data(seed: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    return (torch.tensor(rng.normal(size=(N, D))), torch.tensor(rng.normal(size=N)),
            torch.tensor(rng.normal(size=(2, D))))


def _state(m: torch.nn.Module) -> tuple[dict[str, torch.Tensor], bool, list[bool], int]:
    hooks = sum(len(x._forward_hooks) for x in m.modules())
    return (copy.deepcopy(m.state_dict()), m.training,
            [p.requires_grad for p in m.parameters()], hooks)


def _unchanged(m: torch.nn.Module, before: tuple[dict[str, torch.Tensor], bool, list[bool], int]) -> bool:
    sd, training, flags, hooks = _state(m)
    return (all(torch.equal(sd[k], v) for k, v in before[0].items()) and training == before[1]
            and flags == before[2] and hooks == before[3])


class _Twice(torch.nn.Module):
    """``out = lin(x) + lin(x)``: one layer called twice per forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(D, 1, bias=False).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + self.lin(x)


class _Tied(torch.nn.Module):
    """``out = a(x) + b(x)`` with ``b.weight`` the same parameter as ``a.weight``."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(D, 1, bias=False).double()
        self.b = torch.nn.Linear(D, 1, bias=False).double()
        self.b.weight = self.a.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x)


@pytest.mark.parametrize("cls", [_Twice, _Tied])
def test_ekfac_refuses_a_weight_used_twice_per_forward_pass(cls: type[torch.nn.Module]) -> None:
    # before: the factors took one call's (one module's) inputs and gradients and the solve was
    # 3.33x the exact one, with no error. The model is 2 w.x (one linear layer, squared
    # error), so the Gauss-Newton matrix is the Hessian 4 X^T X + l2 I exactly
    X, y, Xt = _ridge_data()
    m = cls()
    H = 4 * X.T @ X + L2 * torch.eye(D, dtype=torch.float64)
    w = torch.linalg.solve(H, 2 * X.T @ y)
    with torch.no_grad():
        next(m.parameters()).copy_(w[None])
    r = 2 * X @ w - y
    truth = -(2 * Xt) @ torch.linalg.solve(H, (2 * r[:, None] * X).T)
    data = tribute.TrainingData(X, y, loss="mse", l2=L2, reduction="sum")
    exact = tribute.explain(m, Xt, method="influence", solver="explicit", damping=0.0, players=data)
    assert torch.allclose(exact.values.reshape(2, N), truth, rtol=1e-10, atol=1e-12)
    before = _state(m)
    with pytest.raises(UnsupportedModelError, match=r"called more than once|tied weights") as info:
        tribute.explain(m, Xt, method="influence", solver="ekfac", damping=0.0, players=data)
    assert "solver='cg' or 'explicit'" in str(info.value)
    assert _unchanged(m, before)


class _Spare(torch.nn.Module):
    """A registered ``nn.Linear`` (``spare``) that the forward pass never calls."""

    def __init__(self) -> None:
        super().__init__()
        self.spare = torch.nn.Linear(D, 1).double()
        self.a = torch.nn.Linear(D, 1).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x)


def test_ekfac_takes_a_linear_layer_the_forward_pass_never_calls() -> None:
    # before: KeyError('spare'). Truth: the mean ridge influence in closed form (centred,
    # the module docstring of data_influence), which EK-FAC equals on one linear layer with
    # squared error at damping 0; the spare layer's gradients are zero
    X, y, Xt = _ridge_data()
    m = _Spare()
    A = torch.cat([X, torch.ones(N, 1, dtype=torch.float64)], 1)
    At = torch.cat([Xt, torch.ones(2, 1, dtype=torch.float64)], 1)
    H = A.T @ A / N + L2 * torch.eye(D + 1, dtype=torch.float64)
    th = torch.linalg.solve(H, A.T @ y / N)
    with torch.no_grad():
        m.a.weight.copy_(th[:D][None])
        m.a.bias.copy_(th[D:])
    G = (A @ th - y)[:, None] * A
    truth = -(1 / N) * At @ torch.linalg.solve(H, (G - G.mean(0)).T)
    data = tribute.TrainingData(X, y, loss="mse", l2=L2, reduction="mean")
    before = _state(m)
    attr = tribute.explain(m, Xt, method="influence", solver="ekfac", damping=0.0, players=data)
    assert torch.allclose(attr.values.reshape(2, N), truth, rtol=1e-9, atol=1e-13)
    assert _unchanged(m, before)


class _Alias(torch.nn.Module):
    """A layer registered under two names (``head`` is ``body[2]``), called once."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(D, 1).double())
        self.head = self.body[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_ekfac_still_takes_a_layer_registered_under_two_names() -> None:
    # guard: one module object under two names (an alias, called once) is not tied weights
    X, y, Xt = _ridge_data(6)
    m = _Alias()
    A = torch.cat([X, torch.ones(N, 1, dtype=torch.float64)], 1)
    At = torch.cat([Xt, torch.ones(2, 1, dtype=torch.float64)], 1)
    H = A.T @ A + L2 * torch.eye(D + 1, dtype=torch.float64)
    th = torch.linalg.solve(H, A.T @ y)
    lin = m.head
    assert isinstance(lin, torch.nn.Linear)
    with torch.no_grad():
        lin.weight.copy_(th[:D][None])
        lin.bias.copy_(th[D:])
    G = (A @ th - y)[:, None] * A
    truth = -At @ torch.linalg.solve(H, G.T)
    data = tribute.TrainingData(X, y, loss="mse", l2=L2, reduction="sum")
    attr = tribute.explain(m, Xt, method="influence", solver="ekfac", damping=0.0, players=data)
    assert torch.allclose(attr.values.reshape(2, N), truth, rtol=1e-9, atol=1e-13)


def _ridge_checkpoints(tmp: Any) -> tuple[torch.nn.Linear, list[Any], list[torch.Tensor], list[float]]:
    """Three checkpoints of ``nn.Linear(D, 1)`` saved as a ``torch.save`` path (str), a
    ``.safetensors`` path (``pathlib.Path``) and a state_dict, and the explained model."""
    from safetensors.torch import save_file

    torch.manual_seed(3)
    mods = [torch.nn.Linear(D, 1).double() for _ in range(3)]
    lrs = [0.5, 0.25, 0.1]
    pt = str(tmp / "c0.pt")
    torch.save(mods[0].state_dict(), pt)
    st = tmp / "c1.safetensors"
    save_file({k: v.contiguous() for k, v in mods[1].state_dict().items()}, str(st))
    cks = [(pt, lrs[0]), (st, lrs[1]), (mods[2].state_dict(), lrs[2])]
    thetas = [torch.cat([m.weight.detach().reshape(-1), m.bias.detach()]) for m in mods]
    return mods[2], cks, thetas, lrs


def test_tracin_takes_checkpoints_saved_as_paths(tmp_path: Any) -> None:
    # before: a str path failed with "dictionary update sequence element #0 has length 1",
    # a Path with "'PosixPath' object is not iterable". Truth: TracInCP by hand,
    # sum_k lr_k * -<[x_t, 1], (theta_k . a_i - y_i) a_i>
    X, y, Xt = _ridge_data(7)
    model, cks, thetas, lrs = _ridge_checkpoints(tmp_path)
    A = torch.cat([X, torch.ones(N, 1, dtype=torch.float64)], 1)
    At = torch.cat([Xt, torch.ones(2, 1, dtype=torch.float64)], 1)
    truth = sum(-lr * At @ ((A @ th - y)[:, None] * A).T for th, lr in zip(thetas, lrs))
    data = tribute.TrainingData(X, y, loss="mse", checkpoints=cks)
    before = _state(model)
    attr = tribute.explain(model, Xt, method="tracin", players=data)
    assert isinstance(truth, torch.Tensor)
    assert torch.allclose(attr.values.reshape(2, N), truth, rtol=1e-12, atol=1e-14)
    assert _unchanged(model, before)
    # the same checkpoints given as state_dicts score bit for bit the same
    same = tribute.TrainingData(X, y, loss="mse", checkpoints=[
        (torch.load(cks[0][0], weights_only=True), lrs[0]),
        ({"weight": thetas[1][:D][None], "bias": thetas[1][D:]}, lrs[1]), cks[2]])
    assert torch.equal(tribute.explain(model, Xt, method="tracin", players=same).values, attr.values)


def test_checkpoint_paths_that_hold_no_state_dict_are_refused(tmp_path: Any) -> None:
    X, y, Xt = _ridge_data(7)
    model = torch.nn.Linear(D, 1).double()
    whole = tmp_path / "whole.pt"
    torch.save(model, whole)  # a pickled module: weights_only refuses it
    nested = tmp_path / "nested.pt"
    torch.save({"model": model.state_dict(), "epoch": 3}, nested)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    for bad, words in [(tmp_path / "missing.pt", "is not a file"), (whole, "could not be read"),
                       (nested, "not a state_dict of tensors"), (garbage, "could not be read"),
                       (3, "is not a torch.nn.Module")]:
        data = tribute.TrainingData(X, y, loss="mse", checkpoints=[(bad, 0.5)])
        with pytest.raises(InputError, match=words):
            tribute.explain(model, Xt, method="tracin", players=data)
    singles: list[Any] = [str(whole), whole, model.state_dict(), model]
    for one in singles:
        with pytest.raises(InputError, match="pass a list of checkpoints"):
            tribute.TrainingData(X, y, loss="mse", checkpoints=one)


def test_convfit_model_runs_on_the_images_it_was_trained_on() -> None:
    # ConvFit trains on flat or n x 1 x H x W images; before, its model refused the latter
    # ("unflatten: Provided sizes [1, 6, 6] don't multiply up to the size of dim 1 (1)").
    # Truth: grad_dot by autograd on the module itself, -<grad margin_t, grad loss_i>
    from tribute.games.data_fits import ConvFit

    rng = np.random.default_rng(3)
    X = torch.tensor(rng.normal(size=(12, 1, 6, 6)))
    y = torch.tensor(rng.integers(0, 2, 12))
    fit = ConvFit(2, channels=2, steps=5, height=6, width=6)
    model = fit(X, y, seed=0)
    flat_model = fit(X.flatten(1), y, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  flat_model.state_dict().values()))

    def grad_of(value: torch.Tensor) -> torch.Tensor:
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, list(model.parameters()))])

    tests = []
    for t in range(2):
        z = model(X[t : t + 1])[0]
        tests.append(grad_of(z[y[t]] - z[1 - y[t]]))
    train = [grad_of(torch.nn.functional.cross_entropy(model(X[i : i + 1]), y[i : i + 1]))
             for i in range(12)]
    truth = -torch.stack(tests) @ torch.stack(train).T
    data = tribute.TrainingData(X, y, fit=fit)
    attr = tribute.explain(model, X[:2], target=y[:2], method="grad_dot", players=data)
    assert torch.allclose(attr.values.reshape(2, 12), truth, rtol=1e-10, atol=1e-12)
    flat = tribute.explain(flat_model, X[:2].flatten(1), target=y[:2], method="grad_dot",
                           players=tribute.TrainingData(X.flatten(1), y, fit=fit))
    assert torch.equal(flat.values, attr.values)


def _tied_fit(X: torch.Tensor, y: torch.Tensor, *, seed: int,
              weights: torch.Tensor | None = None) -> torch.nn.Module:
    """``_Tied`` fitted in closed form: ``sum (2 w.x - y)^2 / 2 + l2/2 |w|^2``."""
    m = _Tied()
    H = 4 * X.T @ X + L2 * torch.eye(D, dtype=torch.float64)
    with torch.no_grad():
        m.a.weight.copy_(torch.linalg.solve(H, 2 * X.T @ y)[None])
    return m


def _alias_fit(X: torch.Tensor, y: torch.Tensor, *, seed: int,
               weights: torch.Tensor | None = None) -> torch.nn.Module:
    """``_Alias`` fitted as ridge with its bias penalised, in closed form."""
    m = _Alias()
    A = torch.cat([X, torch.ones(len(X), 1, dtype=torch.float64)], 1)
    th = torch.linalg.solve(A.T @ A + L2 * torch.eye(D + 1, dtype=torch.float64), A.T @ y)
    lin = m.head
    assert isinstance(lin, torch.nn.Linear)
    with torch.no_grad():
        lin.weight.copy_(th[:D][None])
        lin.bias.copy_(th[D:])
    return m


@pytest.mark.parametrize("which", ["tied", "alias"])
def test_leave_one_out_retrains_models_with_tied_or_aliased_parameters(which: str) -> None:
    # before: torch's "functional_call got multiple values for keys ['a.weight', 'b.weight'],
    # which are tied" (also for one Linear registered under two names). Truth: the closed-form
    # refits without each example
    X, y, Xt = _ridge_data(8)
    fit = _tied_fit if which == "tied" else _alias_fit
    model = fit(X, y, seed=0)
    data = tribute.TrainingData(X, y, fit=fit, loss="mse")
    before = _state(model)
    attr = tribute.explain(model, Xt, method="feature_ablation", players=data)
    assert _unchanged(model, before)
    with torch.no_grad():
        full = model(Xt)[:, 0]
        truth = torch.stack([full - fit(X[torch.arange(N) != i], y[torch.arange(N) != i],
                                        seed=0)(Xt)[:, 0] for i in range(N)], 1)
    assert torch.allclose(attr.values.reshape(2, N), truth, rtol=1e-10, atol=1e-12)


def test_an_aliased_model_keeps_its_own_parameters() -> None:
    # before: torch's weight tying set the module registered as both body.0 and head twice and
    # restored it wrongly: after grad_dot the float32 model held the game's float64 copy in
    # place of its Parameter. Truth: grad_dot by hand, -<[x_t, 1], (f(x_i) - y_i) [x_i, 1]>
    X, y, Xt = _ridge_data(9)
    m = _Alias().float()
    params = [(n, p, p.dtype) for n, p in m.named_parameters(remove_duplicate=False)]
    data = tribute.TrainingData(X.float(), y.float(), loss="mse")
    attr = tribute.explain(m, Xt.float(), method="grad_dot", players=data)
    after = list(m.named_parameters(remove_duplicate=False))
    assert [(n, id(p)) for n, p, _ in params] == [(n, id(p)) for n, p in after]
    assert all(isinstance(p, torch.nn.Parameter) and p.dtype == torch.float32 for _, p in after)
    lin = m.head
    assert isinstance(lin, torch.nn.Linear)
    th = torch.cat([lin.weight.detach().double().reshape(-1), lin.bias.detach().double()])
    A = torch.cat([X.float().double(), torch.ones(N, 1, dtype=torch.float64)], 1)
    At = torch.cat([Xt.float().double(), torch.ones(2, 1, dtype=torch.float64)], 1)
    truth = -At @ ((A @ th - y.float().double())[:, None] * A).T
    assert torch.allclose(attr.values.double().reshape(2, N), truth, rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        assert m(Xt.float()).dtype == torch.float32


class _Untied(torch.nn.Module):
    """``_Alias``'s state names, with ``head`` a Linear of its own (not ``body[0]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(D, 1).double())
        self.head = torch.nn.Linear(D, 1).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.head(x)


def test_a_fit_whose_models_untie_the_explained_models_tensors_is_refused() -> None:
    X, y, Xt = _ridge_data(10)

    def fit(X: torch.Tensor, y: torch.Tensor, *, seed: int,
            weights: torch.Tensor | None = None) -> torch.nn.Module:
        torch.manual_seed(seed)
        return _Untied()

    model = _alias_fit(X, y, seed=0)
    data = tribute.TrainingData(X, y, fit=fit, loss="mse")
    before = _state(model)
    with pytest.raises(InputError, match=r"'head\.weight' differs from 'body\.0\.weight'"):
        tribute.explain(model, Xt, method="feature_ablation", players=data)
    assert _unchanged(model, before)
