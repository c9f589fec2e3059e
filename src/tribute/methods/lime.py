"""LIME: a weighted linear surrogate fitted on random coalitions (Ribeiro et al. 2016).

The interpretable representation is the binary coalition ``z`` (1 = player kept); the surrogate
``g(z) = c + sum_i phi_i z_i`` is fitted to ``v(z)`` by weighted least squares (ridge) or the
lasso, with proximity weights ``pi(z) = exp(-d(z, 1)^2 / (2 width^2))`` (LIME's kernel, written
there as ``sqrt(exp(-d^2 / width^2))``). The coefficients ``phi`` are the credits.

All samples share the same coalitions (common random numbers), so the design matrix, the
weights and the normal equations are shared by every sample and target: one ``n x n`` solve
for all ``batch x targets`` right-hand sides.

Sampling schemes (``sampling=``):

* ``"bernoulli"`` — every player kept with probability 1/2 (``lime_image`` and Captum's Lime).
* ``"uniform_size"`` — number of removed players uniform in ``1..n-1``, then a uniform subset
  (``lime_text`` / ``lime_tabular``-style coverage of all coalition sizes).
* ``"stratified"`` — Rashid et al. (2024), "Using Stratified Sampling to Improve LIME Image
  Explanations" (AAAI): strata are coalition sizes ``k = 0..n``; the budget is split evenly
  over the strata, each stratum sampled uniformly, and every sample's kernel weight multiplied
  by the adjustment ``P_bernoulli(k) / P_sampled(k) = C(n,k) 2^-n / (n_k / m)`` so that the
  weighted loss is an unbiased estimate of the Bernoulli(1/2) neighbourhood's loss while every
  size is represented (including the rare, near-complete coalitions that Monte Carlo misses).
  The allocation is exactly even (the authors' code draws each sample's stratum at random,
  which gives the same allocation in expectation); with fewer than ``n + 2`` samples some
  strata stay empty and the adjustment is no longer unbiased.
* ``"exhaustive"`` — all ``2^n`` coalitions (``n <= 20``; reference use: with a constant kernel
  and no penalty the fitted coefficients are the Banzhaf values of the game).

The unperturbed input (all players kept) is always the first sample, as in LIME.
"""

from __future__ import annotations

import itertools
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..attribution import Attribution
from ..errors import BudgetError, InputError
from ..games.base import Game
from ..params import NONE, Interval, Options, declare
from ._blocks import block_bounds
from ._stderr import inflate, value_rounding, warn_undefined
from .base import Cost, Method, Tags, check_budget_param, coalition_cost, register

__all__ = ["Lime", "lime_kernel", "sample_coalitions", "weighted_lasso", "weighted_ridge"]

SAMPLINGS = ("bernoulli", "uniform_size", "stratified", "exhaustive")
DISTANCES = ("cosine", "hamming")
SURROGATES = ("ridge", "lasso")
MAX_EXHAUSTIVE = 20


