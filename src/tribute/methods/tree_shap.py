"""Exact Shapley values of tree ensembles: ``tree_shap``.

Lundberg, Erion, Chen et al. (2020), *From local explanations to global understanding with
explainable AI for trees*, Nature Machine Intelligence 2:56–67 (TreeSHAP: path-dependent and
interventional Shapley values, Shapley interaction values), with the pattern-table idea of
Yang (2021), *Fast TreeSHAP*, derived here from the product form of each leaf's game (see
:mod:`tribute.methods._tree_math`).

Two value functions (``feature_perturbation``):

* ``"tree_path_dependent"`` — ``v(S) = E[f(x) | x_S]`` estimated from the trees' own cover
  (training weight per node); needs no baseline and ignores the game's baseline. Equals
  ``shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")`` and XGBoost's
  ``pred_contribs`` / LightGBM's ``pred_contrib`` (CatBoost's own "Regular" ShapValues use a
  different variant on its symmetric trees; tribute follows the definition above, checked by
  enumeration). scikit-learn's ``HistGradientBoosting*`` and LightGBM store how many training
  rows reached a node, not their weight, so for a model fitted with ``sample_weight`` the
  branches are weighed by row counts (as shap and LightGBM's ``pred_contrib`` weigh them),
  not by training weight: aud50t measured credits 0.026 away (8% of the largest) from the
  weighted cover's on a HistGradientBoostingRegressor fitted with weights 1 and 10. Explain
  such models against a background set (``baseline=tribute.Background(X_train)``,
  interventional), which reads no cover.
* ``"interventional"`` — ``v(S)`` = the model with the players outside ``S`` set to the game's
  baseline, averaged over a background set: exactly the game :func:`tribute.explain` builds
  (so ``exact_shapley`` on the same game agrees), computed in polynomial time.
* ``"auto"`` (default) — interventional whenever a baseline was given (a background set,
  one per sample, or a single row: ``v(S)`` then uses exactly that row, as
  ``shap.TreeExplainer(model, data=row[None])`` does), path-dependent when none was
  (``tribute.explain`` without ``baseline=``). A single baseline row used to be ignored in
  favour of the trees' cover, silently (audit).

What is explained is the ensemble's **raw output**: the margin (log-odds) of boosted
classifiers (a binary model's class 0 gets the negated margin), the prediction of regressors and
the averaged class probability of scikit-learn forests and trees (their ``predict_proba``);
the margin of log-link boosting (Poisson, Gamma, Tweedie) is the log of its prediction, and that
of a regressor with a logistic link (XGBoost ``reg:logistic``, LightGBM ``cross_entropy``) the
log-odds of its prediction, explained as it is (no class 0 to negate it for).
``attr.params["explained"]`` says which, and ``attr.full_values`` / ``attr.base_values`` (also
``extra["expected_value"]``) are that same quantity, so ``values.sum(-1) = full - base``: for a
boosted classifier called through ``predict_proba`` (XGBClassifier, LGBMClassifier,
GradientBoostingClassifier) with ``output="raw"``, they are its margins, not the probabilities
other methods explain for ``output="raw"``. Probabilities of boosted models are not additive
over trees, so ``output="prob"``/``"log_prob"`` on them is refused (use ``method="exact_shapley"``
or ``"kernel_shap"`` for the probability game), and so is ``output="logit"`` when the model
returns probabilities and their log-odds are not its margin (several classes: the one-vs-rest
log-odds ``log(p_k / (1 - p_k))``); with a binary logistic model (or a model returning margins,
e.g. a Booster) ``output="logit"`` is the margin and is accepted. Where the probability is
``sigmoid(k * margin)`` (scikit-learn's exponential loss: ``k = 2``; LightGBM's ``sigmoid=k``),
``output="raw"`` explains the margin (``params["explained"]`` says "the log-odds / k") and
``output="logit"`` the log-odds, ``k`` times the margin's values.

Players may be groups of columns (``groups=``): splits on any column of a group form one
factor, which is the same value function with groups as players. A scikit-learn ``Pipeline``
whose preprocessing works column by column (encoders, scalers, imputers, ``ColumnTransformer``
of those) is read the same way: its encoded columns are grouped by the original column they
come from (:mod:`tribute.models.pipelines`), one player per original column; other
preprocessing is refused.

Model calls: the game's reference pass (v(N), one counted evaluation) and, outside the engine,
the reader's check of the model's own raw prediction on the explained rows (and, for
interventional values, on the background rows) plus one row for the base offset of boosted
models — reported as ``attr.params["reading_rows"]``; no sampling, so no ``budget``: one given
is accepted (as ``exact_shapley`` accepts more than its ``2^n``) and ``extra["budget_unused"]``
says it was not used.

Missing values: NaN inputs (and background rows) are accepted and read the way the model
routes them (XGBoost/LightGBM default directions, scikit-learn's missing-value support; an
XGBoost wrapper's ``missing=`` value counts as missing too); a model that refuses NaN
(``GradientBoostingRegressor``) is refused with it; other methods still refuse NaN.

Kernels: with numba installed (``pip install tribute[trees]``) the values come from compiled
depth-first walks, one per input and tree (:mod:`tribute.methods._tree_kernels`); without it,
from the vectorised NumPy evaluation below. Both are exact and agree to rounding;
``attr.params["kernel"]`` says which ran (interaction values always use NumPy).

With ``interactions=True`` the result's ``extra["interactions"]`` holds shap-convention
Shapley interaction values ``batch x targets x players x players`` (rows sum to the values).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import factorial
from typing import Any

import numpy as np
import torch

from ..attribution import Attribution
from ..errors import InputError, UnsupportedModelError
from ..games.base import Game
from ..models.trees import TreeEnsemble, parse_trees, snap_zero
from ..params import BOOL, Options, declare
from ._tree_math import (
    indicator_interaction_table,
    indicator_shapley_table,
    leafwise_shapley,
    patterns,
    product_game_interactions,
)
from .base import Cost, Method, Tags, coalition_cost, register

__all__ = ["TreeShap", "tree_attributions"]

#: Paths with at most this many distinct players use per-leaf pattern tables (path-dependent;
#: interventional tables are products with a ``4^d`` universal table, interactions ``4^d d^2``).
_TABLE_MAX_D = 10
_TABLE_MAX_D_BG = 8
_TABLE_MAX_D_INTER = 6
#: Memory for per-leaf tables (bytes) before falling back to per-input evaluation.
_TABLE_BYTES = 256 * 1024**2
#: Elements per chunk of per-input work (samples x slots x ...).
_CHUNK_ELEMENTS = 2**23
_PERTURBATIONS = ("auto", "tree_path_dependent", "interventional")
_KERNEL_CHOICES = ("auto", "compiled", "numpy")


@dataclass
class _Group:
    """Leaves whose paths have ``d`` distinct players."""

    d: int
    slot: np.ndarray  # L x d indices into the global slot array
    player: np.ndarray  # L x d player ids
    z: np.ndarray  # L x d cover products
    value: np.ndarray  # L x outputs


class _Compiled:
    """An ensemble flattened for vectorised evaluation with a feature -> player map."""

    def __init__(self, ens: TreeEnsemble, player_of: np.ndarray, n_players: int) -> None:
        self.ens = ens
        self.n_players = n_players
        cols: list[np.ndarray] = []  # internal nodes per tree
        col_off = 0
        e_col: list[int] = []
        e_dir: list[bool] = []
        slot_start: list[int] = []
        by_d: dict[int, dict[str, list[Any]]] = {}
        n_slots = 0
        self.expected = np.zeros(ens.n_outputs)
        for t in ens.trees:
            internal = np.flatnonzero(t.left >= 0)
            local_col = -np.ones(t.n_nodes, dtype=np.int64)
            local_col[internal] = col_off + np.arange(internal.size)
            cols.append(internal)
            col_off += internal.size
            root_cover = t.cover[0] if t.cover[0] > 0 else 1.0
            # iterative DFS keeping (node, path entries [(node, went_left)])
            stack: list[tuple[int, list[tuple[int, bool]]]] = [(0, [])]
            while stack:
                node, path = stack.pop()
                if t.left[node] >= 0:
                    stack.append((int(t.right[node]), [*path, (node, False)]))
                    stack.append((int(t.left[node]), [*path, (node, True)]))
                    continue
                val = t.value[node]
                self.expected += val * (t.cover[node] / root_cover)
                if not path or not np.any(val):
                    continue
                slots: dict[int, list[tuple[int, bool, float]]] = {}
                for nd, left in path:
                    child = t.left[nd] if left else t.right[nd]
                    ratio = t.cover[child] / t.cover[nd] if t.cover[nd] > 0 else 0.0
                    p = int(player_of[t.feature[nd]])
                    slots.setdefault(p, []).append((int(local_col[nd]), left, float(ratio)))
                d = len(slots)
                g = by_d.setdefault(d, {"slot": [], "player": [], "z": [], "value": []})
                ids, zs = [], []
                for entries in slots.values():
                    slot_start.append(len(e_col))
                    for c, left, _ in entries:
                        e_col.append(c)
                        e_dir.append(left)
                    ids.append(n_slots)
                    n_slots += 1
                    zs.append(float(np.prod([r for _, _, r in entries])))
                g["slot"].append(ids)
                g["player"].append(list(slots))
                g["z"].append(zs)
                g["value"].append(val)
        self.expected += ens.offset
        self.internal = cols
        self._nodes = _NodeTable(ens, cols)
        self.e_col = np.asarray(e_col, dtype=np.int64)
        self.e_dir = np.asarray(e_dir, dtype=bool)
        self.slot_start = np.asarray(slot_start, dtype=np.int64)
        self.groups = {
            d: _Group(d, np.asarray(g["slot"], dtype=np.int64).reshape(-1, d),
                      np.asarray(g["player"], dtype=np.int64).reshape(-1, d),
                      np.asarray(g["z"], dtype=np.float64).reshape(-1, d),
                      np.asarray(g["value"], dtype=np.float64).reshape(-1, ens.n_outputs))
            for d, g in sorted(by_d.items())
        }

    def slot_bits(self, x: np.ndarray) -> np.ndarray:
        """``rows x slots`` booleans: does each row satisfy every split of each slot."""
        if self.e_col.size == 0:
            return np.zeros((x.shape[0], 0), dtype=bool)
        out = np.empty((x.shape[0], self.slot_start.size), dtype=bool)
        step = max(1, _CHUNK_ELEMENTS // (8 * max(self.e_col.size, 1)))
        for s in range(0, x.shape[0], step):
            go = self._nodes.go_left(x[s : s + step])
            match = go[:, self.e_col] == self.e_dir[None, :]
            out[s : s + step] = np.logical_and.reduceat(match, self.slot_start, axis=1)
        return out


class _NodeTable:
    """Every internal node of every tree in one table, for one vectorised split decision."""

    def __init__(self, ens: TreeEnsemble, internal: list[np.ndarray]) -> None:
        trees = ens.trees
        self.tree0 = trees[0] if trees else None
        self.feature = np.concatenate([t.feature[n] for t, n in zip(trees, internal)]) \
            if trees else np.zeros(0, dtype=np.int64)
        thr = np.concatenate([t.threshold[n] for t, n in zip(trees, internal)]) if trees else np.zeros(0)
        t0 = self.tree0
        if t0 is not None and t0.threshold32:
            thr = thr.astype(np.float32).astype(np.float64)
        self.threshold = thr
        self.missing_left = np.concatenate([t.missing_left[n] for t, n in zip(trees, internal)]) \
            if trees else np.zeros(0, dtype=bool)
        self.nan_as_zero = _concat_optional([t.nan_as_zero for t in trees], internal)
        self.zero_as_missing = _concat_optional([t.zero_as_missing for t in trees], internal)
        self.strict = bool(t0.strict) if t0 is not None else False
        self.float32 = bool(t0.float32) if t0 is not None else False
        self.zero_below = float(t0.zero_below) if t0 is not None else 0.0

    def go_left(self, x: np.ndarray) -> np.ndarray:
        if self.float32:
            x = x.astype(np.float32).astype(np.float64)
        x = snap_zero(x, self.zero_below)
        v = x[:, self.feature]
        nan = np.isnan(v)
        any_nan = bool(nan.any())
        if any_nan and self.nan_as_zero is not None:
            v = np.where(nan & self.nan_as_zero, 0.0, v)
            nan = nan & ~self.nan_as_zero
        with np.errstate(invalid="ignore"):
            left = v < self.threshold if self.strict else v <= self.threshold
        miss = nan
        if self.zero_as_missing is not None:
            miss = miss | (self.zero_as_missing & (np.abs(np.nan_to_num(v)) <= 1e-35))
        elif not any_nan:
            return left
        return np.where(miss, self.missing_left, left)


class _Flat:
    """Every tree's nodes in one table with global ids (:meth:`TreeEnsemble.merged`), for the
    compiled kernels."""

    def __init__(self, ens: TreeEnsemble, player_of: np.ndarray, classes: np.ndarray) -> None:
        tree, self.roots = ens.merged()
        self.tree = tree
        self.left, self.right = tree.left, tree.right
        internal = self.left >= 0
        self.internal = np.flatnonzero(internal)
        self.col = -np.ones(self.left.size, dtype=np.int64)
        self.col[internal] = np.arange(self.internal.size)
        # tree t's internal nodes are columns col_start[t] .. col_start[t+1]-1 (nodes are
        # numbered tree by tree, so are the columns)
        counts = np.add.reduceat(internal.astype(np.int64), self.roots) if self.roots.size \
            else np.zeros(0, dtype=np.int64)
        self.col_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.player = np.where(internal, np.asarray(player_of)[np.maximum(tree.feature, 0)], -1
                               ).astype(np.int64)
        cover = tree.cover
        ok = internal & (cover > 0)
        safe = np.where(ok, cover, 1.0)
        self.ratio_left = np.where(ok, cover[np.maximum(self.left, 0)] / safe, 0.0)
        self.ratio_right = np.where(ok, cover[np.maximum(self.right, 0)] / safe, 0.0)
        self.val = np.ascontiguousarray(tree.value[:, classes], dtype=np.float64)
        self.live = (~internal) & np.any(self.val != 0, axis=1)
        # expected value under the cover weights (the path-dependent base value), all outputs
        sizes = np.diff(np.append(self.roots, self.left.size))
        root_cover = np.repeat(cover[self.roots], sizes)
        w = np.where(~internal, cover / np.where(root_cover > 0, root_cover, 1.0), 0.0)
        self.offset = np.asarray(ens.offset, dtype=np.float64)
        self.expected = (w[:, None] * tree.value).sum(0) + self.offset
        depth, frontier = 0, self.roots[self.left[self.roots] >= 0]
        while frontier.size:
            depth += 1
            kids = np.concatenate([self.left[frontier], self.right[frontier]])
            frontier = kids[self.left[kids] >= 0]
        self.d_max = max(depth, 1)

    def go(self, x: np.ndarray) -> np.ndarray:
        """``rows x internal nodes`` go-left decisions."""
        nodes = self.internal
        if x.shape[0] == 0 or nodes.size == 0:
            return np.zeros((x.shape[0], nodes.size), dtype=bool)
        x = self.tree.round_inputs(x)
        return np.ascontiguousarray(
            self.tree.decide(x[:, self.tree.feature[nodes]], nodes, rounded=True), dtype=bool)


def compiled_attributions(flat: _Flat, x: np.ndarray, n_players: int, *,
                          background: np.ndarray | None = None,
                          per_sample_background: bool = False,
                          bg_weights: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Shapley values ``rows x players x classes`` with the compiled kernels (numba), and the
    ensemble's raw output on ``x`` (``rows x outputs``, read from the same decisions)."""
    from . import _tree_kernels as kern

    n = x.shape[0]
    phi = np.zeros((n, n_players, flat.val.shape[1]))
    pred = np.tile(flat.offset, (n, 1)).astype(np.float64)
    n_int = max(int(flat.internal.size), 1)
    step = max(1, _CHUNK_ELEMENTS // n_int)
    go_b = None if background is None else flat.go(background)
    for s in range(0, n, step):
        e = min(n, s + step)
        go_x = flat.go(x[s:e])
        pred[s:e] += kern.predict(go_x, flat.roots, flat.left, flat.right, flat.col,
                                  flat.tree.value)
        if go_b is None:
            phi[s:e] = kern.path_dependent(go_x, flat.roots, flat.col_start, flat.left,
                                           flat.right, flat.col,
                                           flat.player, flat.ratio_left, flat.ratio_right,
                                           flat.val, flat.live, flat.d_max, n_players)
        else:
            gb = go_b[s:e] if per_sample_background else go_b
            w = np.ones(1) if per_sample_background else (
                np.full(gb.shape[0], 1.0 / gb.shape[0]) if bg_weights is None else bg_weights)
            phi[s:e] = kern.interventional(go_x, gb, per_sample_background, w, flat.roots,
                                           flat.left, flat.right, flat.col, flat.player,
                                           flat.val, flat.live, flat.d_max, n_players)
    return phi, pred


def _concat_optional(parts: list[np.ndarray | None], internal: list[np.ndarray]
                     ) -> np.ndarray | None:
    """Concatenate per-tree node flags at internal nodes (None when the trees have none)."""
    if not parts or any(p is None for p in parts):
        return None
    return np.concatenate([p[n] for p, n in zip(parts, internal) if p is not None])


def _scatter(units: np.ndarray, g: _Group, classes: np.ndarray, n_players: int,
             out: np.ndarray) -> None:
    """``out[n, p, ci] += sum_{l,k: player = p} units[n, l, k] * value[l, classes[ci]]``."""
    from scipy import sparse

    n_rows = units.shape[0]
    flat = units.reshape(n_rows, -1)
    rows = np.arange(flat.shape[1])
    for ci, c in enumerate(classes):
        v = np.repeat(g.value[:, c], g.d)
        if not np.any(v):
            continue
        w = sparse.csr_matrix((v, (rows, g.player.reshape(-1))), shape=(flat.shape[1], n_players))
        out[:, :, ci] += np.asarray((w.T @ flat.T).T)


def _scatter_pairs(units: np.ndarray, g: _Group, classes: np.ndarray, n_players: int,
                   out: np.ndarray) -> None:
    """Interaction version of :func:`_scatter`: ``units`` is ``n x L x d x d``."""
    from scipy import sparse

    n_rows = units.shape[0]
    flat = units.reshape(n_rows, -1)
    rows = np.arange(flat.shape[1])
    pp = (g.player[:, :, None] * n_players + g.player[:, None, :]).reshape(-1)
    for ci, c in enumerate(classes):
        v = np.repeat(g.value[:, c], g.d * g.d)
        if not np.any(v):
            continue
        w = sparse.csr_matrix((v, (rows, pp)), shape=(flat.shape[1], n_players * n_players))
        out[:, :, :, ci] += np.asarray((w.T @ flat.T).T).reshape(n_rows, n_players, n_players)


def _pattern_index(bits: np.ndarray) -> np.ndarray:
    d = bits.shape[-1]
    return np.asarray((bits.astype(np.int64) << np.arange(d)).sum(-1))


def tree_attributions(
    comp: _Compiled,
    x: np.ndarray,
    classes: np.ndarray,
    *,
    background: np.ndarray | None = None,
    per_sample_background: bool = False,
    interactions: bool = False,
    bg_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Shapley values (and interaction values) of the ensemble's raw output.

    Args:
        comp: the compiled ensemble.
        x: ``N x features`` inputs.
        classes: output columns to explain.
        background: None for path-dependent; ``M x features`` rows (or ``N x features`` with
            ``per_sample_background``) for interventional values.
        interactions: also compute interaction values.
        bg_weights: weights of the background rows (sum 1); None = equal.

    Returns:
        ``(phi N x players x classes, interactions N x players x players x classes or None)``.
    """
    n, p, nc = x.shape[0], comp.n_players, len(classes)
    phi = np.zeros((n, p, nc))
    inter = np.zeros((n, p, p, nc)) if interactions else None
    bits_x = comp.slot_bits(x)
    bits_b = None if background is None else comp.slot_bits(background)
    if bits_b is not None and bg_weights is None:
        bg_weights = np.full(bits_b.shape[0], 1.0 / bits_b.shape[0])
    for d, g in comp.groups.items():
        n_leaves = g.slot.shape[0]
        max_d = _TABLE_MAX_D if bits_b is None else _TABLE_MAX_D_BG
        if interactions:
            max_d = min(max_d, _TABLE_MAX_D_INTER)
        use_table = d <= max_d and 2**d <= 2 * max(n, 8) and (
            n_leaves * 2**d * d * (d if interactions else 1) * 8 <= _TABLE_BYTES
        )
        table = itable = None
        if use_table and not per_sample_background:
            pat = patterns(d)
            if bits_b is None:  # path-dependent: one table per leaf from its cover products
                pats = np.broadcast_to(pat[:, None, :], (pat.shape[0], n_leaves, d))
                table = np.ascontiguousarray(np.moveaxis(leafwise_shapley(g.z, pats), 0, 1))
                if interactions:
                    itable = product_game_interactions(g.z[:, None, :], pat[None, :, :])
            else:  # interventional: histogram of background patterns x universal table
                pb = _pattern_index(bits_b[:, g.slot])  # M x L
                flat = (np.arange(n_leaves)[None, :] * 2**d + pb).reshape(-1)
                assert bg_weights is not None
                hist = np.bincount(flat, weights=np.repeat(bg_weights, n_leaves),
                                   minlength=n_leaves * 2**d).reshape(n_leaves, 2**d)
                table = np.einsum("lb,xbk->lxk", hist, indicator_shapley_table(d))
                if interactions:
                    itable = np.einsum("lb,xbij->lxij", hist, indicator_interaction_table(d))
        per = max(1, _CHUNK_ELEMENTS // max(n_leaves * d * (d if interactions else 1) * (d + 3) // 2, 1))
        for s in range(0, n, per):
            e = min(n, s + per)
            ox = bits_x[s:e][:, g.slot]  # rows x L x d
            if table is not None:
                px = _pattern_index(ox)
                li = np.arange(n_leaves)[None, :]
                units = table[li, px]
                iunits = itable[li, px] if itable is not None else None
            elif bits_b is None:
                units = leafwise_shapley(g.z, ox)
                iunits = product_game_interactions(g.z[None], ox) if interactions else None
            else:
                assert bg_weights is not None
                units, iunits = _indicator_direct(ox, bits_b, g, s, e, per_sample_background,
                                                  interactions, bg_weights)
            _scatter(units, g, classes, p, phi[s:e])
            if inter is not None and iunits is not None:
                _scatter_pairs(iunits, g, classes, p, inter[s:e])
    return phi, inter


def _indicator_direct(ox: np.ndarray, bits_b: np.ndarray, g: _Group, s: int, e: int,
                      per_sample: bool, interactions: bool, weights: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray | None]:
    """Interventional units without tables, averaged over background rows one at a time.

    For one background row a leaf's game is the indicator game of :mod:`._tree_math`: it is
    dead (all credits 0) when some player satisfies its splits for neither row, which is the
    common case on long paths, so only the live (input, leaf) pairs are evaluated, with the
    closed form ``(|A|-1)! |C|! / (|A|+|C|)!`` on ``A`` and ``-|A|! (|C|-1)! / (|A|+|C|)!`` on
    ``C``. Interaction values use the general product-game quadrature.
    """
    if per_sample:
        obs = [bits_b[s:e][:, g.slot]]
        ws = [1.0]
    else:
        obs = [bits_b[m][g.slot][None] for m in range(bits_b.shape[0])]
        ws = [float(w) for w in weights]
    units = np.zeros(ox.shape)
    iunits = np.zeros((*ox.shape, ox.shape[-1])) if interactions else None
    d = ox.shape[-1]
    fact = np.array([float(factorial(i)) for i in range(d + 2)])
    for ob, wm in zip(obs, ws):
        ob_full = np.broadcast_to(ob, ox.shape)
        alive = ~(~ox & ~ob_full).any(-1)  # rows x L
        rows, leaves = np.nonzero(alive)
        if rows.size:
            x_live = ox[rows, leaves]
            b_live = ob_full[rows, leaves]
            a_set = x_live & ~b_live
            c_set = b_live & ~x_live
            a = a_set.sum(-1)
            c = c_set.sum(-1)
            n = np.maximum(a + c, 1)
            plus = np.where(a > 0, fact[np.maximum(a - 1, 0)] * fact[c] / fact[n], 0.0)
            minus = np.where(c > 0, fact[a] * fact[np.maximum(c - 1, 0)] / fact[n], 0.0)
            units[rows, leaves] += wm * (a_set * plus[:, None] - c_set * minus[:, None])
            if iunits is not None:
                # a dead leaf's interactions are all 0 too: only the live (input, leaf) pairs
                # (the whole rows x leaves product game per background row cost ~0.1 s per
                # input and background row on 10 trees of depth 10, 50x enumeration; aud49t)
                iunits[rows, leaves] += wm * product_game_interactions(
                    b_live.astype(np.float64), x_live.astype(np.float64))
    return units, iunits


# --------------------------------------------------------------------------- the method
def _estimator_of(game: Game) -> Any:
    adapter = getattr(game, "model", None)
    for attr in ("estimator", "obj", "original"):
        est = getattr(adapter, attr, None)
        if est is not None:
            return est
    fn = getattr(adapter, "fn", None)
    est = getattr(fn, "__self__", None)
    if est is not None:
        return est
    raise UnsupportedModelError(
        "tree_shap needs the tree model object itself (a scikit-learn, XGBoost or LightGBM "
        "model); got a plain function or a torch module. Use method='shapley' instead."
    )


@register
class TreeShap(Method):
    """Exact TreeSHAP for tree ensembles (path-dependent or interventional), with interactions.

    Polynomial time in the number of leaves and path lengths; no sampling, no budget. Reads
    scikit-learn trees/forests/extra trees/(Hist)GradientBoosting, XGBoost, LightGBM and
    CatBoost (float features) models
    and checks its reading against the model's own output before explaining.

    Args:
        feature_perturbation: ``"auto"``, ``"tree_path_dependent"`` or ``"interventional"``.
            default="auto".
        interactions: also return Shapley interaction values in ``extra["interactions"]``.
            default=False.
        kernel: ``"auto"`` (compiled with numba when it is installed, else NumPy),
            ``"compiled"`` or ``"numpy"`` (vectorised over inputs and leaves; also used for
            interaction values). Both compute the same values; ``attr.params["kernel"]`` says
            which ran. default="auto".
    """

    name = "tree_shap"
    tags = Tags(family="shapley", exact=True, needs_baseline=False, has_gap=True,
                games=("feature",), model_specific=True, reads_missing=True)
    paper = ("Lundberg et al. (2020), From local explanations to global understanding with "
             "explainable AI for trees, Nature Machine Intelligence")
    constraints = declare({"feature_perturbation": Options(_PERTURBATIONS), "interactions": BOOL,
                           "kernel": Options(_KERNEL_CHOICES)})

    @classmethod
    def reads_baseline(cls, params: dict[str, Any]) -> bool:
        # "auto" without a baseline is the path-dependent game; "interventional" removes
        # players to the baseline, which must then be a value of their own (0.0 warns, a
        # table's text columns refuse a number) rather than an unread 0.0
        return bool(params.get("feature_perturbation", "auto") == "interventional")

    def __init__(self, feature_perturbation: str = "auto", interactions: bool = False,
                 kernel: str = "auto") -> None:
        self.feature_perturbation = feature_perturbation
        self.interactions = interactions
        self.kernel = kernel

    def _kernel(self) -> str:
        """``"compiled"`` (numba walk per input and tree) or ``"numpy"`` (vectorised leaves).

        Interaction values always use the NumPy path."""
        from . import _tree_kernels

        if self.kernel == "numpy" or self.interactions:
            return "numpy"
        if _tree_kernels.available():
            return "compiled"
        if self.kernel == "compiled":
            raise InputError("method 'tree_shap': kernel='compiled' needs numba; install it with "
                             "`pip install tribute[trees]` (or numba), or pass kernel='auto'.")
        return "numpy"

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        from ..games.features import FeatureGame

        if not isinstance(game, FeatureGame):
            raise UnsupportedModelError("tree_shap explains input features of a tree model.")
        if game.layout.multi_input:
            raise UnsupportedModelError("tree_shap: the model takes one input table, not several.")
        est = _estimator_of(game)
        x = game.inputs_flat().detach().cpu().double().numpy()
        bg_rows = game.baseline_flat().detach().cpu().double().numpy()
        groups = game.groups_array()
        if groups is not None and groups.ndim != 1:
            raise UnsupportedModelError("tree_shap: per-sample groups are not supported; give one "
                                        "group mask for all samples.")
        player_of = np.arange(x.shape[1]) if groups is None else np.asarray(groups, dtype=np.int64)
        encoded = _through_preprocessing(game, est, x, bg_rows, player_of)
        if encoded is not None:  # a column-wise pipeline: trees on encoded columns, grouped
            est, x, bg_rows, player_of = encoded
        ens = parse_trees(est)
        if x.shape[1] != ens.n_features:
            raise InputError(
                f"tree_shap: inputs have {x.shape[1]} columns but the {ens.kind} was trained on "
                f"{ens.n_features}; pass the columns the model was fitted on."
            )
        # values the model reads as missing (XGBoost's `missing=`) are NaN to the trees
        x, bg_rows = ens.read_missing(x), ens.read_missing(bg_rows)
        target = game.target
        if target.fn is not None or target.index is None:
            what = ("output='kl' (a divergence of the whole label distribution)"
                    if target.output == "kl" else "a callable target")
            raise UnsupportedModelError(
                f"tree_shap explains one output column per target; {what} is not supported. "
                "Use a model-agnostic Shapley estimator (e.g. method='exact_shapley' or "
                "'kernel_shap') for it."
            )
        output = target.output
        prob_native = ens.raw_output == "probability"
        if ens.link in ("logistic", "softmax") and output in ("prob", "log_prob"):
            # (the text of params["explained"]: for p = sigmoid(2 margin) the margin is not the
            # log-odds, which output='logit' explains; review rev41d)
            logit = ("output='logit' (log-odds), " if ens.link == "logistic" and
                     ens.logit_scale != 1.0 else "")
            raise UnsupportedModelError(
                f"tree_shap explains the {_explained(ens, False)}; output={output!r} is not "
                f"additive over trees. Use output='raw' (margin), {logit}or method='shapley' for "
                "probabilities."
            )
        if ens.hard_classes and output in ("prob", "log_prob"):
            # (a Booster was refused as "trees give outputs up to 0.387 away ... early stopping";
            # an XGBClassifier's credits were the margin's while the game's v(N) was the 0/1
            # class, full_values 0.15 for a probability of 1, small46)
            raise UnsupportedModelError(
                f"tree_shap explains the {_explained(ens, False)}; the {ens.kind} (binary:hinge) "
                f"gives hard 0/1 classes, a step of that margin, so output={output!r} is not "
                "additive over its trees. Use output='raw' (the margin) or method='exact_shapley' "
                "for the class.")
        if prob_native and output in ("logit", "log_prob"):
            raise UnsupportedModelError(
                f"tree_shap: the {ens.kind} averages class probabilities; output={output!r} is not "
                "additive over its trees. Use output='raw' or 'prob'."
            )
        if output == "logit" and ens.link == "softmax" and game.model.output_kind == "probability":
            raise UnsupportedModelError(_logit_refusal(ens))
        mode = self.feature_perturbation
        per_sample = bg_rows.shape[0] == game.n_samples and game.n_background == 1 and \
            any(inp.base_mode == "per_sample" for inp in game.inputs)
        if mode == "auto":
            given = bool(getattr(game, "baseline_given", False))
            mode = "interventional" if (game.n_background > 1 or per_sample or given) \
                else "tree_path_dependent"
        idx = target.index.cpu().numpy()  # batch x targets
        by_class = _indices_are_classes(game, ens)
        cols, sign = _columns(ens, idx, by_class)
        logit_scale = ens.logit_scale if ens.link == "logistic" else 1.0
        if output == "logit" and logit_scale != 1.0:
            # the log-odds are logit_scale x the margin (sklearn's exponential loss, LightGBM's
            # sigmoid=): additive too; they were refused (and output='raw' called "log-odds")
            sign = sign * logit_scale
        classes = np.unique(cols)
        background = None if mode == "tree_path_dependent" else bg_rows
        per_sample_bg = per_sample and background is not None
        bg_w = game.background_weights().numpy() if game.n_background > 1 else None
        if background is not None:  # before the work: the model must read these rows too
            _check_background_reading(ens, bg_rows)
        kernel = self._kernel()
        inter: np.ndarray | None = None
        if kernel == "compiled":
            flat = _Flat(ens, player_of, classes)
            phi, pred = compiled_attributions(flat, x, game.n_players, background=background,
                                              per_sample_background=per_sample_bg,
                                              bg_weights=bg_w)
            ens.check(x, got=pred)
            expected = flat.expected
        else:
            ens.check(x)
            pred = ens.predict(x)
            comp = _Compiled(ens, player_of, game.n_players)
            phi, inter = tree_attributions(comp, x, classes, background=background,
                                           per_sample_background=per_sample_bg,
                                           interactions=self.interactions, bg_weights=bg_w)
            expected = comp.expected
        pos = np.searchsorted(classes, cols)  # batch x targets
        b_idx = np.arange(game.n_samples)[:, None]
        vals = np.moveaxis(phi, 2, 1)[b_idx, pos] * sign[..., None]  # batch x targets x players
        full = pred[b_idx, cols] * sign
        if mode == "tree_path_dependent":
            base = np.broadcast_to(expected[cols], cols.shape) * sign
        else:
            bpred = ens.predict(bg_rows)
            bmean = bpred.mean(0) if bg_w is None else bg_w @ bpred
            base = (bpred[b_idx, cols] if per_sample else bmean[cols]) * sign
        if output == "logit":
            _check_logit_is_margin(game, full, ens)
        else:
            _check_reading_is_the_game(game, full, pred, cols, ens)
        gap = vals.sum(-1) - (full - base)
        extra: dict[str, Any] = {"expected_value": base}
        if budget is not None:
            # accepted as exact_shapley accepts a budget above its 2^n (a cap, never a target),
            # and recorded: no evaluation beyond the reference pass follows it (small42)
            extra["budget_unused"] = (
                f"budget={int(budget)} was not used: tree_shap is exact and reads the trees (no "
                f"sampling); it spent {game.n_evals} evaluation(s) per input, the reference pass.")
        if inter is not None:
            it = np.moveaxis(inter, 3, 1)[b_idx, pos] * sign[..., None, None]
            extra["interactions"] = it if game.layout.multi_target else it[:, 0]
        params = {"feature_perturbation": mode, "interactions": self.interactions,
                  "kernel": kernel,
                  # rows the model's own raw prediction saw outside the engine (reading check)
                  "reading_rows": ens.raw_rows,
                  "explained": _explained(ens, by_class, output == "logit"),
                  "background_rows": 0 if background is None else int(bg_rows.shape[0])}
        attr = game.attribution(torch.from_numpy(np.ascontiguousarray(vals)), self.name, params,
                                gap=torch.from_numpy(np.ascontiguousarray(gap)), extra=extra)
        # full and base values of what the trees explain (the margin of a boosted classifier
        # even when the model's own output, the game's, is its predict_proba): values sum to
        # full - base, in the same units
        pick = slice(None) if game.layout.multi_target else 0
        attr.full_values = np.ascontiguousarray(np.asarray(full)[:, pick], dtype=np.float64)
        attr.base_values = np.ascontiguousarray(np.asarray(base)[:, pick], dtype=np.float64)
        return attr

    budget_rule = "no model evaluations (reads the trees)"

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """No model rows; the credits (``batch x targets x n``), with ``interactions`` the
        ``batch x targets x n x n`` interaction values, and a background table when
        interventional."""
        n, b, t = int(game.n_players), int(game.n_samples), int(game.n_targets)
        mb = int(getattr(game, "n_background", 1) or 1)
        inter = 3 * b * t * n * n * 8 if self.interactions else 0
        c = coalition_cost(game, 0, design=inter + 2 * b * mb * n * 8,
                           note="credits" + (f" and {n:,}^2 interaction values" if inter else ""))
        return Cost(0, c.bytes, c.note, c.flops)


def _through_preprocessing(game: Game, est: Any, x: np.ndarray, bg_rows: np.ndarray,
                           player_of: np.ndarray
                           ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray] | None:
    """A Pipeline whose preprocessing works column by column: the final tree model, the inputs
    and background rows as it sees them, and each encoded column's player (that of the
    original column it comes from, :func:`tribute.models.pipelines.columnwise_owner`).
    None when ``est`` is not a Pipeline with preprocessing steps."""
    from ..models.pipelines import columnwise_owner, split_pipeline

    split = split_pipeline(est)
    if split is None:
        return None
    prep, final = split
    adapter = getattr(game, "model", None)
    codec = getattr(adapter, "codec", None)
    columns: list[str] | None = (list(codec.columns) if codec is not None
                                 else getattr(adapter, "feature_names", None))

    def encode(rows: np.ndarray) -> np.ndarray:
        data: Any = rows
        if codec is not None:
            data = codec.decode(rows)
        elif columns is not None:
            import pandas as pd

            data = pd.DataFrame(rows, columns=columns)
        out = prep.transform(data)
        out = out.toarray() if hasattr(out, "toarray") else out
        return np.asarray(out, dtype=np.float64)

    owner = columnwise_owner(prep, x.shape[1], [str(c) for c in columns] if columns else None)
    return final, encode(x), encode(bg_rows), player_of[owner]


def _check_background_reading(ens: TreeEnsemble, rows: np.ndarray) -> None:
    """The trees must give the model's own raw output on the background (baseline) rows too:
    only the explained rows were checked, so a background the model reads otherwise (a value
    it treats as missing, NaN that it refuses) gave silently wrong values and base values
    (audit aud36t: XGBoost ``missing=-999`` rows, 0.73 off; NaN rows of a
    GradientBoostingRegressor, which cannot predict them at all)."""
    try:
        ens.check(rows)
    except UnsupportedModelError as exc:
        raise UnsupportedModelError(f"{exc} (on the baseline / background rows)") from None
    except Exception as exc:  # the model itself refuses these rows (e.g. NaN it cannot read)
        raise InputError(
            f"baseline: the {ens.kind} cannot predict the background rows itself "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "tree_shap would credit outputs the model never gives. Impute or drop those "
            "background rows (e.g. NaN for a model without missing-value support)."
        ) from exc


def _explained(ens: TreeEnsemble, by_class: bool, logit: bool = False) -> str:
    """What the trees' raw output is, for ``attr.params["explained"]`` (``logit``: the game's
    output is the log-odds, ``logit_scale`` x the margin of a logistic link)."""
    what = {"logistic": "margin (log-odds)", "softmax": "margin (softmax logit)",
            "exp": "margin (log of the prediction)"}.get(ens.link, ens.raw_output)
    scale = ens.logit_scale
    if ens.link == "logistic" and scale != 1.0:
        what = (f"log-odds ({scale:g} x the margin)" if logit
                else f"margin (the log-odds / {scale:g}: p = sigmoid({scale:g} margin))")
    note = "; class 0: the negated margin" if by_class and ens.n_outputs == 1 else ""
    return f"{what} of the {ens.kind}{note}"


def _indices_are_classes(game: Game, ens: TreeEnsemble) -> bool:
    """The game's target indices of a one-margin ensemble are classes 0/1 (class 0: the
    negated margin): a known binary classifier returning one column, or a model returning two
    columns (``predict_proba``). A model returning one column it is not known to classify
    with -- a regressor with a logistic link (XGBoost ``reg:logistic``, LightGBM
    ``cross_entropy``), whose index 0 is its single output -- explains its margin as it is
    (its index 0 used to be read as class 0: the negated margin, silently)."""
    if game.target.binary:
        return True
    ref = getattr(game, "reference_output", None)
    return ens.n_outputs == 1 and ref is not None and ref.ndim == 2 and ref.shape[1] == 2


def _logit_refusal(ens: TreeEnsemble) -> str:
    return (
        f"tree_shap explains the {ens.kind}'s margin, but output='logit' of a model that returns "
        "probabilities is the one-vs-rest log-odds log(p_k / (1 - p_k)), which is not that "
        "margin (with several classes, or a link other than the logistic) and not additive over "
        "trees. Use output='raw' to explain the margin with tree_shap, or method='exact_shapley' "
        "/ 'kernel_shap' for the log-odds."
    )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow warnings."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))


def _check_logit_is_margin(game: Game, full: np.ndarray, ens: TreeEnsemble) -> None:
    """Refuse ``output="logit"`` when the game's logit (from the model's probabilities) is not
    the trees' margin on the explained rows. Compared as probabilities, ``sigmoid`` of both
    (to 1e-6): float32 probabilities near 0 or 1 (XGBoost's) and their clipping make the
    log-odds themselves differ from the margin by more than rounding."""
    want = game.peek_full()
    if want is None:
        return
    w = want.detach().cpu().double().numpy().reshape(full.shape)
    if not np.allclose(_sigmoid(w), _sigmoid(full), rtol=0.0, atol=1e-6):
        raise UnsupportedModelError(_logit_refusal(ens))


def _check_reading_is_the_game(game: Game, full: np.ndarray, pred: np.ndarray,
                               cols: np.ndarray, ens: TreeEnsemble) -> None:
    """Refuse when the trees read do not give the output the game explains on the explained rows.

    ``full`` is the explained quantity (``batch x targets``, signed for class 0 of a single
    margin; its sign for a hinge classifier's 0/1 class), ``pred`` the trees' outputs (``batch x outputs``) and ``cols`` the explained
    output columns. The game's ``v(N)`` (the model called as
    every other method calls it) must be that quantity or a known link of it: the probability
    ``sigmoid(full)`` (``sigmoid(2 full)`` for scikit-learn's exponential loss), the class
    probability ``softmax`` of all margins (or one-vs-rest ``sigmoid``), ``exp(full)`` for
    log-link regressors. The reader's own check compares the trees with a library call that can
    differ from the model's ``predict``: an XGBoost model fitted with early stopping predicts
    with its best iteration's trees only, while its Booster holds them all (explained silently,
    up to 2.6 off), and a LightGBM ``boosting_type="rf"`` model predicts the average of its
    trees, its raw score their sum (explained ``n_trees`` times too large) (audit aud33i)."""
    want_t = game.peek_full()
    if want_t is None:
        want_t = game.full()
    want = want_t.detach().cpu().double().numpy().reshape(full.shape)
    sig = _sigmoid

    # the class of a hinge classifier (XGBoost binary:hinge: an identity link, 0/1 predict_proba)
    candidates = [full, np.where(full > 0, 1.0, np.where(full < 0, 0.0, want))]
    if ens.link == "logistic":
        candidates += [sig(full), sig(2.0 * full), sig(ens.logit_scale * full)]
    elif ens.link == "exp":
        with np.errstate(over="ignore"):
            candidates.append(np.exp(full))
    elif ens.link == "softmax":
        shifted = np.exp(pred - pred.max(1, keepdims=True))
        prob = shifted / shifted.sum(1, keepdims=True)
        candidates += [prob[np.arange(pred.shape[0])[:, None], cols], sig(full)]
    if not any(np.allclose(c, want, rtol=1e-4, atol=1e-5) for c in candidates):
        err = min(float(np.max(np.abs(c - want))) for c in candidates)
        raise UnsupportedModelError(
            f"tree_shap: the {ens.kind}'s trees give outputs up to {err:.3g} away from what the "
            "model itself returns on these rows (e.g. an XGBoost model fitted with early "
            "stopping predicts with its best iteration's trees only, a LightGBM random forest "
            "the average of its trees); its trees cannot be explained as the model. Use a "
            "model-agnostic method such as method='exact_shapley' or 'kernel_shap' (or refit "
            "without early stopping)."
        )


def _columns(ens: TreeEnsemble, idx: np.ndarray, binary: bool = False
             ) -> tuple[np.ndarray, np.ndarray]:
    """Raw-output column and sign for each requested class index (``binary``: the target
    holds classes 0/1 of a binary classifier whose trees have one output column, see
    :func:`_indices_are_classes` and :mod:`tribute.targets`)."""
    if ens.n_outputs == 1:
        if binary:  # one margin column: class 1 = +margin, 0 = -margin
            if np.any(idx > 1):
                raise InputError(f"tree_shap: a binary model has classes 0 and 1; got {idx.max()}.")
            return np.zeros_like(idx), np.where(idx == 1, 1.0, -1.0)
        return np.zeros_like(idx), np.ones(idx.shape)
    if np.any(idx >= ens.n_outputs):
        raise InputError(
            f"tree_shap: target class {int(idx.max())} is out of range for a model with "
            f"{ens.n_outputs} outputs."
        )
    return idx.astype(np.int64), np.ones(idx.shape)
