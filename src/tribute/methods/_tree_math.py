"""Shapley values of a tree ensemble, leaf by leaf, as product games.

Both TreeSHAP value functions are sums over leaves of *product games*. For a leaf ``l`` with
value ``u_l`` whose root-to-leaf path splits on the players ``P_l`` (``d = |P_l|``; several
splits on one player merge into one factor):

* path-dependent (Lundberg et al. 2020, Algorithm 2's value function):
  ``v_l(S) = u_l * prod_{k in P_l} (o_k if k in S else z_k)`` where ``o_k`` is 1 when the input
  satisfies every split on ``k`` along the path and ``z_k`` is the product of the cover ratios
  (fraction of training weight going the path's way) of those splits;
* interventional, one background row ``b`` (Lundberg et al. 2020; Janzing et al. 2020):
  the same with ``z_k = o_k(b)`` in ``{0, 1}``; averaging over the background set averages the
  Shapley values.

The Shapley value of player ``j`` in a product game (players outside ``P_l`` are null) is

    phi_j = (o_j - z_j) * sum_s w(s, d) [t^s] prod_{k != j} (z_k + o_k t),
    w(s, d) = s! (d - s - 1)! / d! = int_0^1 u^s (1 - u)^(d-1-s) du,

so ``phi_j = (o_j - z_j) int_0^1 prod_{k != j} (z_k (1-u) + o_k u) du``: a polynomial of degree
``d - 1`` in ``u``, integrated exactly by Gauss–Legendre quadrature with ``ceil(d/2)`` nodes
(the quadrature form of Linear TreeSHAP, Yu et al. 2022). With ``o_k`` in {0, 1} the game of a leaf depends on the input only through the
bit pattern ``o``, so for short paths every leaf gets a table of all ``2^d`` patterns once per
model and each input then costs one table look-up per leaf (the idea of Fast TreeSHAP v2, Yang
2021, here derived from the product form); long paths are evaluated per input with the same
quadrature. The Shapley interaction index (shap's interaction values) drops two factors and
halves the integral (``w2(s, d) = s! (d - s - 2)! / (2 (d - 1)!)``).

For a binary background row the product game is an indicator: it is 1 iff every player where
only the input satisfies its splits (set ``A``) is present and every player where only the
background satisfies them (set ``C``) is absent; its Shapley values are
``(|A|-1)! |C|! / (|A|+|C|)!`` on ``A`` and ``-|A|! (|C|-1)! / (|A|+|C|)!`` on ``C`` — a
*universal* table over (input pattern, background pattern), so averaging a leaf over a
background set is a histogram of background patterns times that table.
"""

from __future__ import annotations

from math import factorial

import numpy as np

__all__ = [
    "indicator_interaction_table",
    "indicator_shapley_table",
    "leafwise_shapley",
    "patterns",
    "product_game_interactions",
    "product_game_shapley",
]


def patterns(d: int) -> np.ndarray:
    """All ``2^d`` bit patterns as a ``2^d x d`` float array (bit ``k`` of row ``p``)."""
    p = np.arange(2**d)[:, None]
    return ((p >> np.arange(d)[None, :]) & 1).astype(np.float64)


