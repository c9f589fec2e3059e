"""Compiled TreeSHAP kernels: one depth-first walk per (input, tree), no per-leaf tables.

These are the loops of :mod:`tribute.methods._tree_math` written out per input and compiled
with numba (an optional dependency, ``pip install tribute[trees]``); without numba,
:mod:`tribute.methods.tree_shap` uses the vectorised NumPy path, and the tests check that both
agree.

* :func:`path_dependent` walks every root-to-leaf path of a tree for one input (once per
  distinct pattern of split decisions: inputs that go the same way at every split of a tree get
  the same credits from it), keeping for each
  player on the path the product of its split decisions ``o_k`` (in {0, 1}) and of its cover
  ratios ``z_k`` (several splits on one player merge into one factor, as in the product form of
  :mod:`._tree_math`); at a leaf it adds the product game's Shapley values
  ``(o_j - z_j) int_0^1 prod_{k != j} (z_k (1-u) + o_k u) du`` by Gauss–Legendre quadrature
  with ``ceil(d/2)`` nodes (exact; Yu et al. 2022's quadrature form of Linear TreeSHAP), the
  product without ``j`` taken from prefix and suffix products (no division, so zero-cover
  children are safe). Cost per input and tree: ``O(L d^2 / 2)`` for ``L`` leaves with ``d``
  players on their paths — the cost of Lundberg et al. (2020)'s Algorithm 2.
* :func:`interventional` walks one tree for one (input, background row) pair and follows only
  the paths that one of the two rows can reach (Lundberg et al. 2020, interventional TreeSHAP):
  where both rows go the same way nothing depends on the coalition; where they part, the
  player's side is fixed for the rest of the path (``A``: the input's value, ``C``: the
  background's). A reached leaf is the indicator game of :mod:`._tree_math` with Shapley values
  ``(|A|-1)! |C|! / (|A|+|C|)!`` on ``A`` and ``-|A|! (|C|-1)! / (|A|+|C|)!`` on ``C``.

Trees arrive flattened into one node table (global node ids; ``left == -1`` at leaves; ``col``
indexes the precomputed go-left decisions of internal nodes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["available", "gauss_tables", "interventional", "path_dependent", "predict"]

_njit: Any
try:  # optional: the NumPy path of tree_shap runs without it
    from numba import njit as _njit
except ImportError:  # pragma: no cover - exercised where numba is absent
    _njit = None


def available() -> bool:
    """True when numba imports (the compiled kernels can be used)."""
    return _njit is not None


if _njit is not None:
    @_njit(cache=True, nogil=True)  # type: ignore[untyped-decorator]
    def _units(d: int, zk: Any, ok: Any, gu: Any, gw: Any, pre: Any, acc: Any) -> None:
        """``acc[k] = (o_k - z_k) int_0^1 prod_{j != k} (z_j (1-u) + o_j u) du``."""
        for k in range(d):
            acc[k] = 0.0
        for q in range((d + 1) // 2):
            u = gu[d - 1, q]
            pre[0] = 1.0
            for k in range(d):
                pre[k + 1] = pre[k] * (zk[k] * (1.0 - u) + ok[k] * u)
            suf = gw[d - 1, q]
            for k in range(d - 1, -1, -1):
                acc[k] += pre[k] * suf
                suf *= zk[k] * (1.0 - u) + ok[k] * u
        for k in range(d):
            acc[k] *= ok[k] - zk[k]

    @_njit(cache=True, nogil=True)  # type: ignore[untyped-decorator]
    def _pd(go: Any, roots: Any, col_start: Any, left: Any, right: Any, col: Any, player: Any,
            rl: Any, rr: Any, val: Any, live: Any, gu: Any, gw: Any, n_players: int,
            out: Any) -> None:
        n_rows = go.shape[0]
        nc = val.shape[1]
        dmax = gu.shape[0]
        zp = np.ones(n_players)
        op = np.ones(n_players)
        cnt = np.zeros(n_players, np.int64)
        plist = np.zeros(dmax + 1, np.int64)
        # undo log: player, previous z, previous o
        lp = np.zeros(dmax + 1, np.int64)
        lz = np.zeros(dmax + 1)
        lo = np.zeros(dmax + 1)
        # stack frames: node, parent (-1 at the root), went left, log length, path length
        s_node = np.zeros(dmax + 3, np.int64)
        s_par = np.zeros(dmax + 3, np.int64)
        s_left = np.zeros(dmax + 3, np.bool_)
        s_log = np.zeros(dmax + 3, np.int64)
        s_pl = np.zeros(dmax + 3, np.int64)
        pre = np.zeros(dmax + 1)
        acc = np.zeros(dmax)
        zk = np.zeros(dmax)
        ok = np.zeros(dmax)
        # one tree's credits for one input, and the players it touched
        tmp = np.zeros((n_players, nc))
        touched = np.zeros(n_players, np.bool_)
        tlist = np.zeros(n_players, np.int64)
        sig = np.zeros(n_rows, np.int64)
        for t in range(roots.shape[0]):
            # inputs that take the same way at every split of this tree get the same credits
            # from it: walk the tree once per distinct pattern (trees with <= 63 splits)
            lo_c = col_start[t]
            n_int = col_start[t + 1] - lo_c
            if n_int <= 63:
                for n in range(n_rows):
                    key = 0
                    for i in range(n_int):
                        if go[n, lo_c + i]:
                            key |= 1 << i
                    sig[n] = key
                order = np.argsort(sig, kind="mergesort")
            else:
                for n in range(n_rows):
                    sig[n] = n
                order = np.arange(n_rows)
            g0 = 0
            while g0 < n_rows:
                n = order[g0]
                g1 = g0 + 1
                while g1 < n_rows and sig[order[g1]] == sig[n]:
                    g1 += 1
                n_touched = 0
                s_node[0] = roots[t]
                s_par[0] = -1
                s_log[0] = 0
                s_pl[0] = 0
                n_log = 0
                n_pl = 0
                top = 1
                while top > 0:
                    top -= 1
                    node = s_node[top]
                    par = s_par[top]
                    while n_log > s_log[top]:  # undo the siblings' changes
                        n_log -= 1
                        p = lp[n_log]
                        zp[p] = lz[n_log]
                        op[p] = lo[n_log]
                        cnt[p] -= 1
                    n_pl = s_pl[top]
                    if par >= 0:
                        p = player[par]
                        lp[n_log] = p
                        lz[n_log] = zp[p]
                        lo[n_log] = op[p]
                        n_log += 1
                        if cnt[p] == 0:
                            zp[p] = 1.0
                            op[p] = 1.0
                            plist[n_pl] = p
                            n_pl += 1
                        cnt[p] += 1
                        went = s_left[top]
                        zp[p] *= rl[par] if went else rr[par]
                        if go[n, col[par]] != went:
                            op[p] = 0.0
                    if left[node] >= 0:
                        s_node[top] = right[node]
                        s_par[top] = node
                        s_left[top] = False
                        s_log[top] = n_log
                        s_pl[top] = n_pl
                        s_node[top + 1] = left[node]
                        s_par[top + 1] = node
                        s_left[top + 1] = True
                        s_log[top + 1] = n_log
                        s_pl[top + 1] = n_pl
                        top += 2
                        continue
                    d = n_pl
                    if d == 0 or not live[node]:
                        continue
                    for k in range(d):
                        zk[k] = zp[plist[k]]
                        ok[k] = op[plist[k]]
                    _units(d, zk, ok, gu, gw, pre, acc)
                    for k in range(d):
                        unit = acc[k]
                        if unit != 0.0:
                            p = plist[k]
                            if not touched[p]:
                                touched[p] = True
                                tlist[n_touched] = p
                                n_touched += 1
                            for c in range(nc):
                                tmp[p, c] += unit * val[node, c]
                while n_log > 0:  # reset the per-player state for the next walk
                    n_log -= 1
                    p = lp[n_log]
                    zp[p] = lz[n_log]
                    op[p] = lo[n_log]
                    cnt[p] -= 1
                for j in range(g0, g1):
                    m = order[j]
                    for i in range(n_touched):
                        p = tlist[i]
                        for c in range(nc):
                            out[m, p, c] += tmp[p, c]
                for i in range(n_touched):
                    p = tlist[i]
                    touched[p] = False
                    for c in range(nc):
                        tmp[p, c] = 0.0
                g0 = g1

    @_njit(cache=True, nogil=True)  # type: ignore[untyped-decorator]
    def _predict(go: Any, roots: Any, left: Any, right: Any, col: Any, val: Any,
                 out: Any) -> None:
        for n in range(go.shape[0]):
            for t in range(roots.shape[0]):
                node = roots[t]
                while left[node] >= 0:
                    node = left[node] if go[n, col[node]] else right[node]
                for c in range(val.shape[1]):
                    out[n, c] += val[node, c]

    @_njit(cache=True, nogil=True)  # type: ignore[untyped-decorator]
    def _iv(gx: Any, gb: Any, per_sample: bool, bw: Any, roots: Any, left: Any, right: Any, col: Any,
            player: Any, val: Any, live: Any, fact: Any, n_players: int, out: Any) -> None:
        n_rows = gx.shape[0]
        n_bg = 1 if per_sample else gb.shape[0]
        n_nodes = left.shape[0]
        nc = val.shape[1]
        state = np.zeros(n_players, np.int64)  # 0 free, 1 input side (A), 2 background side (C)
        lp = np.zeros(n_nodes + 1, np.int64)
        s_node = np.zeros(n_nodes + 2, np.int64)
        s_p = np.zeros(n_nodes + 2, np.int64)
        s_side = np.zeros(n_nodes + 2, np.int64)
        s_log = np.zeros(n_nodes + 2, np.int64)
        for n in range(n_rows):
            for mi in range(n_bg):
                m = n if per_sample else mi
                for t in range(roots.shape[0]):
                    s_node[0] = roots[t]
                    s_p[0] = -1
                    s_side[0] = 0
                    s_log[0] = 0
                    top = 1
                    n_log = 0
                    a = 0
                    c = 0
                    while top > 0:
                        top -= 1
                        node = s_node[top]
                        while n_log > s_log[top]:
                            n_log -= 1
                            p = lp[n_log]
                            if state[p] == 1:
                                a -= 1
                            else:
                                c -= 1
                            state[p] = 0
                        side = s_side[top]
                        if side != 0:
                            p = s_p[top]
                            state[p] = side
                            lp[n_log] = p
                            n_log += 1
                            if side == 1:
                                a += 1
                            else:
                                c += 1
                        if left[node] < 0:
                            if a + c == 0 or not live[node]:
                                continue
                            plus = fact[a - 1] * fact[c] / fact[a + c] if a > 0 else 0.0
                            minus = fact[a] * fact[c - 1] / fact[a + c] if c > 0 else 0.0
                            for j in range(n_log):
                                p = lp[j]
                                wgt = (plus if state[p] == 1 else -minus) * bw[mi]
                                for k in range(nc):
                                    out[n, p, k] += wgt * val[node, k]
                            continue
                        cl = col[node]
                        xl = gx[n, cl]
                        bl = gb[m, cl]
                        if xl == bl:
                            s_node[top] = left[node] if xl else right[node]
                            s_p[top] = -1
                            s_side[top] = 0
                            s_log[top] = n_log
                            top += 1
                            continue
                        p = player[node]
                        cx = left[node] if xl else right[node]
                        cb = right[node] if xl else left[node]
                        st = state[p]
                        if st == 0:
                            s_node[top] = cb
                            s_p[top] = p
                            s_side[top] = 2
                            s_log[top] = n_log
                            s_node[top + 1] = cx
                            s_p[top + 1] = p
                            s_side[top + 1] = 1
                            s_log[top + 1] = n_log
                            top += 2
                        else:
                            s_node[top] = cx if st == 1 else cb
                            s_p[top] = -1
                            s_side[top] = 0
                            s_log[top] = n_log
                            top += 1
                    while n_log > 0:
                        n_log -= 1
                        state[lp[n_log]] = 0


def gauss_tables(d_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes/weights on ``[0, 1]`` with ``ceil(d/2)`` nodes for ``d = 1..d_max``
    (row ``d - 1``; unused entries 0)."""
    q_max = max((d_max + 1) // 2, 1)
    gu = np.zeros((max(d_max, 1), q_max))
    gw = np.zeros((max(d_max, 1), q_max))
    for d in range(1, d_max + 1):
        x, w = np.polynomial.legendre.leggauss((d + 1) // 2)
        gu[d - 1, : x.size] = (x + 1.0) / 2.0
        gw[d - 1, : w.size] = w / 2.0
    return gu, gw


def path_dependent(go: np.ndarray, roots: np.ndarray, col_start: np.ndarray, left: np.ndarray,
                   right: np.ndarray,
                   col: np.ndarray, player: np.ndarray, ratio_left: np.ndarray,
                   ratio_right: np.ndarray, val: np.ndarray, live: np.ndarray, d_max: int,
                   n_players: int) -> np.ndarray:
    """Path-dependent Shapley values ``rows x players x outputs`` (see the module docstring).

    Args:
        go: ``rows x internal nodes`` go-left decisions of each input.
        roots: global node id of each tree's root.
        col_start: ``trees + 1`` offsets: tree ``t``'s internal nodes are the columns
            ``col_start[t]..col_start[t+1]-1`` of ``go``.
        left, right: global child ids (``-1`` at leaves).
        col: column of ``go`` for each internal node.
        player: player of each internal node's split feature.
        ratio_left, ratio_right: cover fraction going to each child.
        val: ``nodes x outputs`` leaf values.
        live: leaves with a non-zero value.
        d_max: the longest root-to-leaf path (bounds the players on a path).
    """
    gu, gw = gauss_tables(d_max)
    out = np.zeros((go.shape[0], n_players, val.shape[1]))
    _pd(np.ascontiguousarray(go), roots, col_start, left, right, col, player, ratio_left,
        ratio_right, np.ascontiguousarray(val), live, gu, gw, n_players, out)
    return out


def interventional(go_x: np.ndarray, go_b: np.ndarray, per_sample: bool, weights: np.ndarray,
                   roots: np.ndarray,
                   left: np.ndarray, right: np.ndarray, col: np.ndarray, player: np.ndarray,
                   val: np.ndarray, live: np.ndarray, d_max: int, n_players: int) -> np.ndarray:
    """Interventional Shapley values averaged over the background rows (``go_b``) with
    ``weights`` (summing to 1), or against each input's own row of ``go_b`` with
    ``per_sample`` (``weights = [1]``): ``rows x players x outputs``."""
    from math import factorial

    fact = np.array([float(factorial(i)) for i in range(d_max + 2)])
    out = np.zeros((go_x.shape[0], n_players, val.shape[1]))
    _iv(np.ascontiguousarray(go_x), np.ascontiguousarray(go_b), per_sample,
        np.ascontiguousarray(weights, dtype=np.float64), roots, left,
            right, col, player, np.ascontiguousarray(val), live, fact, n_players, out)
    return out


def predict(go: np.ndarray, roots: np.ndarray, left: np.ndarray, right: np.ndarray,
            col: np.ndarray, val: np.ndarray) -> np.ndarray:
    """``rows x outputs``: the sum of the leaves each input reaches (without the offset)."""
    out = np.zeros((go.shape[0], val.shape[1]))
    _predict(np.ascontiguousarray(go), roots, left, right, col, np.ascontiguousarray(val), out)
    return out
