"""aud51k: conductance and layer_grad_cam never ablate a unit, so ``ablation='mean' / 'resample'``
with ``reference=`` (and ``'patch'`` with ``counterfactual=``) must not run the reference /
counterfactual capture pass: it cost 4 evaluations per input (8 reference rows, 2 inputs),
counted in ``n_evals``, and under ``budget=10`` halved conductance's steps (8 -> 4). Truth: the
rows the model saw (a forward pre-hook), and the call with ``ablation='zero'``."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

import tribute


def _net() -> tuple[nn.Module, list[int], torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    rows = [0]
    net.register_forward_pre_hook(lambda m, a: rows.__setitem__(0, rows[0] + a[0].shape[0]))
    return net, rows, torch.randn(2, 5, dtype=torch.float64), torch.randn(8, 5, dtype=torch.float64)


def _run(net: nn.Module, rows: list[int], x: torch.Tensor, method: str,
         players: Any, **kw: Any) -> tuple[tribute.Attribution, int, list[str]]:
    rows[0] = 0
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        a = tribute.explain(net, x, method=method, players=players, target=0, progress=False, **kw)
    return a, rows[0], [str(w.message) for w in rec]


@pytest.mark.parametrize("method", ["conductance", "layer_grad_cam"])
@pytest.mark.parametrize("abl", ["mean", "resample", "patch"])
def test_unread_ablation_runs_no_capture_pass(method: str, abl: str) -> None:
    net, rows, x, ref = _net()
    steps = {"n_steps": 4} if method == "conductance" else {}
    zero, zero_rows, _ = _run(net, rows, x, method, tribute.components(net, "0"), **steps)
    extra: dict[str, Any] = {"counterfactual": ref[:2]} if abl == "patch" else {"reference": ref}
    a, n_rows, msgs = _run(net, rows, x, method, tribute.components(net, "0", ablation=abl, **extra), **steps)
    assert n_rows == zero_rows  # conductance 12, layer_grad_cam 4 (was 20 / 12 for mean)
    assert a.n_evals == zero.n_evals
    assert torch.equal(torch.as_tensor(a.values), torch.as_tensor(zero.values))
    assert any("does not ablate units" in m and f"ablation={abl!r} is not read" in m for m in msgs), msgs
    assert a.params["ablation"] == abl  # what the set says, as before


def test_conductance_budget_keeps_its_steps_with_an_unread_reference() -> None:
    net, rows, x, ref = _net()
    zero, zero_rows, _ = _run(net, rows, x, "conductance", tribute.components(net, "0"), budget=10)
    a, n_rows, _ = _run(net, rows, x, "conductance", tribute.components(net, "0"),
                        budget=10, ablation="mean")
    b, b_rows, _ = _run(net, rows, x, "conductance", tribute.components(net, "0", ablation="mean", reference=ref),
                        budget=10)
    assert zero.params["n_steps"] == a.params["n_steps"] == b.params["n_steps"] == 8  # b was 4
    assert zero_rows == n_rows == b_rows == 20
    assert torch.equal(torch.as_tensor(b.values), torch.as_tensor(zero.values))


def test_unread_reference_is_still_checked() -> None:
    net, _, x, ref = _net()
    with pytest.raises(tribute.InputError, match="reference"):
        tribute.explain(net, x, method="conductance", target=0, progress=False,
                        players=tribute.components(net, "0", ablation="mean", reference=ref[:, :4]))
    with pytest.raises(tribute.InputError, match="counterfactual"):
        tribute.explain(net, x, method="layer_grad_cam", target=0, progress=False,
                        players=tribute.components(net, "0", ablation="patch", counterfactual=ref[:, :4]))


def test_methods_that_ablate_still_pay_for_the_reference_pass() -> None:
    net, rows, x, ref = _net()
    zero, zero_rows, _ = _run(net, rows, x, "atp", tribute.components(net, "0"))
    a, n_rows, _ = _run(net, rows, x, "atp", tribute.components(net, "0", ablation="mean", reference=ref))
    assert n_rows == zero_rows + 8 and a.n_evals == zero.n_evals + 4


def test_a_game_built_without_ablation_values_refuses_to_ablate() -> None:
    net, _, x, ref = _net()
    game = tribute.components(net, "0", ablation="mean", reference=ref).make_game(
        tribute.models.as_model(net, "torch"), x, target=0, read_ablation=False)
    assert game.capture_evals == 0
    with pytest.raises(RuntimeError, match="read_ablation=False"):
        game.value(torch.zeros(1, game.n_players, dtype=torch.bool))


def test_sae_players_skip_the_unread_reference_pass_too() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    rows = [0]
    model.register_forward_pre_hook(lambda m, a: rows.__setitem__(0, rows[0] + a[0].shape[0]))
    enc = nn.Sequential(nn.Linear(4, 6), nn.ReLU()).double()
    dec = nn.Linear(6, 4).double()
    sae = tribute.SAE(enc, dec, at="0")
    x, ref = torch.randn(2, 5, dtype=torch.float64), torch.randn(8, 5, dtype=torch.float64)
    zero, zero_rows, _ = _run(model, rows, x, "layer_grad_cam", tribute.components(model, sae=sae))
    a, n_rows, _ = _run(model, rows, x, "layer_grad_cam",
                        tribute.components(model, sae=sae, ablation="mean", reference=ref))
    assert n_rows == zero_rows and a.n_evals == zero.n_evals  # was zero_rows + 8, n_evals + 4
    assert torch.equal(torch.as_tensor(a.values), torch.as_tensor(zero.values))
