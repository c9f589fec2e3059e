"""Toy games for the metric reference tests (float64 throughout).

A uniquely named helper module (not conftest) so that test modules can import it without
clashing with other test directories' conftest modules."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
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