# ----------------------------------------------------------------------- sampling
def _subsets_of_sizes(sizes: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """One uniformly random subset of each given size: ``len(sizes) x n`` float64 0/1."""
    ranks = torch.rand(sizes.numel(), n, generator=g, dtype=torch.float64).argsort(1).argsort(1)
    return (ranks < sizes[:, None]).to(torch.float64)


def sample_coalitions(n: int, m: int, sampling: str, g: torch.Generator,
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """``m`` coalitions over ``n`` players and their importance weights.

    The first coalition is the full one (weight 1). Importance weights are 1 except for
    ``"stratified"`` (Rashid et al. 2024's adjustment factors).

    Returns:
        ``(masks m x n float64 0/1, weights m float64)``.
    """
    ones = torch.ones(1, n, dtype=torch.float64)
    adj = torch.ones(m, dtype=torch.float64)
    if sampling == "exhaustive":
        s = torch.arange(2**n, dtype=torch.int64)
        masks = ((s[:, None] >> torch.arange(n)) & 1).to(torch.float64).flip(0)  # full one first
        return masks, torch.ones(2**n, dtype=torch.float64)
    r = m - 1
    if r <= 0:
        return ones, adj[:1]
    if sampling == "bernoulli":
        rest = (torch.rand(r, n, generator=g, dtype=torch.float64) < 0.5).to(torch.float64)
    elif sampling == "uniform_size":
        if n < 2:
            removed = torch.ones(r, dtype=torch.int64) * n
        else:
            removed = torch.randint(1, n, (r,), generator=g)
        rest = 1.0 - _subsets_of_sizes(removed, n, g)
    elif sampling == "stratified":
        # even allocation of r samples over the n+1 strata, the remainder to random strata
        counts = torch.full((n + 1,), r // (n + 1), dtype=torch.int64)
        extra = torch.randperm(n + 1, generator=g)[: r % (n + 1)]
        counts[extra] += 1
        sizes = torch.repeat_interleave(torch.arange(n + 1), counts)
        rest = _subsets_of_sizes(sizes, n, g)
        log_p = torch.tensor([math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                              - n * math.log(2.0) for k in range(n + 1)], dtype=torch.float64)
        q = counts.to(torch.float64) / r
        factor = torch.exp(log_p - torch.log(q.clamp(min=1e-300)))
        adj[1:] = factor[sizes]
    else:  # pragma: no cover - validated by the method
        raise InputError(f"sampling={sampling!r} is not one of {SAMPLINGS}.")
    return torch.cat([ones, rest]), adj


def lime_kernel(masks: torch.Tensor, distance: str, width: float) -> torch.Tensor:
    """LIME proximity ``exp(-d^2 / (2 width^2))`` of each coalition to the full one.

    ``d`` is the cosine distance between ``z`` and the all-ones vector (``1 - sqrt(|z|/n)``, 1 for
    the empty coalition) or the Hamming distance (fraction of players removed).
    """
    n = masks.shape[1]
    size = masks.sum(1)
    if distance == "cosine":
        d = 1.0 - torch.sqrt(size.clamp(min=0) / n) if n else torch.zeros_like(size)
        d = torch.where(size > 0, d, torch.ones_like(d))
    else:
        d = (n - size) / max(n, 1)
    if math.isinf(width):
        return torch.ones_like(d)
    return torch.exp(-(d**2) / (2.0 * width**2))


# ----------------------------------------------------------------------- regression
# The fits are small dense float64 algebra (``n x n`` systems with many right-hand sides). They
# run in numpy: on a busy machine torch's OpenMP pool makes each small op cost milliseconds,
# while numpy/OpenBLAS stays single-threaded for small sizes and multi-threaded for large ones.


def _np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy()


def weighted_ridge(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, alpha: float,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted ridge with an unpenalised intercept, for many right-hand sides at once.

    Minimises ``sum_k w_k (y_k - c - x_k . beta)^2 + alpha |beta|^2`` (scikit-learn's ``Ridge``
    with ``sample_weight``), for every column of ``y``.

    Args:
        x: ``K x n`` design (shared).
        y: ``K x R`` targets.
        w: ``K`` non-negative weights.
        alpha: L2 penalty (0: least squares; the minimum-norm solution when singular).

    Returns:
        ``(beta n x R, intercept R, stderr n x R)``; ``stderr`` is the heteroskedasticity-robust
        sandwich standard error of ``beta`` under i.i.d. sampling of the rows, with
        leverage-corrected residuals (HC2), pooled and t-inflated with ``K - n - 1`` dof; NaN
        with a :class:`StderrWarning` when no residual degrees of freedom are left.
    """
    yn = _np64(y)

    def fill(j0: int, j1: int, out: np.ndarray) -> None:
        np.copyto(out, yn[:, j0:j1])

    beta, icpt, se, _r2 = _ridge_stream(x, w, alpha, int(yn.shape[1]), fill)
    return beta, icpt, se


#: Size in bytes of one ``K x columns`` buffer of :func:`_ridge_stream` (it reuses three, block
#: after block): cache-sized whatever the number of samples x targets. At 1,024 coalitions
#: and 17,800 samples every ``K x R`` temporary of an unblocked fit is 146 MB, and a freshly
#: allocated one costs tens of thousands of page faults before any arithmetic.
_BLOCK_BYTES = 1 << 21
#: ... unless a block's ``(n+1) x K x columns`` products would do fewer multiply-adds than
#: this: below about 100^3 OpenBLAS runs its small-matrix kernels, whose sums round
#: differently; blocks above it give the bits of one product over all columns.
_MIN_BLOCK_MACS = 1 << 21


def _ridge_stream(x: torch.Tensor, w: torch.Tensor, alpha: float, n_cols: int,
                  fill: Callable[[int, int, np.ndarray], None], unit: int = 1,
                  support: int | None = None, rounding: float = 1e-12,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`weighted_ridge` and the weighted R² of each column, over blocks of columns.

    ``fill(j0, j1, out)`` writes the responses of columns ``j0:j1`` (``K x (j1 - j0)``) into
    ``out``; blocks hold a multiple of ``unit`` columns (LIME: whole samples, all their
    targets). The per-design parts (``A^-1``, leverages, ...) come from :func:`_ridge_parts`;
    each block runs the unblocked fit's operations on its columns, in the same order (every
    step is per column), so the results are those of one fit over all columns, bit for bit
    with numpy's BLAS here (see the tests); only the ``K x R`` temporaries shrink to three
    reused ``K x block`` buffers.

    The R² is :func:`weighted_r2`'s from the fit's residuals (the two agree to rounding; the
    weighted residual sum of squares is taken from the squared residuals the standard errors
    square anyway).

    Without a penalty, where the draw misses part of the sampler's ``support`` (LIME), two
    things the residuals cannot show make the standard error NaN with a :class:`StderrWarning`
    (aud51e): players whose coefficient the drawn coalitions do not determine
    (:func:`_unidentified`; their stderr only), and columns fitted exactly (every residual
    within ``rounding`` of the responses' size: :func:`._stderr.value_rounding`) by a design in
    which some pair of players never shows one of its four keep/remove combinations
    (:func:`_aliased_pair`): such a fit is what an interaction between the two leaves as well as
    what an additive game leaves, so the 0 it would report is not evidence.

    Returns:
        ``(beta n x R, intercept R, stderr n x R, r2 R)``.
    """
    n = int(x.shape[1])
    xa, xw, a_inv, u, lev, wn, used, distinct, exact, unident = _ridge_parts(x, w, alpha)
    k = int(xa.shape[0])
    dof = used - (n + 1)
    with_se = not (dof < 1 or bool((lev[wn > 0] >= 1.0 - 1e-9).any()))
    # rows that repeat a coalition add no residual: n + 1 distinct coalitions are interpolated
    # (residuals 0) whichever ones were drawn, so the credits move between seeds while the
    # stderr says 0; not where the draw holds the sampler's whole support (``support``
    # coalitions: the fit is then the same for every seed). A ridge penalty (alpha > 0) does
    # not interpolate n + 1 of them: its residuals are real, and from 3 players on its stderr
    # covered 0.92-1.0 there (200 seeds a config, 3-5 players, budgets n + 3); it is refused only
    # on fewer distinct coalitions than coefficients (0.33-0.83) and at 2 players (0.75-0.82;
    # small48a, rev47e: the rule NaN'd 70-116 of 200 seeds at 3-5 players)
    few = distinct - (n + 1) < 1 if alpha == 0 or n <= 2 else distinct < n + 1 or (
        # ... unless the penalty is too small to matter: the fit then nearly interpolates the
        # n + 1 coalitions as alpha = 0 does (a coalition's summed leverage >= 0.97: its stderr
        # covered 0.23-0.77 there, by leverage band, at alpha 1e-6-0.1; 0.88 at 0.9-0.97, 0.98
        # below 0.8; 3-5 players, 150 seeds a config, rev48s)
        distinct == n + 1 and _max_coalition_leverage(x, lev, wn) >= _NEAR_EXACT)
    if support is not None and distinct < support and (few or exact):
        with_se = False
    if not with_se:
        if min(dof, distinct - (n + 1)) < 1:
            why = (f"{distinct} distinct weighted coalitions ({used} rows) leave no residual degrees of "
                   f"freedom for {n} coefficients and an intercept")
        else:  # rev47z: the dof sentence above was false here (6 distinct coalitions for 4 + 1)
            why = (f"a coalition is fitted exactly (leverage 1: its residual is 0 whatever its value), so "
                   f"{distinct} distinct weighted coalitions ({used} rows) cannot estimate the spread")
        warn_undefined("lime", why, f"Raise budget above {n + 2}.")
    wr = wn / wn.sum()  # the R²'s weights
    # without a penalty, where the draw misses part of the support, the design itself varies
    # between seeds and few distinct coalitions carry the residuals: HC2 (residual / (1 - h))
    # with the distinct-coalition t factor still covered the budget's expected fit only
    # 0.70-0.88 (3 players, budgets 5-12, 200 seeds; 0.86-0.87 on a held-out sigmoid game at
    # budgets 8-10). HC3 (residual / (1 - h)^2; MacKinnon & White 1985, Long & Ervin 2000: the
    # jackknife's approximation, recommended below ~250 observations) covered 0.93-1.00 there;
    # elsewhere (alpha > 0, every coalition drawn, data_retrain's weighted_ridge) HC2 stays (est50)
    partial = alpha == 0 and support is not None and distinct < support
    hc2 = (1.0 - np.clip(lev, None, 1.0 - 1e-12))[:, None]
    if partial:
        hc2 = hc2 * hc2
    u2t = (u[:, 1:] ** 2).T
    pos = wn > 0
    exact_cols = np.zeros(n_cols, dtype=bool) if partial and with_se else None
    coef = np.empty((n + 1, n_cols))
    var = np.empty((n, n_cols)) if with_se else None
    r2 = np.empty(n_cols)
    per = max(_BLOCK_BYTES // (8 * max(k, 1)), -(-_MIN_BLOCK_MACS // ((n + 1) * max(k, 1))))
    cols = [unit * b for b in block_bounds(n_cols // unit, max(per // unit, 1))]
    bufs = np.empty((3, k * max(j1 - j0 for j0, j1 in itertools.pairwise(cols))))
    for j0, j1 in itertools.pairwise(cols):
        c = j1 - j0
        yb, rb, sb = (b[: k * c].reshape(k, c) for b in bufs)  # contiguous, like a full fit's
        fill(j0, j1, yb)
        cb = a_inv @ (xw.T @ yb)  # (n+1) x c
        coef[:, j0:j1] = cb
        np.matmul(xa, cb, out=rb)
        np.subtract(yb, rb, out=rb)  # residuals
        if exact_cols is not None:
            size = np.abs(yb[pos]).max(0) if pos.any() else np.zeros(c)
            exact_cols[j0:j1] = np.abs(rb[pos]).max(0, initial=0.0) <= rounding * size
        np.multiply(rb, rb, out=sb)
        ss_res = wr @ sb  # the R²'s, before the leverage correction
        if var is not None:
            # HC2 (HC3 where ``partial``): leverage-corrected residuals; pooled and t-inflated below (._stderr)
            sb /= hc2
            var[:, j0:j1] = np.clip(u2t @ sb, 0.0, None)
        np.multiply(yb, yb, out=sb)
        tiny = 1e-12 * (1.0 + wr @ sb)
        np.subtract(yb, wr @ yb, out=sb)
        sb *= sb
        ss_tot = wr @ sb
        ok = ss_tot > tiny
        r2[j0:j1] = np.where(ok, 1.0 - ss_res / np.where(ok, ss_tot, 1.0),
                             (ss_res <= tiny).astype(np.float64))
    beta, icpt = torch.from_numpy(coef[1:]), torch.from_numpy(coef[0])
    if var is None:
        se = torch.full_like(beta, float("nan"))
    else:
        # without a penalty the fit's residual information lies in its distinct coalitions, not
        # its rows: a coalition drawn again repeats its residual. Where the draw misses part of
        # the support (the set of coalitions, not only their counts, varies between seeds) the
        # t factor takes distinct - (n + 1) dof instead of rows - (n + 1): at 3-4 players and
        # budgets n + 3 .. 6n, +-1.96 stderr covered the budget's expected fit 0.75-0.89 with
        # the rows' dof, 0.82-0.95 now (200 seeds a budget, aud49e); alpha > 0 is unchanged
        # (its residuals are not an interpolation's: the rows' dof covered 0.94-0.99 there)
        t_dof = min(dof, distinct - (n + 1)) if partial else dof
        se = inflate(torch.from_numpy(np.sqrt(var)).T, t_dof).T.contiguous()
        # alpha=0 without a sampler's support too (datamodels' weighted_ridge, rev51e): a subset
        # draw that never varies a player (fraction 0.1, 20 subsets: players never kept) got
        # credit 0 for a weight of 1.4 with stderr 2e-16; the support's test does not apply there
        if alpha == 0 and unident.size and (partial or support is None):
            se[torch.from_numpy(unident)] = float("nan")
            names = ", ".join(str(int(i)) for i in unident[:8]) + (", ..." if unident.size > 8 else "")
            warn_undefined("lime", f"the {distinct} distinct drawn coalitions cannot separate the credits of "
                                   f"players {names} (e.g. a player never kept or never removed, or players "
                                   "always kept or removed together): their credits split by the minimum-norm "
                                   "convention, not by the game",
                           f"Raise budget above {k} or use a penalty (alpha > 0).")
        if alpha > 0 and pos.any():
            # ... and with a penalty, a player the draw never varies: its credit is the penalty's
            # (0 for a player never kept), not the game's; its sandwich read the other players'
            # residuals (datamodels, alpha=1e-3, fraction 0.1, 20 subsets: credits 0 for weights
            # 0.8 and 1.4 with stderr 1e-4, rev51e)
            xp = _np64(x)[pos]
            still = np.flatnonzero((xp == xp[:1]).all(0))
            if still.size:
                se[torch.from_numpy(still)] = float("nan")
                names = ", ".join(str(int(i)) for i in still[:8]) + (", ..." if still.size > 8 else "")
                who = f"players {names} are" if still.size > 1 else f"player {names} is"
                warn_undefined("lime", f"{who} never kept or never removed in the {distinct} "
                                       f"distinct drawn coalitions: their credits come from the penalty "
                                       f"(alpha={alpha:g}), not from the game",
                               f"Raise budget above {k}.")
        alias = _aliased_pair(_np64(x)[pos]) if exact_cols is not None and exact_cols.any() else None
        if alias is not None:
            assert exact_cols is not None
            se[:, torch.from_numpy(exact_cols)] = float("nan")
            i, j, zi, zj = alias
            how = {(1, 1): f"players {i} and {j} are never drawn together",
                   (0, 0): f"players {i} and {j} are never removed together",
                   (1, 0): f"player {i} is never drawn without player {j}",
                   (0, 1): f"player {j} is never drawn without player {i}"}[(zi, zj)]
            warn_undefined("lime", f"for {int(exact_cols.sum())} of {n_cols} (sample, target) columns an "
                                   f"additive model fits the {distinct} drawn coalitions exactly, but {how}, so "
                                   "an interaction between them would leave no residual either: the residuals "
                                   "cannot tell the credits exact",
                           f"Raise budget above {k} (every pair of players drawn in all four keep/remove "
                           "combinations).")
    return beta, icpt, se, torch.from_numpy(r2)


#: :func:`_ridge_stream`: with a ridge penalty, a coalition whose copies' leverages sum to at
#: least this is (nearly) interpolated: n + 1 such coalitions leave no residual to estimate from.
_NEAR_EXACT = 0.97


def _max_coalition_leverage(x: torch.Tensor, lev: np.ndarray, wn: np.ndarray) -> float:
    """The largest sum of leverages over the copies of one distinct coalition (weight > 0)."""
    pos = wn > 0
    if not pos.any():
        return 0.0
    _, inverse = np.unique(_np64(x)[pos], axis=0, return_inverse=True)
    return float(np.bincount(inverse.reshape(-1), weights=lev[pos]).max())


#: :func:`_unidentified`: an eigenvalue of the normal matrix below this share of the largest
#: is a direction of coefficients that the design does not determine.
_NULL_SHARE = 1e-10


def _unidentified(a: np.ndarray) -> np.ndarray:
    """Players (indices) whose coefficient the normal matrix ``a`` (intercept first) leaves
    undetermined: ``e_i`` has a component in its null space (eigenvalues below ``_NULL_SHARE``
    of the largest), e.g. two players kept and removed together in every drawn coalition. The
    minimum-norm fit then splits their credit by a convention, not by the game, and a
    sandwich built on that fit says nothing about it (aud51e: an additive 4-player game at
    budget 8, alpha=0, credits off by up to 2.3 with stderr 0 in 78 of 4,800 elements)."""
    vals, vecs = np.linalg.eigh(a)
    null = vecs[:, vals <= _NULL_SHARE * max(float(vals[-1]), 0.0)] if vals.size else vecs[:, :0]
    share = (null[1:] ** 2).sum(1)
    return np.flatnonzero(share > 1e-8)


def _aliased_pair(xn: np.ndarray) -> tuple[int, int, int, int] | None:
    """A pair of players and one of the four keep/remove combinations ``(i, j, zi, zj)`` that no
    row of the 0/1 design ``xn`` shows, or None when every pair shows all four. A pair missing a
    combination cannot show an interaction between its two players: ``z_i z_j`` is then a linear
    function of ``1, z_i, z_j`` on the rows, so the least-squares fit absorbs it into their
    credits and leaves no residual (rev50e, 3 players, budget 6, seed 125: player 0 only drawn
    with player 1, residuals 0, stderr 1e-12, credit off by 0.8)."""
    if xn.shape[0] == 0 or xn.shape[1] < 2:
        return None
    both = xn.T @ xn  # rows keeping i and j
    kept = np.diag(both)
    rows = float(xn.shape[0])
    counts = {(1, 1): both, (1, 0): kept[:, None] - both, (0, 1): kept[None, :] - both,
              (0, 0): rows - kept[:, None] - kept[None, :] + both}
    upper = np.triu(np.ones(both.shape, dtype=bool), 1)
    for (zi, zj), c in counts.items():
        hit = np.argwhere(upper & (c < 0.5))
        if hit.size:
            return int(hit[0, 0]), int(hit[0, 1]), zi, zj
    return None


def _ridge_parts(x: torch.Tensor, w: torch.Tensor, alpha: float) -> tuple[Any, ...]:
    """What :func:`weighted_ridge` derives from the design and weights alone (cached with a
    design from :func:`_cached_design`): ``(xa, xw, A^-1, u, leverages, w, used, distinct, exact,
    unidentified)``.

    ``used`` counts the rows of positive weight, ``distinct`` the distinct coalitions among
    them, and ``exact`` says whether one of those is fitted exactly (its copies' leverages sum
    to 1): a coalition drawn twice adds a row but cannot add a residual (its value is the
    same), so counting rows alone let a fit
    through ``n + 1`` distinct coalitions report stderr ~1e-14 for credits that move by 3
    between seeds (3 players, AND game, budget 9, alpha=0: 4 of 100 seeds, aud47e).
    ``unidentified`` lists the players whose coefficient the design cannot determine
    (:func:`_unidentified`; computed for ``alpha == 0`` only, empty otherwise)."""
    slot = _slot_of(x, w)
    key = ("ridge", float(alpha))
    if slot is not None and key in slot:
        return slot[key]  # type: ignore[no-any-return]
    xn, wn = _np64(x), _np64(w)
    k, n = xn.shape
    xa = np.concatenate([np.ones((k, 1)), xn], axis=1)
    xw = xa * wn[:, None]
    a = xa.T @ xw
    a[1:, 1:] += alpha * np.eye(n)
    a_inv = np.linalg.pinv(a, hermitian=True)
    u = xw @ a_inv  # K x (n+1): row k is w_k A^-1 x_k
    lev = np.einsum("kj,kj->k", u, xa)  # K leverages w_k x_k' A^-1 x_k
    pos = wn > 0
    _, inverse = np.unique(xn[pos], axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    used = int(pos.sum())
    distinct = int(inverse.max()) + 1 if inverse.size else 0
    exact = bool((np.bincount(inverse, weights=lev[pos], minlength=distinct) >= 1.0 - 1e-9).any())
    # (only alpha=0 reads it: an eigendecomposition of the (n + 1)^2 normal matrix costs a few
    # times its inverse, which a penalised fit of many players should not pay for nothing)
    unident = _unidentified(a) if alpha == 0 else np.empty(0, dtype=np.int64)
    out = (xa, xw, a_inv, u, lev, wn, used, distinct, exact, unident)
    if slot is not None:
        slot[key] = out
    return out


# Coalitions and kernel weights depend only on (players, budget, sampling, seed, distance,
# width): a process explaining batch after batch with one seed draws them once. Small designs
# (at most _CACHE_ELEMENTS mask entries, _CACHE_SIZE of them) are kept with the parts of the
# ridge fit that depend on them alone; the same operations run in the same order as without
# the cache, so results are bit-identical.
_CACHE_SIZE, _CACHE_ELEMENTS = 8, 1 << 20
_DESIGNS: OrderedDict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor, dict[Any, Any]]] = OrderedDict()
_LOCK = threading.Lock()


def _warn_if_shrunk(masks: torch.Tensor, weights: torch.Tensor, alpha: float) -> None:
    """Warn when the ridge penalty outweighs a player's kernel-weighted spread in the design.

    A coefficient whose column has weighted spread ``s = sum_k w_k (z_ki - zbar_i)^2`` is shrunk
    by ``s / (s + alpha)`` (exactly, for one player or orthogonal columns): with one player the
    empty coalition's cosine distance is 1, its weight ``exp(-8)`` at the default width, so
    ``s`` is about ``3e-4`` over all coalitions and LIME's ``Ridge(alpha=1)`` returned 0.001 of the
    weighted least-squares credit ``v(all) - v(none)`` (0.04 of it from 256 sampled
    coalitions); two or three players over their 4 / 8 coalitions lost 64-80%. ``z`` is 0/1, so
    ``s = W zbar (1 - zbar)`` (``W`` the summed weights): a mat-vec, no copy of the design."""
    if not alpha > 0:
        return
    w = weights.to(torch.float64)
    total = float(w.sum())
    if not total > 0:
        return
    zbar = (w @ masks.to(torch.float64)) / total
    spread = total * zbar * (1.0 - zbar)
    factor = spread / (spread + alpha)
    worst = int(torch.argmin(factor))
    if float(factor[worst]) < 0.5:
        warnings.warn(
            f"lime: the ridge penalty alpha={alpha:g} (LIME's Ridge(alpha=1) by default) outweighs the kernel "
            f"weights of these {masks.shape[0]} coalitions (player {worst}'s weighted spread is "
            f"{float(spread[worst]):.3g}): its credit is about {1 - float(factor[worst]):.0%} smaller than in the "
            "weighted least-squares fit (with one player that fit is v(all) - v(none)). Pass alpha=0 for the "
            "unpenalised fit of Ribeiro et al. (2016), or raise budget / kernel_width.",
            RuntimeWarning, stacklevel=3)


def _cached_design(n: int, m: int, sampling: str, seed: int, distance: str,
                   width: float) -> tuple[torch.Tensor, torch.Tensor]:
    key = (int(n), int(m), sampling, int(seed), distance, float(width))
    with _LOCK:
        hit = _DESIGNS.get(key)
        if hit is not None:
            _DESIGNS.move_to_end(key)
            return hit[0], hit[1]
    g = torch.Generator().manual_seed(seed)
    masks, adjust = sample_coalitions(n, m, sampling, g)
    weights = lime_kernel(masks, distance, float(width)) * adjust
    if masks.numel() <= _CACHE_ELEMENTS:
        with _LOCK:
            _DESIGNS[key] = (masks, weights, {})
            while len(_DESIGNS) > _CACHE_SIZE:
                _DESIGNS.popitem(last=False)
    return masks, weights


def _slot_of(x: torch.Tensor, w: torch.Tensor) -> dict[Any, Any] | None:
    with _LOCK:
        for masks, weights, slot in _DESIGNS.values():
            if masks is x and weights is w:
                return slot
    return None


def clear_design_cache() -> None:
    """Forget the cached LIME designs (benchmarks of cold calls, tests)."""
    with _LOCK:
        _DESIGNS.clear()


def weighted_lasso(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, alpha: float,
                   max_iter: int = 20000, tol: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted lasso with an unpenalised intercept, for many right-hand sides at once.

    Minimises ``(1 / (2 sum w)) sum_k w_k (y_k - c - x_k . beta)^2 + alpha |beta|_1`` —
    scikit-learn's ``Lasso(alpha)`` objective with ``sample_weight`` — by accelerated proximal
    gradient (FISTA with adaptive restart) on the weighted-centred problem, vectorised over the
    ``R`` columns of ``y``. Stops when no coefficient moves more than ``tol`` (relative) or
    after ``max_iter`` iterations.

    Returns:
        ``(beta n x R, intercept R)``.
    """
    xn, yn, wv = _np64(x), _np64(y), _np64(w)
    wn = wv / wv.sum()
    xm, ym = wn @ xn, wn @ yn
    xc, yc = xn - xm, yn - ym
    gram = xc.T @ (xc * wn[:, None])
    q = xc.T @ (yc * wn[:, None])
    lip = float(np.linalg.eigvalsh(gram)[-1]) if gram.size else 0.0
    beta = np.zeros((xn.shape[1], yn.shape[1]))
    if lip > 0:
        step = 1.0 / lip
        z, t = beta.copy(), 1.0
        for _ in range(max_iter):
            nxt = z - step * (gram @ z - q)
            nxt = np.sign(nxt) * np.clip(np.abs(nxt) - step * alpha, 0.0, None)
            delta = float(np.abs(nxt - beta).max())
            if float(((z - nxt) * (nxt - beta)).sum()) > 0:  # restart momentum when it points uphill
                t = 1.0
            t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            z = nxt + ((t - 1.0) / t_next) * (nxt - beta)
            beta, t = nxt, t_next
            if delta <= tol * max(1.0, float(np.abs(beta).max())):
                break
    return torch.from_numpy(beta), torch.from_numpy(ym - xm @ beta)


def weighted_r2(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, beta: torch.Tensor,
                intercept: torch.Tensor) -> torch.Tensor:
    """Weighted R² of the surrogate per column (1 when ``y`` is constant and fitted exactly)."""
    xn, yn, wv = _np64(x), _np64(y), _np64(w)
    pred = xn @ _np64(beta) + _np64(intercept)
    wn = wv / wv.sum()
    ss_res = wn @ (yn - pred) ** 2
    ss_tot = wn @ (yn - wn @ yn) ** 2
    tiny = 1e-12 * (1.0 + wn @ yn**2)
    ok = ss_tot > tiny
    r2 = np.where(ok, 1.0 - ss_res / np.where(ok, ss_tot, 1.0), (ss_res <= tiny).astype(np.float64))
    return torch.from_numpy(r2)


# ----------------------------------------------------------------------- method
@register
class Lime(Method):
    """LIME: coefficients of a proximity-weighted linear surrogate fitted on random coalitions.

    Samples ``budget`` coalitions (the first is the unperturbed input), evaluates the game on
    them and fits ``v(z) ≈ c + sum_i phi_i z_i`` with weights ``exp(-d(z, 1)^2 / (2 width^2))``.
    The fit is closed-form (ridge) or proximal gradient (lasso), batched over all samples and
    targets. ``extra["score"]`` holds the weighted R² of each surrogate and
    ``extra["intercept"]`` its intercept (``batch`` or ``batch x targets``).

    Standard errors: for ``surrogate="ridge"`` the heteroskedasticity-robust (HC2 sandwich;
    HC3 with ``alpha=0`` where the draw misses some coalitions, MacKinnon & White 1985;
    t-inflated for few coalitions, NaN with a warning when none are to spare; with ``alpha=0`` also NaN
    with a warning for players the drawn coalitions cannot separate, and for fits that are exact on
    a draw that never shows some pair of players in one of its four keep/remove combinations, where
    an interaction between them would leave no residual either; with any ``alpha``, NaN with a warning
    for a player the draw never varies) standard error of each coefficient over the random draw of coalitions — how much the
    credits would move with another seed (approximate for ``"stratified"``, whose draws are not
    i.i.d.). None for ``"lasso"`` (no reliable closed form after selection) and for
    ``"exhaustive"`` (nothing is random). They measure the spread over seeds at this budget,
    not the distance to the infinite-budget fit: the penalty ``alpha`` is fixed while the
    summed kernel weights grow with the budget, so the ridge credits are shrunk towards 0 by an
    amount that falls with the budget and that no standard error includes (with ``alpha=1``,
    measured against the unpenalised kernel-weighted fit over all ``2^n`` coalitions, 60
    seeds: 0.28 coverage within 1.96 stderr at 4 players and 200 coalitions of an additive
    game, 0.78 on an MLP; 0.94-0.96 with ``alpha=0``).

    Args:
        sampling: ``"bernoulli"``, ``"uniform_size"``, ``"stratified"`` (Rashid et al. 2024) or
            ``"exhaustive"``; see the module notes. default="bernoulli" (``lime_image``, Captum).
        distance: ``"cosine"`` or ``"hamming"`` distance from the full coalition, both in
            ``[0, 1]``. default="cosine" (``lime_image``).
        kernel_width: kernel width; ``float("inf")`` gives every sample the same weight.
            default=0.25 (``lime_image``'s default, suited to distances in ``[0, 1]``; the
            ``0.75 sqrt(n)`` of ``lime_tabular`` is for Euclidean distances on scaled data).
        surrogate: ``"ridge"`` or ``"lasso"``. default="ridge" (LIME's default).
        alpha: regularisation strength (scikit-learn's ``alpha`` of ``Ridge`` / ``Lasso``).
            default=1.0 (LIME's ``Ridge(alpha=1)``). A ``RuntimeWarning`` says when the ridge
            penalty outweighs a player's kernel-weighted spread (one player, or 2-3 players over
            their few exhaustive coalitions: credits shrunk by more than half); ``alpha=0`` is then
            the weighted least-squares fit of Ribeiro et al. (2016).
        n_samples: alias of ``budget`` for LIME/Captum users (coalitions per input).
            default=None (use ``budget``).

    Budget: ``budget`` coalitions per input; default ``max(256, 8 n + 64)``, or ``2^n`` for
    ``"exhaustive"``.

    Reference: Ribeiro, Singh & Guestrin (2016), "'Why Should I Trust You?': Explaining the
    Predictions of Any Classifier"; stratified sampling: Rashid, Amparore, Ferrari & Verda
    (2024), "Using Stratified Sampling to Improve LIME Image Explanations".
    """

    name = "lime"
    tags = Tags(family="surrogate", stochastic=True, budgeted=True)
    paper = "Ribeiro, Singh & Guestrin (2016), 'Why Should I Trust You?'"
    constraints = declare({
        "sampling": Options(SAMPLINGS), "distance": Options(DISTANCES),
        "surrogate": Options(SURROGATES),
        "kernel_width": Interval(float, 0.0, None, closed="neither"),  # inf: constant weights
        "alpha": Interval(float, 0.0, math.inf, closed="left"),  # inf: a LinAlgError (aud42o)
        "n_samples": (NONE, Interval(int, 1)),
    })

    def __init__(self, sampling: str = "bernoulli", distance: str = "cosine",
                 kernel_width: float = 0.25, surrogate: str = "ridge", alpha: float = 1.0,
                 n_samples: int | None = None) -> None:
        self.sampling = sampling
        self.distance = distance
        self.kernel_width = kernel_width
        self.surrogate = surrogate
        self.alpha = alpha
        self.n_samples = n_samples

    def reads_player_count(self) -> str | None:
        return ("its kernel weighs each coalition by its distance to the full input over every "
                "player, and its coalitions are drawn over every player")

    def _validate(self, game: Game) -> None:
        if self.surrogate == "lasso" and self.alpha == 0:
            raise InputError("lime: surrogate='lasso' with alpha=0 is least squares; use surrogate='ridge', alpha=0.")
        if self.sampling == "exhaustive" and game.n_players > MAX_EXHAUSTIVE:
            raise BudgetError(
                f"lime: sampling='exhaustive' evaluates all 2^{game.n_players} coalitions; it is "
                f"limited to {MAX_EXHAUSTIVE} players. Use sampling='stratified' or group features."
            )

    def min_budget(self, game: Game) -> int:
        return 2**game.n_players if self.sampling == "exhaustive" else 2

    def default_budget(self, game: Game) -> int | None:
        self._validate(game)
        if self.n_samples is not None:
            return self.n_samples
        if self.sampling == "exhaustive":
            return int(2**game.n_players)
        return max(256, 8 * game.n_players + 64)

    budget_param = "n_samples"

    def budget_sets(self, game: Game, budget: int) -> int | None:
        return int(2**game.n_players) if self.sampling == "exhaustive" else int(budget)

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        self._validate(game)
        n = game.n_players
        m = budget if budget is not None else self.default_budget(game)
        assert m is not None
        # explain() checks this too; a direct call (explain_generation, a user's) is refused alike
        check_budget_param(self, {"n_samples": self.n_samples}, game, budget)
        if m < self.min_budget(game):
            raise BudgetError(f"lime: budget={m} is too small; it needs at least {self.min_budget(game)}.")
        if self.sampling == "exhaustive":
            m = 2**n
        masks, weights = _cached_design(n, m, self.sampling, seed, self.distance,
                                        float(self.kernel_width))
        if self.surrogate == "ridge":
            _warn_if_shrunk(masks, weights, float(self.alpha))

        # values: the full coalition is cached by the game (one evaluation)
        b_count, t_count = game.n_samples, game.n_targets
        k_count = int(masks.shape[0])
        full = game.full()  # B x T
        src = game.value(masks[1:]) if k_count > 1 else None  # B x (K-1) x T, sample-major

        stderr = None
        if self.surrogate == "ridge":
            def fill(j0: int, j1: int, out: np.ndarray) -> None:
                # columns j0:j1 are whole samples (all their targets), coalition-major
                s0, s1 = j0 // t_count, j1 // t_count
                dst = torch.from_numpy(out).view(k_count, s1 - s0, t_count)
                dst[0] = full[s0:s1]
                if src is not None:
                    dst[1:].copy_(src[s0:s1].transpose(0, 1))

            # coalitions the sampler can draw: uniform_size never removes every player
            support = 2**n - 1 if self.sampling == "uniform_size" and n >= 2 else 2**n
            beta, intercept, se, score = _ridge_stream(masks, weights, float(self.alpha),
                                                       b_count * t_count, fill, unit=t_count,
                                                       support=support,
                                                       rounding=value_rounding(game, full))
            if self.sampling != "exhaustive":
                stderr = se.T.reshape(b_count, t_count, n)
        else:
            # coalition-major (K x batch x targets): the K x R responses are a view, not a copy
            vals = torch.empty(k_count, b_count, t_count, dtype=torch.float64)
            vals[0] = full
            if src is not None:
                _transpose_into(vals[1:], src)
            y = vals.view(k_count, b_count * t_count)  # K x R
            beta, intercept = weighted_lasso(masks, y, weights, float(self.alpha))
            score = weighted_r2(masks, y, weights, beta, intercept)
        phi = beta.T.reshape(b_count, t_count, n)
        extra: dict[str, Any] = {
            "score": _per_sample(score.reshape(b_count, t_count), game),
            "intercept": _per_sample(intercept.reshape(b_count, t_count), game),
        }
        return game.attribution(phi, self.name, self.get_params(), stderr=stderr, extra=extra)

    budget_rule = "max(256, 8n + 64)"

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """``K x (n+1)`` weighted design (and the HC1 sandwich's scaled copy), ``(n+1)^2`` normal
        matrices, ``K x batch*targets`` responses."""
        n = int(game.n_players)
        k = int(budget if budget is not None else self.default_budget(game) or 2)
        r = int(game.n_samples) * int(game.n_targets)
        return coalition_cost(game, k, design=3 * k * (n + 1) * 8 + 3 * k * r * 8,
                              solve=5 * (n + 1) ** 2 * 8 + 2 * r * (n + 1) * 8,
                              flops=float(2 * k * n * n + 4 * n**3 + 2 * k * n * r),
                              note=f"a {k:,} x {n + 1:,} design and {n + 1:,}^2 normal matrices")


def _transpose_into(dst: torch.Tensor, src: torch.Tensor) -> None:
    """``dst[:] = src.transpose(0, 1)`` for ``src`` of ``B x K x T`` (the game's sample-major
    values) into coalition-major ``dst`` (the lasso's responses; the ridge fit transposes one
    block of samples at a time instead, see :func:`_ridge_stream`), a few samples at a time:
    each step writes whole cache lines of every coalition's row. The same values; one strided
    copy of a large table misses the cache on every element (17,800 samples x 1,023
    coalitions: 164 ms -> 59 ms)."""
    b_count = int(src.shape[0])
    step = max(1, 8 // max(int(src.shape[2]), 1))  # ~64 bytes of float64 per coalition row
    if b_count <= step:
        dst.copy_(src.transpose(0, 1))
        return
    for b in range(0, b_count, step):
        dst[:, b : b + step].copy_(src[b : b + step].transpose(0, 1))


def _per_sample(t: torch.Tensor, game: Game) -> np.ndarray:
    """``batch x targets`` -> numpy, dropping the target axis for single-target calls."""
    arr = t.detach().cpu().numpy()
    return arr if game.layout.multi_target else arr[:, 0]
