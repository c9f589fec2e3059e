"""small42b: a view of some samples (``with_inputs(parent=...)``) charges only those samples.

A batched ``submodular_regions`` run on images with 12 / 4 / 3 regions evaluates each image in
views of the images still searching: the game's own ``n_evals`` summed the views' spends (122)
where the rows seen per image, counted through the model, are 90 / 22 / 14 (so 90 per input,
as ``attr.n_evals`` says), and ``budget_left(90)`` was -32."""

from __future__ import annotations

import collections

import torch
from torch import nn

import tribute
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
    net.rows.clear()
    start = game.n_evals
    sub = game.with_inputs([x[[2, 2]]], parent=torch.tensor([2, 2]))  # two copies of sample 2
    sub.value(torch.ones(3, sub.n_players))
    one = game.with_inputs([x[[0]]], parent=torch.tensor([0]))
    one.value(torch.ones(1, one.n_players))
    # rows seen: sample 2 twice per coalition (3 coalitions), sample 0 once, sample 1 none
    assert dict(net.rows) == {2: 6, 0: 1}
    assert game.n_evals - start == max(net.rows.values())
