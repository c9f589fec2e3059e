"""rev46z: aud46c's GradDrop check of distinct layers named paths the caller never wrote.

An SAE game's paths sit under its wrapper's ``model.``: ``atp_star(layers=['layers.0',
'layers.0'])`` was refused naming ``'model.layers.0'``; ``probe_sites(drop_layers=...)`` was told
to "Pass layers=[...] ... or use method='atp'" (its argument is ``drop_layers``).
"""
from __future__ import annotations

import pytest
import torch
from test_aud46c_components import _Looped
from torch import nn

import tribute
from tribute.errors import InputError
from tribute.games.components import ComponentGame


def _sae_players(model: nn.Module) -> tribute.ComponentSet:
    torch.manual_seed(1)
    enc = nn.Sequential(nn.Linear(4, 6), nn.ReLU()).double()
    dec = nn.Linear(6, 4).double()
    return tribute.components(model, sae=tribute.SAE(enc, dec, at="pre"))


def test_sae_atp_star_refusal_names_the_users_paths() -> None:
    torch.manual_seed(0)
    model = _Looped(tied=False).double()
    x = torch.randn(2, 4, dtype=torch.float64)
    players = _sae_players(model)
    with pytest.raises(InputError, match=r"^layers= lists 'layers.0' twice") as err:
        tribute.explain(model, x, method="atp_star", players=players, target=0, layers=["layers.0", "layers.0"])
    assert "model.layers" not in str(err.value)
    tied = _Looped(tied=True).double()
    with pytest.raises(InputError, match=r"^layers 'layers.0' and 'layers.1' are one module"):
        tribute.explain(tied, x, method="atp_star", players=_sae_players(tied), target=0,
                        layers=["layers.0", "layers.1"])
    # distinct layers still run (legitimate neighbours)
    for layers in (["layers.0", "layers.1"], ["layers.1", "layers.2"], ["layers.0", "layers.1", "layers.2"]):
        attr = tribute.explain(model, x, method="atp_star", players=players, target=0, layers=layers)
        assert torch.isfinite(torch.as_tensor(attr.values)).all()


def test_probe_sites_refusal_names_drop_layers() -> None:
    torch.manual_seed(0)
    model = _Looped(tied=False).double()
    x = torch.randn(2, 4, dtype=torch.float64)
    game = tribute.build_game(model, x, players=tribute.components(model, "pre"), target=0)
    assert isinstance(game, ComponentGame)
    with pytest.raises(InputError, match=r"^drop_layers= lists 'layers.1' twice.*Pass drop_layers=\[") as err:
        game.probe_sites(game.sites, n_points=3, drop_layers=["layers.1", "layers.1"])
    assert "method='atp'" not in str(err.value)
    out = game.probe_sites(game.sites, n_points=3, drop_layers=["layers.0", "layers.1"])
    assert len(out) >= 1
