"""COAR on a design where a player is never ablated (small budgets): its credit is not
identified, but every other credit is, and must be the least-squares one."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

import tribute
from tribute.methods.component_methods import coar_masks


def test_identified_credits_exact_when_a_player_is_never_dropped() -> None:
    # zero-ablating the hidden Tanh of a Linear-Tanh-Linear net: v is linear in the mask, so the
    # least-squares credits are the leave-one-out effects exactly. With 6 players, 39 subsets
    # (budget 40) and seed 5, player 3 is kept in every subset: the normal matrix is singular and
    # its default (QR) solve returned credits off by up to 0.07 for the *other* players, too.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double().eval()
    x = torch.randn(3, 4, dtype=torch.float64)
    masks = coar_masks(6, 39, 0.9, torch.Generator().manual_seed(5))
    never = (masks.min(0).values == 1).nonzero().flatten().tolist()
    assert never == [3]
    players = tribute.components(net, "1", ablation="zero")
    loo = tribute.explain(net, x, method="feature_ablation", players=players, target=[0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its standard error is not estimable (warned)
        coar = tribute.explain(net, x, method="coar", players=players, target=[0, 1], budget=40, seed=5)
    keep = [0, 1, 2, 4, 5]
    np.testing.assert_allclose(np.asarray(coar.values)[..., keep], np.asarray(loo.values)[..., keep],
                               rtol=0, atol=1e-9)
