"""rev48p: the dead-row rule of the NNGP first-layer Gram (shap48) must read the activation the
model really runs. A ``forward`` set on the module instance (monkeypatching, accelerate-style
hooks) replaces the class's as a subclass's does; the check on ``type(act)`` missed it and
pruned rows of a layer whose "ReLU" now passes negative values through."""

from __future__ import annotations

import types
from collections.abc import Callable

import pytest
import torch

from tribute.methods.gp_shapley import first_layer_of

N, H = 6, 10


def _net(act: torch.nn.Module) -> torch.nn.Sequential:
    first = torch.nn.Linear(N, H, dtype=torch.float64)
    with torch.no_grad():
        first.bias.fill_(-50.0)  # rows 3-9 never fire through a real ReLU on inputs of size ~1
        first.bias[:3] = 50.0
    return torch.nn.Sequential(first, act, torch.nn.Linear(H, 1, dtype=torch.float64)).eval()


def _gram(model: torch.nn.Sequential, live: bool) -> torch.Tensor | None:
    game = types.SimpleNamespace(model=types.SimpleNamespace(module=model), n_players=N,
                                 forward_args=None, forward_kwargs=None)
    x = torch.randn(3, N, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return first_layer_of(game, (x, torch.zeros(3, N, dtype=torch.float64)), live)  # type: ignore[arg-type]


def _identity(z: torch.Tensor) -> torch.Tensor:
    return z


def _leaky(z: torch.Tensor) -> torch.Tensor:
    return torch.where(z > 0, z, 0.1 * z)


@pytest.mark.parametrize("patched", [_identity, _leaky])
def test_a_relu_whose_instance_forward_was_replaced_keeps_every_row(
        patched: Callable[[torch.Tensor], torch.Tensor]) -> None:
    model = _net(torch.nn.ReLU())
    model[1].forward = patched
    with torch.no_grad():  # truth: the "dead" rows reach the output through the patched unit
        x = torch.randn(4, N, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        h = model[0](x)
        assert bool((h[:, 3:] < 0).all()) and bool((model[1](h)[:, 3:] != 0).all())
    got, full = _gram(model, True), _gram(model, False)
    assert got is not None and full is not None and got.dim() == 2
    assert torch.equal(got, full)


def test_an_unpatched_relu_still_prunes() -> None:
    got = _gram(_net(torch.nn.ReLU()), True)
    assert got is not None and got.dim() == 3


@pytest.mark.parametrize("where", [0, "seq"])
def test_a_linear_or_sequential_whose_instance_forward_was_replaced_gets_no_gram(
        where: object) -> None:
    model = _net(torch.nn.ReLU())
    perm = torch.arange(N - 1, -1, -1)
    if where == 0:  # the Linear now sees its input reversed: W'W would pair the wrong players
        first = model[0]
        assert isinstance(first, torch.nn.Linear)
        w, b = first.weight, first.bias
        name = "forward"  # set on the instance, as a monkeypatch does
        setattr(first, name, lambda z: torch.nn.functional.linear(z[..., perm], w, b))
    else:
        inner = torch.nn.Sequential.forward

        def fwd(z: torch.Tensor) -> torch.Tensor:
            return inner(model, z[..., perm])

        model.forward = fwd  # type: ignore[method-assign]
    assert _gram(model, True) is None and _gram(model, False) is None
