"""rev45p: gp_shapley's ``nngp_first_layer`` uses a first Linear's ``W' W`` only where that Gram
is the players' (the input reaches the Linear unchanged and it computes ``x W' + b``); a
Sequential or Linear subclass with its own ``forward``, or a forward pre-hook, fall back to the
isotropic kernels instead of a Gram of permuted players."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

import tribute
from tribute.games import FeatureGame
from tribute.methods._nngp import first_layer_gram
from tribute.methods.gp_shapley import first_layer_of
from tribute.models import as_model

N = 5


class _FlipSeq(torch.nn.Sequential):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flip(-1))


class _FlipLinear(torch.nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flip(-1))


class _Perm(torch.nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w.flip(-1)


def _lin(seed: int) -> torch.nn.Linear:
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(N, 3).double()
    with torch.no_grad():  # columns of very different norms: the Gram is far from its flip
        lin.weight.copy_(torch.randn(3, N, generator=g, dtype=torch.float64)
                         * torch.linspace(0.1, 3.0, N, dtype=torch.float64))
    return lin


def _game(model: torch.nn.Module) -> FeatureGame:
    x = torch.randn(2, N, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return FeatureGame(as_model(model, "torch"), x, target=0, baseline=0.0)


def _flip_pre_hook(mod: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (args[0].flip(-1),)


def _flip_seq() -> torch.nn.Module:
    return _FlipSeq(_lin(1), torch.nn.Tanh(), torch.nn.Linear(3, 1).double())


def _flip_linear() -> torch.nn.Module:
    lin = _FlipLinear(N, 3).double()
    lin.load_state_dict(_lin(1).state_dict())
    return torch.nn.Sequential(lin, torch.nn.Tanh(), torch.nn.Linear(3, 1).double())


def _pre_hook_on_sequential() -> torch.nn.Module:
    m = torch.nn.Sequential(_lin(1), torch.nn.Tanh(), torch.nn.Linear(3, 1).double())
    m.register_forward_pre_hook(_flip_pre_hook)
    return m


def _pre_hook_on_linear() -> torch.nn.Module:
    m = torch.nn.Sequential(_lin(1), torch.nn.Tanh(), torch.nn.Linear(3, 1).double())
    m[0].register_forward_pre_hook(_flip_pre_hook)
    return m


def _hook_replacing_the_linear() -> torch.nn.Module:
    m = torch.nn.Sequential(_lin(1), torch.nn.Tanh(), torch.nn.Linear(3, 1).double())
    m[0].register_forward_hook(
        lambda mod, args, out: torch.nn.functional.linear(args[0].flip(-1), mod.weight, mod.bias))
    return m


@pytest.mark.parametrize("build", [_flip_seq, _flip_linear, _pre_hook_on_sequential,
                                   _pre_hook_on_linear, _hook_replacing_the_linear])
def test_no_gram_where_the_first_linear_does_not_see_the_players(
        build: Callable[[], torch.nn.Module]) -> None:
    model = build()
    # the first Linear sees the players reversed: its Gram is not theirs
    lin = next(iter(model.children()))
    assert isinstance(lin, torch.nn.Linear)
    g = first_layer_gram(lin.weight)
    assert g is not None and not torch.allclose(g, g.flip(0).flip(1), atol=1e-3)
    assert first_layer_of(_game(model)) is None


def test_global_pre_hook_gives_no_gram() -> None:
    model = torch.nn.Sequential(_lin(1), torch.nn.Tanh(), torch.nn.Linear(3, 1).double())
    game = _game(model)
    hook: Any = _flip_pre_hook
    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        assert first_layer_of(game) is None
    finally:
        handle.remove()
    assert first_layer_of(game) is not None


def _weight_norm_old() -> tuple[torch.nn.Module, torch.Tensor]:
    lin = _lin(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lin = torch.nn.utils.weight_norm(lin)
    g: Any = lin.weight_g
    v: Any = lin.weight_v
    with torch.no_grad():  # after the last forward: the stored ``weight`` is stale
        g.mul_(torch.tensor([[0.5], [2.0], [1.5]], dtype=torch.float64))
    w = g * v / v.norm(dim=1, keepdim=True)  # by hand
    return torch.nn.Sequential(lin, torch.nn.Tanh()), w.detach()


def _weight_norm_new() -> tuple[torch.nn.Module, torch.Tensor]:
    lin = torch.nn.utils.parametrizations.weight_norm(_lin(2))
    return torch.nn.Sequential(lin, torch.nn.Tanh()), _lin(2).weight.detach()


def _permuting_parametrization() -> tuple[torch.nn.Module, torch.Tensor]:
    lin = _lin(3)
    torch.nn.utils.parametrize.register_parametrization(lin, "weight", _Perm())
    return torch.nn.Sequential(lin, torch.nn.Tanh()), _lin(3).weight.detach().flip(-1)


def _plain_float32() -> tuple[torch.nn.Module, torch.Tensor]:
    lin = _lin(4)
    return torch.nn.Sequential(lin.float(), torch.nn.Tanh()), lin.weight.detach().double()


@pytest.mark.parametrize("build", [_weight_norm_old, _weight_norm_new, _permuting_parametrization,
                                   _plain_float32])
def test_gram_of_the_weight_the_layer_computes_with(
        build: Callable[[], tuple[torch.nn.Module, torch.Tensor]]) -> None:
    model, w = build()
    gram = first_layer_of(_game(model))
    assert gram is not None
    truth = w.double().T @ w.double()
    truth = truth / torch.diagonal(truth).mean()
    assert torch.allclose(gram, truth, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_flipped_model_falls_back_to_the_isotropic_values() -> None:
    model = _flip_seq().eval()
    x = torch.randn(1, N, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    kw: dict[str, Any] = {"method": "shapley", "budget": 16, "target": 0, "baseline": 0.0, "seed": 2}
    on = tribute.explain(model, x, nngp_first_layer=True, **kw)
    assert on.params["nngp_used"] and not on.params["nngp_first_layer_used"]
    off = tribute.explain(model, x, **kw)
    assert torch.equal(on.values, off.values) and torch.equal(on.stderr, off.stderr)
