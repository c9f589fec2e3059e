"""Ablation settings the chosen kind does not read are not silently dropped: the API warns,
the CLI refuses (an option given and ignored changed nothing and said nothing)."""

from __future__ import annotations

import argparse
import warnings
from typing import Any

import pytest
import torch
from torch import nn

import tribute
from tribute.cli_components import components_from_cli_args
from tribute.errors import InputError


def _net() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double(), torch.randn(3, 4, dtype=torch.float64)


@pytest.mark.parametrize(("kind", "given"), [("zero", "counterfactual"), ("mean", "counterfactual"),
                                             ("patch", "reference"), ("zero", "reference")])
def test_api_warns_about_unread_settings(kind: str, given: str) -> None:
    net, x = _net()
    extra: dict[str, Any] = {given: torch.randn(3, 4, dtype=torch.float64)}
    if kind == "patch":
        extra["counterfactual"] = torch.randn(3, 4, dtype=torch.float64)
    players = tribute.components(net, "0", ablation=kind, **extra)
    with pytest.warns(UserWarning, match=f"does not read {given}="):
        tribute.explain(net, x, method="feature_ablation", players=players, target=0)


def test_explicit_override_drops_what_the_new_kind_does_not_read() -> None:
    net, x = _net()
    players = tribute.components(net, "0", ablation="patch", counterfactual=torch.randn(3, 4, dtype=torch.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tribute.explain(net, x, method="feature_ablation", players=players, target=0, ablation="mean")


@pytest.mark.parametrize(("ablation", "flag"), [("zero", "counterfactual"), ("patch", "reference"),
                                                ("mean", "n_resample")])
def test_cli_refuses_unread_options(ablation: str, flag: str) -> None:
    net, _ = _net()
    ns = argparse.Namespace(module=["0"], unit="neuron", num_heads=None, ablation=ablation, reference=None,
                            counterfactual=None, n_resample=None, seed=0)
    setattr(ns, flag, 3 if flag == "n_resample" else "file.npy")
    if ablation == "patch":
        ns.counterfactual = "cf.npy"
    with pytest.raises(InputError, match=f"--{flag.replace('_', '-')} .* is read only by --ablation"):
        components_from_cli_args(net, ns, load=lambda path, arg: torch.randn(3, 4, dtype=torch.float64))


def test_conductance_refuses_steps_a_budget_would_cap() -> None:
    # n_steps=20 with budget=10 ran 8 steps silently (as integrated_gradients' steps did, now
    # refused by explain); a budget that leaves n_steps as given is fine
    net, x = _net()
    players = tribute.components(net, "1")
    with pytest.raises(InputError, match="n_steps=20 and budget=10 disagree"):
        tribute.explain(net, x, method="conductance", players=players, target=0, n_steps=20, budget=10)
    ok = tribute.explain(net, x, method="conductance", players=players, target=0, n_steps=5, budget=10)
    assert ok.params["n_steps"] == 5
    capped = tribute.explain(net, x, method="conductance", players=players, target=0, budget=10)
    assert capped.params["n_steps"] == 8 and capped.n_evals <= 10


@pytest.mark.parametrize("method", ["conductance", "layer_grad_cam"])
def test_methods_that_never_ablate_say_ablation_is_not_read(method: str) -> None:
    # aud33s: conductance and layer_grad_cam gave the same values under ablation='mean' as
    # under 'zero' and said nothing
    net, x = _net()
    players = tribute.components(net, "0")
    with pytest.warns(UserWarning, match=f"method {method!r} does not ablate units: ablation='mean' is not read"):
        mean = tribute.explain(net, x, method=method, players=players, target=0, ablation="mean")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zero = tribute.explain(net, x, method=method, players=players, target=0)
    torch.testing.assert_close(torch.as_tensor(mean.values), torch.as_tensor(zero.values))
