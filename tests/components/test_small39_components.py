"""small39: atp_star's "budget too small" refusal names what its cost depends on (layers and the
QK fix), not groups of players; the reference pass of ablation='mean' is charged at the least
whole number of evaluations per input that keeps every budget."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from test_aud38c import _ids, _llama
from torch import nn

import tribute
from tribute.games.components import components
from tribute_testing import RowCounter


def test_atp_star_budget_refusal_names_layers_and_qk_fix_not_groups() -> None:
    model = _llama()
    players = components(model, ["m.layers.0.self_attn.k_proj", "m.layers.1.self_attn.k_proj"], unit="head")
    with pytest.raises(tribute.errors.BudgetError) as exc:
        tribute.explain(model, _ids(), method="atp_star", players=players, target=0, budget=2)
    msg = str(exc.value)
    assert "group" not in msg  # grouping players changes nothing of its cost
    assert "layers=" in msg and "qk_fix=False" in msg and "Raise budget to >= 9" in msg


def _counting() -> RowCounter:
    """tanh MLP (its layers ``inner.fc1``, ``inner.fc2``) that counts the rows it sees."""
    return RowCounter(nn.Sequential(OrderedDict(
        fc1=nn.Linear(4, 5).double(), tanh=nn.Tanh(), fc2=nn.Linear(5, 2).double())))


@pytest.mark.parametrize("n_ref", [10, 9, 1])
def test_reference_rows_are_charged_the_least_whole_share_that_keeps_the_budget(n_ref: int) -> None:
    # n_evals is one number per input: 10 reference rows over 3 inputs cannot be charged 3.33
    # each; 4 (the ceiling) is the least charge that keeps budget * inputs >= the rows the model saw
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = torch.randn(n_ref, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    model = _counting()
    players = components(model, "inner.fc1", ablation="mean", reference=ref)
    attr = tribute.explain(model, x, method="kernel_shap", players=players, target=0, budget=20)
    assert model.rows == attr.n_rows
    assert attr.n_evals <= 20 and model.rows <= 3 * 20
    # the overcharge is below one evaluation per input (the rounding of the shared rows)
    assert 0 <= 3 * attr.n_evals - model.rows < 3
