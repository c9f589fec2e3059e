"""rev46p: with ``nngp_first_layer=True`` now gp_shapley's default, a global forward hook that
replaces the first Linear's output (here: computing it on the players reversed) must fall back to
the isotropic kernels, as a forward hook on the Linear itself and a global forward pre-hook do;
it used ``W' W`` against permuted players and recorded ``nngp_first_layer_used=True``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

import tribute
from tribute.games import FeatureGame
from tribute.methods._nngp import first_layer_gram
from tribute.methods.gp_shapley import first_layer_of
from tribute.models import as_model

N = 5


def _model() -> tuple[torch.nn.Sequential, torch.nn.Linear]:
    g = torch.Generator().manual_seed(1)
    lin = torch.nn.Linear(N, 3).double()
    with torch.no_grad():  # columns of very different norms: the Gram is far from its flip
        lin.weight.copy_(torch.randn(3, N, generator=g, dtype=torch.float64)
                         * torch.linspace(0.1, 3.0, N, dtype=torch.float64))
    return torch.nn.Sequential(lin, torch.nn.Tanh(), torch.nn.Linear(3, 1).double()).eval(), lin


@contextmanager
def _flip_hook(lin: torch.nn.Linear) -> Iterator[None]:
    """A global forward hook making ``lin`` compute ``x`` reversed times ``W'``."""
    def flip(mod: torch.nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> Any:
        if mod is lin:
            return torch.nn.functional.linear(args[0].flip(-1), lin.weight, lin.bias)
        return None

    hook: Any = flip
    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _x() -> torch.Tensor:
    return torch.randn(2, N, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_global_forward_hook_replacing_the_linear_gives_no_gram() -> None:
    model, lin = _model()
    x = _x()
    game = FeatureGame(as_model(model, "torch"), x, target=0, baseline=0.0)
    g = first_layer_gram(lin.weight)
    assert g is not None and not torch.allclose(g, g.flip(0).flip(1), atol=1e-3)
    with torch.no_grad():
        plain = model(x)
    with _flip_hook(lin):
        with torch.no_grad():  # the hook really changes what the model computes
            assert not torch.allclose(model(x), plain)
        assert first_layer_of(game) is None
    assert first_layer_of(game) is not None  # without the hook the Gram is the players'


@pytest.mark.slow  # one gp_shapley call, ~7 s of CPU on the busy 2-core machine
def test_global_forward_hook_is_recorded_as_not_used() -> None:
    model, lin = _model()
    with _flip_hook(lin):
        at = tribute.explain(model, _x(), method="shapley", budget=12, baseline=0.0, target=0)
    assert at.params["nngp_first_layer"] is True
    assert at.params["nngp_first_layer_used"] is False