def _gauss(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on ``[0, 1]``."""
    x, w = np.polynomial.legendre.leggauss(max(n_nodes, 1))
    return (x + 1.0) / 2.0, w / 2.0


def _factors(z: np.ndarray, o: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``z_k (1 - u_q) + o_k u_q``: ``... x Q x d`` (``z`` and ``o`` broadcast).

    ``z`` usually has fewer leading entries than ``o`` (one per leaf, shared by every input), so
    ``z (1 - u)`` is formed at ``z``'s size and binary ``o`` then selects per element.
    """
    zu = np.asarray(z)[..., None, :] * (1.0 - u)[:, None]
    o = np.asarray(o)
    if o.dtype == np.bool_ or np.all((o == 0) | (o == 1)):
        return np.where(o[..., None, :].astype(bool), zu + u[:, None], zu)
    return np.asarray(zu + o[..., None, :] * u[:, None])


def _without(f: np.ndarray, axis_prod: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``prod / f`` elementwise, 0 where ``f == 0``.

    A factor is 0 only where ``z_k = o_k = 0`` (the caller's prefactor ``o_k - z_k`` is then 0
    too); checking ``z`` (one entry per leaf) avoids a guarded division in the common case.
    """
    if not np.any(z == 0):
        return np.asarray(axis_prod / f)
    return np.asarray(np.divide(axis_prod, f, out=np.zeros(np.broadcast_shapes(f.shape, axis_prod.shape)),
                                where=f != 0))


def product_game_shapley(z: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Shapley values of ``v(S) = prod_k (o_k if k in S else z_k)``.

    With ``w(s, d) = int_0^1 u^s (1-u)^(d-1-s) du`` the coalition-size sum becomes one integral,
    ``phi_j = (o_j - z_j) int_0^1 prod_{k != j} (z_k (1-u) + o_k u) du``, whose integrand is a
    polynomial of degree ``d - 1``: Gauss–Legendre with ``ceil(d/2)`` nodes is exact (the
    quadrature form of Linear TreeSHAP, Yu et al. 2022).

    Args:
        z: ``... x d`` removal factors in ``[0, 1]``.
        o: ``... x d`` presence factors in ``{0, 1}`` (broadcast with ``z``).

    Returns:
        ``... x d`` Shapley values (per unit leaf value).
    """
    z = np.asarray(z, dtype=np.float64)
    o = np.asarray(o)
    d = z.shape[-1]
    shape = np.broadcast_shapes(z.shape, o.shape)
    if d == 0:
        return np.zeros(shape)
    u, w = _gauss((d + 1) // 2)
    f = _factors(z, o, u)  # ... x Q x d
    full = f.prod(-1, keepdims=True)
    return np.asarray((o - z) * np.einsum("...qd,q->...d", _without(f, full, z), w))


def leafwise_shapley(z: np.ndarray, o: np.ndarray) -> np.ndarray:
    """:func:`product_game_shapley` for many inputs per leaf, as batched matrix products.

    With binary ``o`` every factor takes one of two values per (leaf, slot, node), so
    ``log F = sum_k log f0_k + o @ (log f1 - log f0)`` is one matrix product per leaf and
    ``int F / f_j`` is ``F @ (w / f1)`` or ``F @ (w / f0)`` by ``o_j`` — BLAS instead of
    broadcasting over inputs x nodes x slots. Removal factors are floored at ``1e-300`` (a
    zero-cover child): such a factor contributes ``exp(-690)``, i.e. 0 to float precision,
    as it should.

    Args:
        z: ``L x d`` removal factors (one row per leaf).
        o: ``N x L x d`` binary presence factors (any bool/0-1 dtype).

    Returns:
        ``N x L x d`` Shapley values per unit leaf value.
    """
    z = np.maximum(np.asarray(z, dtype=np.float64), 1e-300)
    d = z.shape[-1]
    ob = np.asarray(o).astype(np.float64)
    if d == 0:
        return np.zeros(ob.shape)
    u, w = _gauss((d + 1) // 2)
    f0 = z[:, None, :] * (1.0 - u)[None, :, None]  # L x Q x d
    f1 = f0 + u[None, :, None]
    lf0, lf1 = np.log(f0), np.log(f1)
    base = lf0.sum(-1)  # L x Q
    delta = np.swapaxes(lf1 - lf0, 1, 2)  # L x d x Q
    # per leaf: (N x d) @ (d x Q)
    obl = np.ascontiguousarray(np.moveaxis(ob, 1, 0))  # L x N x d
    big_f = np.exp(base[:, None, :] + obl @ delta)  # L x N x Q
    w1 = np.swapaxes(w[None, :, None] / f1, 1, 2)  # L x d x Q
    w0 = np.swapaxes(w[None, :, None] / f0, 1, 2)
    i1 = big_f @ np.swapaxes(w1, 1, 2)  # L x N x d
    i0 = big_f @ np.swapaxes(w0, 1, 2)
    integral = np.where(obl > 0.5, i1, i0)
    out = (obl - z[:, None, :]) * integral
    return np.moveaxis(out, 0, 1)


def product_game_interactions(z: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Shapley interaction values (shap's convention) of the product game.

    Off-diagonal ``[i, j]`` is half the Shapley interaction index (Grabisch & Roubens 1999;
    Lundberg et al. 2020): ``(o_i - z_i)(o_j - z_j)/2 int_0^1 prod_{k != i,j} (z_k (1-u) + o_k u)
    du`` (exact with ``ceil((d-1)/2)`` Gauss–Legendre nodes); the diagonal is the main effect
    ``phi_i - sum_{j != i} phi_ij`` so that each row sums to the Shapley value.

    Returns:
        ``... x d x d``.
    """
    z = np.asarray(z, dtype=np.float64)
    o = np.asarray(o)
    d = z.shape[-1]
    shape = np.broadcast_shapes(z.shape, o.shape)
    out = np.zeros((*shape, d))
    if d == 0:
        return out
    phi = product_game_shapley(z, o)
    if d >= 2:
        u, w = _gauss(d // 2)
        f = _factors(z, o, u)  # ... x Q x d
        full = f.prod(-1)[..., None, None]
        pair = f[..., :, None] * f[..., None, :]  # ... x Q x d x d
        integral = np.einsum("...qij,q->...ij", _without(pair, full, z), w)
        dz = np.broadcast_to(o - z, shape)
        out = 0.5 * dz[..., :, None] * dz[..., None, :] * integral
    idx = np.arange(d)
    out[..., idx, idx] = 0.0
    out[..., idx, idx] = phi - out.sum(-1)
    return out


def indicator_shapley_table(d: int) -> np.ndarray:
    """Shapley values of the indicator game for every (input, background) pattern pair.

    Returns:
        ``2^d (input pattern) x 2^d (background pattern) x d``.
    """
    pat = patterns(d).astype(bool)
    ox = pat[:, None, :]
    ob = pat[None, :, :]
    a_set = ox & ~ob
    c_set = ob & ~ox
    dead = (~ox & ~ob).any(-1)
    a = a_set.sum(-1)
    c = c_set.sum(-1)
    fact = np.array([factorial(i) for i in range(d + 2)], dtype=np.float64)
    n = np.maximum(a + c, 1)
    plus = np.where(a > 0, fact[np.maximum(a - 1, 0)] * fact[c] / fact[n], 0.0)
    minus = np.where(c > 0, fact[a] * fact[np.maximum(c - 1, 0)] / fact[n], 0.0)
    out = a_set * plus[..., None] - c_set * minus[..., None]
    out[dead] = 0.0
    return np.asarray(out)


def indicator_interaction_table(d: int) -> np.ndarray:
    """Interaction values (shap's convention) of the indicator game for every pattern pair.

    Returns:
        ``2^d x 2^d x d x d``.
    """
    pat = patterns(d).astype(bool)
    ox = pat[:, None, :]
    ob = pat[None, :, :]
    a_set = (ox & ~ob).astype(np.float64)
    c_set = (ob & ~ox).astype(np.float64)
    dead = (~ox & ~ob).any(-1)
    a = a_set.sum(-1).astype(int)
    c = c_set.sum(-1).astype(int)
    fact = np.array([factorial(i) for i in range(d + 2)], dtype=np.float64)
    m = np.maximum(a + c - 1, 0)

    def f(k: np.ndarray) -> np.ndarray:
        return np.where(k >= 0, fact[np.maximum(k, 0)], 0.0)

    aa = np.where(a >= 2, f(a - 2) * f(c) / fact[m], 0.0) / 2.0
    ac = np.where((a >= 1) & (c >= 1), -f(a - 1) * f(c - 1) / fact[m], 0.0) / 2.0
    cc = np.where(c >= 2, f(a) * f(c - 2) / fact[m], 0.0) / 2.0
    out = (a_set[..., :, None] * a_set[..., None, :] * aa[..., None, None]
           + (a_set[..., :, None] * c_set[..., None, :] + c_set[..., :, None] * a_set[..., None, :])
           * ac[..., None, None]
           + c_set[..., :, None] * c_set[..., None, :] * cc[..., None, None])
    idx = np.arange(d)
    out[..., idx, idx] = 0.0
    phi = indicator_shapley_table(d)
    out[..., idx, idx] = phi - out.sum(-1)
    out[dead] = 0.0
    return np.asarray(out)
