"""Integrated Hessians: pairwise interactions from second derivatives along the IG path.

Janizek, Sturmfels & Lee (2021) explain integrated gradients (IG) itself with IG: the
interaction of features ``i`` and ``j`` is

    ``Gamma_ij = (x_i - b_i)(x_j - b_j) int_0^1 int_0^1 a c d2f/dx_i dx_j (b + a c (x - b)) da dc``

for ``i != j``, and the self term is

    ``Gamma_ii = (x_i - b_i) int int d f/dx_i (b + a c (x - b)) da dc
                 + (x_i - b_i)^2 int int a c d2f/dx_i^2 (b + a c (x - b)) da dc``.

Every row sums to the feature's IG value, ``sum_j Gamma_ij = IG_i``, so the whole matrix sums
to ``f(x) - f(b)`` (*interaction completeness*).

**One integral instead of two.** The integrand only depends on ``g = a c``, whose density for
``a, c ~ U(0, 1)`` is ``-ln g`` on ``(0, 1]``; hence
``Gamma_ij = int_0^1 (-ln g) [delta_ij dv/dm_i + g d2v/dm_i dm_j](g 1) dg`` in the game's mask
space (``x(m) = b + m (x - b)``, where ``dv/dm_i = (x_i - b_i) df/dx_i`` and
``d2v/dm_i dm_j = (x_i - b_i)(x_j - b_j) d2f/dx_i dx_j``). On a grouped game (words made of
tokens and embedding dimensions) the same formula gives the group-summed interactions, i.e. the
Integrated Hessians of the elements summed over each pair of players: for a text game it is
Integrated Hessians on the input embeddings from the removal embedding, summed over each word's
tokens and embedding dimensions.

**Quadrature.** ``[0, 1]`` is cut into ``steps`` equal cells; on cell ``l`` the weight
``w_l = int_cell -ln g dg`` is exact and the node is the cell's centroid under that weight,
``g_l = int_cell -g ln g dg / w_l``. The rule integrates ``-ln g`` times any piecewise-linear
function exactly, so quadratic models (constant Hessian, linear gradient) come out exact at any
``steps``, and the completeness gap of other models shrinks as ``steps`` grows (reported in
``Attribution.gap``).

**Cost.** Every node needs the full ``players x players`` Hessian: the game sends each node once
per player and takes one Hessian row from a double backward pass on each (see
:meth:`tribute.games.features.FeatureGame.value_grad_hessian`), ``steps * players`` evaluations
per input plus ``v(x)`` and ``v(b)`` for the gap (``steps * players + 2``). The game adds each
chunk's Hessian rows into the weighted sum over the nodes as they come, so memory holds one
``batch x targets x players x players`` float64 sum (plus the ``pair`` matrix), not every
node's Hessians: ``estimate_cost`` counts them, so ``max_memory=`` refuses a call they would
overflow and names fewer steps or a player count that fits.

Reference: Janizek, Sturmfels & Lee (2021), "Explaining Explanations: Axiomatic Feature
Interactions for Deep Networks", JMLR 22.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch

from ..attribution import Attribution
from ..errors import BudgetError
from ..games.base import Game
from ..params import Interval, declare
from .base import Cost, Method, Tags, coalition_cost, register
from .gradients_basic import feature_game

__all__ = ["IntegratedHessians", "log_quadrature"]


def _w0(g: np.ndarray) -> np.ndarray:
    """``int_0^g -ln t dt = g - g ln g``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(g > 0, g - g * np.log(np.where(g > 0, g, 1.0)), 0.0)


def _w1(g: np.ndarray) -> np.ndarray:
    """``int_0^g -t ln t dt = g^2 / 4 - g^2 ln(g) / 2``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(g > 0, g**2 / 4 - g**2 * np.log(np.where(g > 0, g, 1.0)) / 2, 0.0)


def log_quadrature(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights of the ``steps``-cell rule for ``int_0^1 -ln(g) h(g) dg``.

    Returns:
        ``(nodes, weights)`` float64 tensors of length ``steps``: weights are the exact
        integrals of ``-ln g`` over the cells ``[l/steps, (l+1)/steps]`` (they sum to 1) and the
        nodes the cells' centroids under that weight, so the rule is exact for ``h``
        piecewise linear on the cells.
    """
    edges = np.linspace(0.0, 1.0, int(steps) + 1)
    w = np.diff(_w0(edges))
    first = np.diff(_w1(edges))
    return torch.from_numpy(first / w), torch.from_numpy(w)


