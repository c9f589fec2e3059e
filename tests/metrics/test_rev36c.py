"""Review rev36c (stop 36): metrics called on a game directly with component credits of other
units, and the player-kind check's acceptance of every kind it must accept.

Truths are float64 forwards of small MLPs (weights drawn as float64, so the same on every CPU):
exact Shapley values on their own game have a ``shapley_error`` at rounding level.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError
from tribute.metrics import deletion, shapley_error, sparseness


def _net() -> tuple[nn.Module, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return net, torch.randn(3, 4, generator=g, dtype=torch.float64)


def test_direct_call_refuses_component_credits_of_another_layer() -> None:
    """Exact Shapley values of layer "0"'s 5 neurons, scored directly on a game of layer "2"'s
    5 neurons: shapley_error 1.33 (own game 1e-17) with no error before; evaluate refused it
    already (_check_same_components), the direct call did not."""
    net, x = _net()
    own_set, other_set = tribute.components(net, "0"), tribute.components(net, "2")
    attr = tribute.explain(net, x, method="exact_shapley", players=own_set, target=1, progress=False)
    own = tribute.build_game(net, x, target=1, players=own_set)
    assert shapley_error(own, attr).mean < 1e-12
    other = tribute.build_game(net, x, target=1, players=other_set)
    assert other.n_players == own.n_players
    with pytest.raises(InputError, match=r"component site 0 hooks '0\|neuron.*game's hooks '2\|neuron"):
        shapley_error(other, attr)
    with pytest.raises(InputError, match="component site"):
        deletion(other, attr)
    # a game built again with the same set (another object, same modules) is accepted
    again = tribute.build_game(net, x, target=1, players=tribute.components(net, "0"))
    assert shapley_error(again, attr).mean < 1e-12
    # credits built by hand on the other game (no record of the sites) are not checked
    hand = other.attribution(torch.from_numpy(attr.flat()), "hand")
    assert np.isfinite(sparseness(other, hand).mean)


def test_direct_call_site_check_survives_save_and_load(tmp_path: object) -> None:
    net, x = _net()
    attr = tribute.explain(net, x, method="exact_shapley", players=tribute.components(net, "0"),
                           target=1, progress=False)
    loaded = tribute.Attribution.load(attr.save(str(tmp_path) + "/a.npz"))
    assert loaded.player_kind == "component"
    own = tribute.build_game(net, x, target=1, players=tribute.components(net, "0"))
    assert shapley_error(own, loaded).mean < 1e-12
    other = tribute.build_game(net, x, target=1, players=tribute.components(net, "2"))
    with pytest.raises(InputError, match="component site"):
        shapley_error(other, loaded)


@pytest.mark.parametrize("case", ["dense", "groups", "neurons", "sae", "hand"])
def test_every_player_kind_is_accepted_on_its_own_game(case: str, tmp_path: object) -> None:
    """No false refusal: each kind's exact Shapley values (and the same loaded from disk) score
    shapley_error ~0 on their own game, called directly and through evaluate."""
    net, x = _net()
    kw: dict[str, object] = {}
    if case == "groups":
        kw["groups"] = [0, 0, 1, 2]
    elif case == "neurons":
        kw["players"] = tribute.components(net, "2")
    elif case == "sae":
        g = torch.Generator().manual_seed(1)
        enc = nn.Sequential(nn.Linear(5, 3), nn.ReLU()).double()
        dec = nn.Linear(3, 5).double()
        with torch.no_grad():
            for p in [*enc.parameters(), *dec.parameters()]:
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
        kw["players"] = tribute.components(net, sae=tribute.SAE(enc, dec, at="1"))
    attr = tribute.explain(net, x, method="exact_shapley", target=1, progress=False, **kw)  # type: ignore[arg-type]
    game = tribute.build_game(net, x, target=1, **kw)  # type: ignore[arg-type]
    if case == "hand":
        attr = tribute.Attribution(values=attr.flat()[:, 0], method="hand", targets=np.ones(3, dtype=np.int64))
    loaded = tribute.Attribution.load(attr.save(str(tmp_path) + "/a.npz"))
    for a in (attr, loaded):
        assert shapley_error(game, a).mean < 1e-12
        res = tribute.evaluate(net, x, a, metric="shapley_error", progress=False, **kw)  # type: ignore[arg-type]
        assert res.mean < 1e-12
