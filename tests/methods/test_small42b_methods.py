"""small42b: a view of some samples (``with_inputs(parent=...)``) charges only those samples.

A batched ``submodular_regions`` run on images with 12 / 4 / 3 regions evaluates each image in
views of the images still searching: the game's own ``n_evals`` summed the views' spends (122)
where the rows seen per image, counted through the model, are 90 / 22 / 14 (so 90 per input,
as ``attr.n_evals`` says), and ``budget_left(90)`` was -32."""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
import torch
from torch import nn

import tribute
from tribute.games import FeatureGame
from tribute.methods.regions.submodular import SubmodularRegions


class _Pool(nn.Module):
    """Counts the rows it sees per sample id (a per-sample forward argument, repeated per row)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.c = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)
        self.rows: collections.Counter[int] = collections.Counter()

    def forward(self, x: torch.Tensor, sid: torch.Tensor) -> torch.Tensor:
        self.rows.update(sid.tolist())
        out: torch.Tensor = self.fc(torch.tanh(self.c(x)).mean((2, 3)))
        return out


def _blocky(rows: int, cols: int, h: int = 12, w: int = 16) -> torch.Tensor:
    ids = (torch.arange(h)[:, None] * rows // h) * cols + torch.arange(w)[None] * cols // w
    return (ids.to(torch.float64) * 7 % 11 / 11.0)[None]


def test_batched_submodular_game_counts_the_most_any_sample_spent() -> None:
    net = _Pool().double().eval()
    x = torch.stack([_blocky(3, 4), _blocky(2, 2), _blocky(1, 3)])
    game = tribute.build_game(net, x, target=torch.tensor([0, 1, 2]), baseline=0.5,
                              forward_kwargs={"sid": torch.arange(3)})
    attr = SubmodularRegions(sigma=0.0, min_size=0.02).attribute(game, budget=90)
    per_sample = [net.rows[i] for i in range(3)]
    assert len(set(per_sample)) > 1  # the images did spend differently
    assert game.n_evals == max(per_sample) == attr.n_evals
    assert game.budget_left(90) == 90 - max(per_sample)


def test_a_view_of_some_samples_charges_only_those() -> None:
    net = _Pool().double().eval()
    x = torch.stack([_blocky(3, 4), _blocky(2, 2), _blocky(1, 3)])
    game = tribute.build_game(net, x, target=0, baseline=0.5, forward_kwargs={"sid": torch.arange(3)})
    assert isinstance(game, FeatureGame)
    net.rows.clear()
    start = game.n_evals
    sub = game.with_inputs([x[[2, 2]]], parent=torch.tensor([2, 2]))  # two copies of sample 2
    sub.value(torch.ones(3, sub.n_players))
    one = game.with_inputs([x[[0]]], parent=torch.tensor([0]))
    one.value(torch.ones(1, one.n_players))
    # rows seen: sample 2 twice per coalition (3 coalitions), sample 0 once, sample 1 none
    assert dict(net.rows) == {2: 6, 0: 1}
    assert game.n_evals - start == max(net.rows.values())


class _FRelu(nn.Module):
    """A ReLU outside torch.nn modules (F.relu in forward): DeepLIFT sees it as a plain gradient."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.b(torch.relu(self.a(x)))
        return out


def _deeplift_warnings(model: nn.Module, x: torch.Tensor, **kw: Any) -> tuple[str, torch.Tensor]:
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        attr = tribute.explain(model, x, method="deeplift", target=0, baseline=0.0, **kw)
    text = " ".join(str(w.message) for w in seen if "summation-to-delta" in str(w.message))
    return text, attr.values.reshape(len(x), -1)


def test_deeplift_large_eps_warning_names_eps() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 1)).double()
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.5
    text, values = _deeplift_warnings(net, x, eps=float("inf"))
    assert "eps=inf made" in text and "ordinary derivative" in text
    assert "probably applies nonlinearities outside" not in text
    # the value is the documented one: gradient x (x - x0) by plain autograd
    xr = x.clone().requires_grad_(True)
    net(xr)[:, 0].sum().backward()
    assert xr.grad is not None
    np.testing.assert_allclose(values.numpy(), (xr.grad * x).numpy(), atol=1e-12)
    text, _ = _deeplift_warnings(net, x)  # default eps: DeepLIFT sums to delta, no warning
    assert text == ""


def test_deeplift_outside_nonlinearity_keeps_its_wording() -> None:
    net = _FRelu().double()
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    text, _ = _deeplift_warnings(net, x)
    assert "probably applies nonlinearities outside torch.nn modules" in text and "eps=" not in text
