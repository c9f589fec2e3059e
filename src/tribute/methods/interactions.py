"""Exact interaction and joint credits by enumerating all ``2^n`` coalitions.

* :class:`ShapleyInteractions` — the pairwise Shapley interaction index of Grabisch & Roubens
  (1999): how much more (or less) two players are worth together than apart, averaged with
  Shapley weights over the coalitions of the other players.
* :class:`JointShapley` — joint Shapley values of Harris, Pymar & Rowat (2022): the average
  contribution of every *set* of at most ``order`` players, satisfying a joint efficiency
  axiom.

Both evaluate the value table once (``2^n`` evaluations per input) and work on it with
vectorised index arithmetic (loops run over players or player sets, never over coalitions).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from ..attribution import Attribution
from ..errors import InputError
from ..games.base import Game
from ..params import Interval, declare
from .base import Cost, Method, Tags, coalition_cost, register
from .exact import value_table

__all__ = ["JointShapley", "ShapleyInteractions", "interactions_from_table", "joint_shapley_from_table",
           "joint_weights", "shap_convention", "shapley_taylor_from_table"]


def _sizes(n: int) -> torch.Tensor:
    idx = torch.arange(2**n)
    return ((idx[:, None] >> torch.arange(n)) & 1).sum(1)


def _fix(v: torch.Tensor, n: int, players: tuple[int, ...], present: tuple[int, ...]) -> torch.Tensor:
    """Values of ``S + (the present players)`` for every coalition ``S`` of the other players.

    ``v`` is ``... x 2^n`` (bitmask order). It is viewed as ``... x 2^a x 2 x 2^b x 2 x ...``
    (one axis of size 2 per player in ``players``, blocks of the other bits in between), and
    those axes are fixed: a strided view, no copy, ``... x 2^(n - len(players))`` values in
    the same order for every call with the same ``players``.
    """
    order = sorted(zip(players, present), reverse=True)
    shape: list[int] = []
    index: list[slice | int] = [slice(None)] * (v.ndim - 1)
    top = n
    for p, on in order:
        shape += [2 ** (top - 1 - p), 2]
        index += [slice(None), on]
        top = p
    shape.append(2**top)
    index.append(slice(None))
    return v.reshape(*v.shape[:-1], *shape)[tuple(index)].flatten(v.ndim - 1)


def _table(game: Game) -> torch.Tensor:
    """``B x T x 2^n`` value table indexed by coalition bitmask."""
    return value_table(game)


# ------------------------------------------------------------------- interaction index
def _shapley(v: torch.Tensor, n: int) -> torch.Tensor:
    """Shapley values from a full table (same as :func:`shapley_from_table`, on hypercube views)."""
    w = torch.tensor([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n)
                      for s in range(n)], dtype=torch.float64)
    sizes = _sizes(n)
    out = torch.empty(*v.shape[:-1], n, dtype=torch.float64)
    for i in range(n):
        gain = _fix(v, n, (i,), (1,)) - _fix(v, n, (i,), (0,))
        out[..., i] = gain @ w[_fix(sizes, n, (i,), (0,))]
    return out


def interactions_from_table(v: torch.Tensor, n: int) -> torch.Tensor:
    """Pairwise Shapley interaction index from a full value table.

    Args:
        v: ``... x 2^n`` values indexed by coalition bitmask.
        n: number of players.

    Returns:
        ``... x n x n`` symmetric matrix with, off the diagonal,
        ``I_ij = sum_{S in N minus {i,j}} |S|!(n-|S|-2)!/(n-1)! [v(S+ij) - v(S+i) - v(S+j) + v(S)]``
        and the Shapley values on the diagonal.
    """
    out = torch.zeros(*v.shape[:-1], n, n, dtype=torch.float64)
    phi = _shapley(v, n)
    if n >= 2:
        w = torch.tensor([math.factorial(s) * math.factorial(n - s - 2) / math.factorial(n - 1)
                          for s in range(n - 1)], dtype=torch.float64)
        sizes = _sizes(n)
        for i, j in itertools.combinations(range(n), 2):
            pair = (i, j)
            delta = (_fix(v, n, pair, (1, 1)) - _fix(v, n, pair, (1, 0))
                     - _fix(v, n, pair, (0, 1)) + _fix(v, n, pair, (0, 0)))
            val = delta @ w[_fix(sizes, n, pair, (0, 0))]
            out[..., i, j] = val
            out[..., j, i] = val
    d = torch.arange(n)
    out[..., d, d] = phi
    return out


def shapley_taylor_from_table(v: torch.Tensor, n: int) -> torch.Tensor:
    """Order-2 Shapley-Taylor interaction index (Sundararajan, Dhamdhere & Agarwal 2020), in the
    convention of ``shap.explainers.Exact(...)(x, interactions=True)``.

    Returns ``... x n x n``: diagonal ``v({i}) - v(empty)``; off-diagonal half of
    ``ST_ij = 2/n sum_{S in N minus {i,j}} [v(S+ij) - v(S+i) - v(S+j) + v(S)] / C(n-1, |S|)``.
    The whole matrix sums to ``v(N) - v(empty)``.
    """
    out = torch.zeros(*v.shape[:-1], n, n, dtype=torch.float64)
    sizes = _sizes(n)
    for i in range(n):
        out[..., i, i] = v[..., 1 << i] - v[..., 0]
    if n >= 2:
        w = torch.tensor([2.0 / n / math.comb(n - 1, s) for s in range(n - 1)], dtype=torch.float64)
        for i, j in itertools.combinations(range(n), 2):
            pair = (i, j)
            delta = (_fix(v, n, pair, (1, 1)) - _fix(v, n, pair, (1, 0))
                     - _fix(v, n, pair, (0, 1)) + _fix(v, n, pair, (0, 0)))
            val = delta @ w[_fix(sizes, n, pair, (0, 0))] / 2
            out[..., i, j] = val
            out[..., j, i] = val
    return out


def shap_convention(inter: torch.Tensor) -> torch.Tensor:
    """Rewrite an interaction matrix (Shapley values on the diagonal) in the shap package's
    ``shap_interaction_values`` convention: off-diagonal ``I_ij / 2`` (the pair's interaction
    split between its two players) and diagonal main effects ``phi_i - sum_{j != i} I_ij / 2``,
    so that every row sums to ``phi_i`` and the whole matrix to ``v(N) - v(empty)``."""
    n = inter.shape[-1]
    d = torch.arange(n)
    phi = inter[..., d, d]
    half = inter / 2
    half[..., d, d] = 0.0
    out = half.clone()
    out[..., d, d] = phi - half.sum(-1)
    return out


@register
class ShapleyInteractions(Method):
    """Exact pairwise Shapley interaction index (Grabisch & Roubens 1999) and Shapley values.

    Enumerates all ``2^n`` coalitions (``2^n`` evaluations per input, ``n <= 14``). For a pair
    ``i != j``::

        I_ij = sum_{S in N minus {i,j}} |S|! (n-|S|-2)! / (n-1)!
               * [v(S+i+j) - v(S+i) - v(S+j) + v(S)]

    ``I_ij > 0``: the two players are worth more together than the sum of their separate
    effects (synergy); ``I_ij < 0``: redundancy. Players that never interact get ``0``, a dummy
    player a zero row and column, and ``I`` is symmetric. For ``v = f(x)`` with ``f`` a
    polynomial, ``I_ij`` of the term ``c x_i x_j`` is ``c (x_i - b_i)(x_j - b_j)``.

    ``values`` are the exact Shapley values. ``extra["interactions"]`` is the
    ``B x T x n x n`` float64 numpy matrix with ``I_ij`` off the diagonal and the **Shapley
    values on the diagonal**; ``extra["shap_interaction_values"]`` is the same information in the
    shap package's convention (off-diagonal ``I_ij / 2``, diagonal main effect
    ``phi_i - sum_{j != i} I_ij / 2``: every row sums to ``phi_i``, the matrix to
    ``v(N) - v(empty)``). Both are in flat player order (``B x T x n x n`` even for a single
    target). ``extra["shapley_taylor"]`` is the order-2 Shapley-Taylor index (Sundararajan et
    al. 2020) in the convention of ``shap.explainers.Exact(...)(x, interactions=True)``
    (diagonal ``v({i}) - v(empty)``, off-diagonal half the pair's index; sums to
    ``v(N) - v(empty)``) — a different index from the one above.

    Reference: Grabisch & Roubens (1999), "An axiomatic approach to the concept of interaction
    among players in cooperative games"; Lundberg et al. (2020), "From local explanations to
    global understanding with explainable AI for trees" (the SHAP interaction values convention);
    Sundararajan, Dhamdhere & Agarwal (2020), "The Shapley Taylor Interaction Index".
    """

    name = "shapley_interactions"
    tags = Tags(family="shapley", exact=True, has_gap=True, max_players=14)
    paper = "Grabisch & Roubens (1999), An axiomatic approach to the concept of interaction among players"

    def min_budget(self, game: Game) -> int:
        return int(2**game.n_players)

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        n = game.n_players
        table = _table(game)
        inter = interactions_from_table(table, n)
        d = torch.arange(n)
        phi = inter[..., d, d].clone()
        gap = phi.sum(-1) - (table[..., -1] - table[..., 0])
        return game.attribution(phi, self.name, self.get_params(), gap=gap, extra={
            "interactions": inter.numpy(),
            "shap_interaction_values": shap_convention(inter).numpy(),
            "shapley_taylor": shapley_taylor_from_table(table, n).numpy(),
            "diagonal": "shapley_values",
        })

    budget_rule = "2^n (all coalitions)"

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """The ``2^n`` table plus ``batch x targets x n x n`` interaction matrices."""
        n = int(game.n_players)
        b, t = int(game.n_samples), int(game.n_targets)
        return coalition_cost(game, 2**n, design=2 * b * 2**n * t * 8 + 3 * b * t * n * n * 8,
                              flops=float(b * t * 2**n * n * n),
                              note=f"the 2^{n}-coalition table and {n:,}^2 interaction matrices")


# -------------------------------------------------------------------- joint Shapley
def joint_weights(n: int, k: int) -> np.ndarray:
    """Weights ``q_0 .. q_{n-1}`` of joint Shapley values of order ``k`` (Harris et al. 2022).

    ``q_s`` is the probability, in the random process where sets of 1..k not yet present
    players join one at a time (each admissible set equally likely), that the players present
    just before a given set ``T`` joins are exactly a given ``S`` (``|S| = s``) and that ``T``
    joins next. Recursively::

        q_0 = 1 / sum_{t=1}^{k} C(n, t)
        q_r = sum_{s=max(r-k,0)}^{r-1} C(r, s) q_s  /  sum_{t=1}^{min(k, n-r)} C(n-r, t)

    With ``k = 1`` this is the Shapley weight ``r! (n-r-1)! / n!``.
    """
    if k < 1:
        raise InputError(f"order={k} must be >= 1.")
    q = np.zeros(n)
    q[0] = 1.0 / sum(math.comb(n, t) for t in range(1, min(k, n) + 1))
    for r in range(1, n):
        reach = sum(math.comb(r, s) * q[s] for s in range(max(r - k, 0), r))
        q[r] = reach / sum(math.comb(n - r, t) for t in range(1, min(k, n - r) + 1))
    return q


def joint_shapley_from_table(v: torch.Tensor, n: int, k: int,
                             ) -> dict[tuple[int, ...], torch.Tensor]:
    """Joint Shapley values of every player set of size 1..k from a full value table.

    ``J_T = sum_{S in N minus T} q_{|S|} [v(S + T) - v(S)]`` (``q`` from :func:`joint_weights`).

    Returns:
        ``{T (sorted tuple of players): ... values}``.
    """
    q = torch.from_numpy(joint_weights(n, k))
    sizes = _sizes(n)
    out: dict[tuple[int, ...], torch.Tensor] = {}
    for size in range(1, min(k, n) + 1):
        for players in itertools.combinations(range(n), size):
            gain = _fix(v, n, players, (1,) * size) - _fix(v, n, players, (0,) * size)
            out[players] = gain @ q[_fix(sizes, n, players, (0,) * size)]
    return out


@register
class JointShapley(Method):
    """Joint Shapley values (Harris, Pymar & Rowat 2022): credit for every set of ``<= order`` players.

    Extends Shapley's axioms from single players to sets ``T`` with ``1 <= |T| <= order``::

        J_T = sum_{S in N minus T} q_{|S|} [v(S + T) - v(S)]

    where ``q_s`` is the probability that, in a random sequence in which player sets of size
    1..order join one at a time, exactly the players ``S`` are present just before ``T`` joins
    (see :func:`joint_weights`). ``J_T`` is the average contribution of the *set* ``T`` (not an
    interaction index: a set of two independent, additive players gets credit for both).
    The paper proves joint efficiency::

        sum_{T: 1 <= |T| <= order} J_T = v(N) - v(empty)

    (not ``sum_i J_{i} = ...``: the singletons share the total with the larger sets, so
    ``values`` alone do not add up; ``gap`` reports the joint efficiency gap, which is 0 up to
    rounding). With ``order=1`` these are the Shapley values.

    Enumerates all ``2^n`` coalitions (``n <= 12``). ``values`` are the singletons' joint
    Shapley values ``J_{i}``; ``extra["joint"]`` maps every set (a sorted tuple of player
    indices) to its ``B x T`` values (float64 numpy, flat); for ``order >= 2``
    ``extra["joint_pairs"]`` is the ``B x T x n x n`` matrix with ``J_{ij}`` off the diagonal
    and ``J_{i}`` on it.

    Args:
        order: largest set size credited (``k`` in the paper). default=2.

    Reference: Harris, Pymar & Rowat (2022), "Joint Shapley values: a measure of joint feature
    importance" (ICLR).
    """

    name = "joint_shapley"
    tags = Tags(family="shapley", exact=True, has_gap=True, max_players=12)
    paper = "Harris, Pymar & Rowat (2022), Joint Shapley values: a measure of joint feature importance"

    constraints = declare({"order": Interval(int, 1)})

    def __init__(self, order: int = 2) -> None:
        self.order = order

    def reads_player_count(self) -> str | None:
        return ("a player's value shares the total with the sets of up to order players, and "
                "their number grows with the players") if self.order >= 2 else None

    def min_budget(self, game: Game) -> int:
        return int(2**game.n_players)

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        n = game.n_players
        table = _table(game)
        joint = joint_shapley_from_table(table, n, self.order)
        phi = torch.stack([joint[(i,)] for i in range(n)], dim=-1)
        total = torch.stack(list(joint.values()), dim=-1).sum(-1)
        gap = total - (table[..., -1] - table[..., 0])
        extra: dict[str, object] = {"joint": {t: val.numpy() for t, val in joint.items()},
                                    "order": self.order}
        if self.order >= 2:
            pairs = torch.zeros(*table.shape[:-1], n, n, dtype=torch.float64)
            for (i, j), val in ((t, val) for t, val in joint.items() if len(t) == 2):
                pairs[..., i, j] = val
                pairs[..., j, i] = val
            d = torch.arange(n)
            pairs[..., d, d] = phi
            extra["joint_pairs"] = pairs.numpy()
        return game.attribution(phi, self.name, self.get_params(), gap=gap, extra=extra)

    budget_rule = "2^n (all coalitions)"

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """The ``2^n`` table plus the joint credits of every coalition up to ``order``."""
        n = int(game.n_players)
        b, t = int(game.n_samples), int(game.n_targets)
        return coalition_cost(game, 2**n, design=4 * b * 2**n * t * 8,
                              flops=float(b * t * 4**n if n <= 20 else 2.0**60),
                              note=f"the 2^{n}-coalition table and the joint credits")
