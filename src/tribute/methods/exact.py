"""Exact Shapley values by enumerating all ``2^n`` coalitions."""

from __future__ import annotations

import math

import torch

from ..attribution import Attribution
from ..games.base import Game
from .base import Cost, Method, Tags, coalition_cost, register

__all__ = ["ExactShapley", "all_coalitions", "shapley_from_table", "value_table"]

MAX_PLAYERS = 20


def all_coalitions(n: int) -> torch.Tensor:
    """``2^n x n`` binary masks; row ``s`` is the coalition whose bitmask is ``s``."""
    s = torch.arange(2**n, dtype=torch.int64)
    return ((s[:, None] >> torch.arange(n)) & 1).to(torch.float64)


def value_table(game: Game) -> torch.Tensor:
    """``v`` of all ``2^n`` coalitions, ``batch x targets x 2^n`` indexed by bitmask.

    The full coalition is the game's cached ``v(N)`` (the reference pass, already counted), so
    the table costs ``2^n`` evaluations per input in all, ``2^n - 1`` of them new.
    """
    n = game.n_players
    rest = game.value(all_coalitions(n)[:-1]).permute(0, 2, 1)  # B x T x (2^n - 1)
    return torch.cat([rest, game.full()[..., None]], dim=-1)


def shapley_from_table(v: torch.Tensor, n: int) -> torch.Tensor:
    """Shapley values from a full value table.

    Args:
        v: ``... x 2^n`` values indexed by coalition bitmask.
        n: number of players.

    Returns:
        ``... x n``: ``phi_i = sum_{S not containing i} |S|!(n-|S|-1)!/n! (v(S+i) - v(S))``.
    """
    sizes = torch.tensor([bin(s).count("1") for s in range(2**n)], dtype=torch.int64)
    w = torch.tensor([math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                      for k in range(n)], dtype=torch.float64)
    out = torch.empty(*v.shape[:-1], n, dtype=torch.float64)
    idx = torch.arange(2**n)
    for i in range(n):
        bit = 1 << i
        without = idx[(idx & bit) == 0]
        out[..., i] = ((v[..., without | bit] - v[..., without]) * w[sizes[without]]).sum(-1)
    return out


@register
class ExactShapley(Method):
    """Exact Shapley values: the weighted average of marginal contributions over all coalitions.

    Evaluates every one of the ``2^n`` coalitions once (``2^n`` evaluations per input), so it
    is limited to ``n <= 20`` players; group features to go beyond. Satisfies efficiency
    exactly: ``sum(phi) = v(N) - v(empty)``.

    Reference: Shapley (1953), "A Value for n-Person Games"; for model explanation with a
    removal baseline, Lundberg & Lee (2017), "A Unified Approach to Interpreting Model
    Predictions".
    """

    name = "exact_shapley"
    tags = Tags(family="shapley", exact=True, has_gap=True, max_players=MAX_PLAYERS,
                games=("feature", "component", "data"))
    paper = "Shapley (1953), A Value for n-Person Games"

    def min_budget(self, game: Game) -> int:
        return int(2**game.n_players)

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        n = game.n_players
        table = value_table(game)  # B x T x 2^n
        phi = shapley_from_table(table, n)
        gap = phi.sum(-1) - (table[..., -1] - table[..., 0])
        return game.attribution(phi, self.name, self.get_params(), gap=gap,
                                extra={"v_empty": table[..., 0].numpy(), "v_full": table[..., -1].numpy()})

    budget_rule = "2^n (all coalitions)"

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """The ``2^n`` coalition table: masks ``2^n x n`` and values ``batch x 2^n x targets``."""
        n = int(game.n_players)
        k = 2**n
        b, t = int(game.n_samples), int(game.n_targets)
        return coalition_cost(game, k, design=2 * b * k * t * 8, flops=float(k * n * b * t),
                              note=f"the 2^{n} = {k:,}-coalition table")