@register
class IntegratedHessians(Method):
    """Integrated Hessians (Janizek et al. 2021): pairwise feature interactions of a model.

    ``values`` are the row sums of the interaction matrix, i.e. integrated gradients under
    this rule's quadrature (completeness gap in ``Attribution.gap``).
    ``extra["shap_interaction_values"]`` is the ``batch x targets x players x players``
    matrix ``Gamma`` itself (symmetric; rows sum to ``values``, the whole matrix to
    ``v(all) - v(none)`` up to the quadrature error: the convention of SHAP interaction values);
    ``extra["interactions"]`` has the same information in the convention of
    ``shapley_interactions``: the pair's whole interaction ``Gamma_ij + Gamma_ji`` off the
    diagonal and the credits (``values``) on it. On sentence pairs the text game adds
    ``extra["pair_interactions"]``, the ``first x second`` word block of ``interactions``.

    A product term ``c x_i x_j`` (baseline 0) gets ``Gamma_ij = Gamma_ji = c x_i x_j / 4`` and
    ``c x_i x_j / 4`` on each diagonal entry (Janizek et al.'s convention, unlike the Shapley
    interaction index, which gives the pair ``c x_i x_j``). Models whose second derivatives
    vanish almost everywhere (ReLU networks) have no off-diagonal interactions here; the paper
    replaces ReLU by softplus for this reason.

    Args:
        steps: quadrature cells along the path (see the module docstring). default=16. With
            ``budget``, ``steps = (budget - 2) // players`` (both given with other values are
            refused by :func:`tribute.explain`).

    Budget: ``steps * players + 2`` evaluations per input (each evaluation is one model row
    with a double backward pass).

    Reference: Janizek, Sturmfels & Lee (2021), "Explaining Explanations: Axiomatic Feature
    Interactions for Deep Networks".
    """

    name = "integrated_hessians"
    tags = Tags(family="gradient", needs_gradients=True, has_gap=True, budgeted=True,
                games=("feature",))
    paper = ("Janizek, Sturmfels & Lee (2021), Explaining Explanations: Axiomatic Feature "
             "Interactions for Deep Networks")
    constraints = declare({"steps": Interval(int, 1)})

    def __init__(self, steps: int = 16) -> None:
        self.steps = steps

    def min_budget(self, game: Game) -> int:
        return int(game.n_players) + 2

    budget_param = "steps"

    def reads_player_count_at(self, budget: Any) -> str | None:
        # steps = (budget - 2) // players: in one padded game a shorter text got the longest
        # text's steps, not its own (BagOfEmbeddings, budget 48: 5 steps instead of 46 for a
        # 1-word text, credits 0.05 off its own; aud49x). Without a budget the steps are fixed.
        if isinstance(budget, numbers.Integral) and not isinstance(budget, bool) and int(budget) >= 1:
            return "with a budget its quadrature steps are (budget - 2) over the players"
        return None

    def budget_sets(self, game: Game, budget: int) -> int | None:
        return self._steps(game, budget)

    def _steps(self, game: Game, budget: int | None) -> int:
        if budget is None:
            return int(self.steps)
        n = max(int(game.n_players), 1)
        steps = (int(budget) - 2) // n
        if steps < 1:
            raise BudgetError(
                f"integrated_hessians: budget={budget} is below the minimum {n + 2} for {n} "
                "players (one Hessian row per player and node, plus v(all) and v(none))."
            )
        return steps

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        fg = feature_game(game, self.name)
        steps = self._steps(fg, budget)
        nodes, weights = log_quadrature(steps)
        n = fg.n_players
        # Gamma = sum_l w_l [diag(grad_l) + g_l H_l]   (batch x targets x n x n), summed by
        # the game as the Hessian rows come: the per-node Hessians are never held (steps x less)
        _, grad_sum, gamma = fg.weighted_grad_hessian(nodes[:, None].expand(-1, n), weights,
                                                      nodes * weights)
        d = torch.arange(n)
        gamma[..., d, d] += grad_sum
        phi = gamma.sum(-1)
        gap = fg.efficiency_gap(phi)
        pair = gamma + gamma.transpose(-1, -2)
        pair[..., d, d] = phi
        return fg.attribution(phi, self.name, {**self.get_params(), "steps": int(steps)}, gap=gap, extra={
            "interactions": pair.numpy(),
            "shap_interaction_values": gamma.numpy(),
            "diagonal": "integrated_gradients",
            "steps": int(steps),
        })

    budget_rule = "steps * players + 2 (steps=16)"

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """``steps * players`` Hessian rows (one double backward each) plus ``v(none)``.

        The bytes count the game's results (``batch x steps x targets`` values, the weighted
        sums of the gradients, ``batch x targets x players``, and of the Hessians, ``batch x
        targets x players x players``, which is ``gamma``) and ``pair``. Without the Hessians
        the estimate was the masks alone: 96 players, 16 inputs, 3 targets, steps=16 ran under
        ``max_memory="20MB"`` and grew the process by 131 MB (aud50i). The game sums the
        Hessians over the nodes as they come (:meth:`~tribute.games.features.FeatureGame.
        weighted_grad_hessian`), so they no longer grow with ``steps`` (aud51g).
        """
        n = int(game.n_players)
        steps = self._steps(game, budget) if budget is None or budget >= n + 2 else 1
        b, t = int(game.n_samples), int(game.n_targets)
        # the per-node values, the weighted sums of the gradients and of the Hessians (gamma,
        # filled in place) and pair; the per-node Hessians are summed as they come (aud51g:
        # held at once they were steps x more, 2 * steps x the Hessian sum with the product)
        design = b * steps * t * 8 + b * t * n * 8 + 2 * b * t * n * n * 8
        return coalition_cost(game, steps * n + 2, grads=True, design=design,
                              note=f"{steps:,} nodes x {n:,} Hessian rows "
                                   f"({math.prod((steps, n)):,} double-backward rows) and "
                                   f"{math.prod((steps, n, n)):,} Hessian entries per input and target")
