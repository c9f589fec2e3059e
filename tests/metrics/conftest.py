"""Toy games and models for the metric reference tests (float64 throughout)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from tribute.attribution import Attribution, Layout
from tribute.engine import Engine
from tribute.games.base import Game
from tribute.models import TorchModel
from tribute.targets import Target


class TableGame(Game):
    """A game given by a vectorised function ``fn(masks B x K x n) -> B x K`` (no model)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], n_players: int,
                 n_samples: int, kind: str = "data") -> None:
        self.kind = kind
        engine = Engine(TorchModel(lambda x: x), None)
        target = Target(torch.zeros(n_samples, 1, dtype=torch.long), None, "raw", False, ["v"])
        super().__init__(engine, target, Layout(), [f"p{i}" for i in range(n_players)], n_samples)
        self.fn = fn

    def _evaluate(self, masks: torch.Tensor, shared: bool) -> torch.Tensor:
        m = masks.double()
        if shared:
            m = m.expand(self.n_samples, *m.shape)
        return self.fn(m)[..., None]


def table_attr(game: Game, phi: np.ndarray, method: str = "toy") -> Attribution:
    """Wrap ``batch x n`` credits as an attribution of ``game``."""
    return game.attribution(torch.as_tensor(phi, dtype=torch.float64)[:, None, :], method)


@pytest.fixture
def linear():
    """A float64 linear model on 12 features, inputs, and the oracle attribution w * x."""
    g = torch.Generator().manual_seed(0)
    n, b = 12, 6
    w = torch.randn(n, generator=g, dtype=torch.float64)
    lin = torch.nn.Linear(n, 1, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(w[None])
        lin.bias.fill_(0.5)
    model = torch.nn.Sequential(lin, torch.nn.Flatten(0))
    x = torch.randn(b, n, generator=g, dtype=torch.float64)
    return model, x, w
