"""aud42c: settings given beside a component player set that were dropped without a word, and
sequence-first activations read as batch-first.

Truth outside tribute: mean ablation by a forward hook written here (the reference's mean
activation), and attribution patching's ``sum over positions of act * dv/dact`` read from a
seq-first layer by hand."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute import Ablation, components
from tribute.errors import InputError, UnsupportedModelError


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()


def _mean_ablated_loo(net: nn.Sequential, x: torch.Tensor, ref: torch.Tensor) -> np.ndarray:
    """``v(N) - v(N without unit j)``, unit j of ``net[0]`` set to its mean over ``ref`` (target 0)."""
    with torch.no_grad():
        mean = net[0](ref).mean(0)
        full = net(x)[:, 0]
        out = []
        for j in range(3):
            def hook(_m: nn.Module, _a: Any, o: torch.Tensor, j: int = j) -> torch.Tensor:
                o = o.clone()
                o[:, j] = mean[j]
                return o
            h = net[0].register_forward_hook(hook)
            try:
                out.append((full - net(x)[:, 0]).numpy())
            finally:
                h.remove()
    return np.stack(out, 1)


def test_an_ablation_object_with_its_reference_inside_is_the_hand_mean_ablation() -> None:
    net = _net()
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = torch.randn(20, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) + 2.0
    truth = _mean_ablated_loo(net, x, ref)
    for players in (components(net, "0", ablation=Ablation("mean", reference=ref)),
                    components(net, "0", ablation="mean", reference=ref)):
        got = tribute.explain(net, x, method="feature_ablation", players=players, target=0).values.numpy()
        np.testing.assert_allclose(got, truth, atol=1e-12)


@pytest.mark.parametrize(("ablation", "beside"), [
    (Ablation("mean"), {"reference": "ref"}),
    ({"kind": "mean"}, {"reference": "ref"}),
    (Ablation("resample"), {"reference": "ref", "n_resample": 3}),
    (Ablation("resample", reference=None), {"seed": 5}),
    (Ablation("patch", counterfactual="x"), {"counterfactual_kwargs": {}}),
])
def test_settings_beside_an_ablation_object_are_refused_not_dropped(ablation: Any, beside: dict[str, Any]) -> None:
    # aud42c: components(net, "0", ablation=Ablation("mean"), reference=ref) dropped ref and
    # ablated to the explained inputs' mean: credits 1.0e-2 off the hand mean ablation, no warning
    net = _net()
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = torch.randn(20, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) + 2.0
    if isinstance(ablation, Ablation) and ablation.counterfactual is not None:
        ablation = Ablation("patch", counterfactual=x)
    kw = {k: (ref if v == "ref" else v) for k, v in beside.items()}
    with pytest.raises(InputError, match="carries its own settings") as exc:
        components(net, "0", ablation=ablation, **kw)
    given = str(exc.value).split("carries its own settings, so ")[1].split(" given beside it")[0]
    assert given == ", ".join(f"{k}=" for k in beside)


def test_feature_names_with_component_players_are_refused_not_dropped() -> None:
    # aud42c: feature_names=[...] (any length) next to players= was dropped without a word
    net = _net()
    x = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(InputError, match="feature_names names input features; with players="):
        tribute.explain(net, x, method="feature_ablation", players=components(net, "0"), target=0,
                        feature_names=["a", "b", "c"])


class _SeqFirst(nn.Module):
    """Embedding, a linear layer applied to the (tokens, batch, features) sequence-first layout, a
    head on token 0."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(20, 6)
        self.fc = nn.Linear(6, 5)
        self.head = nn.Linear(5, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc(self.emb(ids).transpose(0, 1)))  # T x B x F
        out: torch.Tensor = self.head(h.mean(0))
        return out


@pytest.mark.parametrize("method", ["atp", "feature_ablation"])
def test_sequence_first_activations_are_refused_with_their_layout_named(method: str) -> None:
    # aud42c: (5 tokens, 3 inputs) was refused as "called a varying number of times per forward
    # pass (call 0 saw 5 of 3 rows)"; the batch axis is second there, and the message says so
    model = _SeqFirst().double().eval()
    ids = torch.randint(0, 20, (3, 5), generator=torch.Generator().manual_seed(0))
    players = components(model, "fc")
    with pytest.raises(UnsupportedModelError, match=r"'fc' returned an activation of shape \(5, 3, 5\) on a "
                       r"forward pass of 3 rows.*batch axis first.*sequence-first"):
        tribute.explain(model, ids, method=method, players=players, target=0, batch_size=3)
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_batch_first_layers_of_the_same_model_keep_their_credits() -> None:
    # the check does not refuse a (batch, tokens, features) layer: AtP by hand on emb
    model = _SeqFirst().double().eval()
    ids = torch.randint(0, 20, (3, 5), generator=torch.Generator().manual_seed(0))
    seen: dict[str, torch.Tensor] = {}

    def keep(_m: nn.Module, _a: Any, o: torch.Tensor) -> None:
        o.retain_grad()
        seen["a"] = o

    h = model.emb.register_forward_hook(keep)
    try:
        model(ids)[:, 1].sum().backward()
    finally:
        h.remove()
    a = seen["a"]
    assert a.grad is not None
    truth = (a * a.grad).sum(1).detach().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = tribute.explain(model, ids, method="atp", players=components(model, "emb"), target=1).values.numpy()
    np.testing.assert_allclose(got, truth, atol=1e-12)
