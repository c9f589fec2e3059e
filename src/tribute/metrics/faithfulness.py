"""Faithfulness: do the credits predict what happens when players are removed?

All metrics here query the model only through ``game.value`` (per-sample masks
``batch x K x players``, batched by the engine), so they work on every game: input features,
components and training data. The removal operator is the game's: the baseline (or background
set) of a feature game — use ``tribute.evaluate(..., baseline="blur")`` for a blurred copy of
the input — or, for :func:`road`, noisy linear imputation.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..attribution import Attribution
from ..errors import InputError, user_stacklevel
from ..games.base import Game
from ..games.features import FeatureGame
from ..params import check_seed
from ._imputation import ImputedGame
from ._util import (
    HEAVY_TAILED_MIN_SAMPLES,
    RANK_TIE_RTOL,
    channels_last,
    check_fraction,
    check_int,
    draw_stderr,
    pearson_rows,
    random_subsets,
    spearman_rows,
    torch_generator,
    values_per_target,
    values_shared,
    warn_if_channels_last,
)
from .base import Scores, check_attribution, register_metric

__all__ = [
    "deletion",
    "faithfulness_correlation",
    "infidelity",
    "insertion",
    "linear_score",
    "removal_curve",
    "road",
]

_PETSIUK = ("Petsiuk, Das & Saenko (2018), RISE: Randomized Input Sampling for Explanation of "
            "Black-box Models; Bach et al. (2015), On Pixel-Wise Explanations for Non-Linear "
            "Classifier Decisions by Layer-Wise Relevance Propagation (pixel flipping)")


# --------------------------------------------------------------------- curves
def _tie_blocks(src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tied blocks of decreasing-credit order: ``(block, lo)``, each ``B x T x n``.

    ``block[..., i]`` numbers player ``i``'s block of equal credit (0 = largest credit);
    ``lo[..., j]`` is the first *position* of the block holding sorted position ``j``. Credits within ``RANK_TIE_RTOL`` times the row's largest
    magnitude of their neighbour are tied, as in the rank-based metrics.
    """
    order = np.argsort(-src, axis=-1, kind="stable")
    srt = np.take_along_axis(src, order, -1)
    scale = np.abs(src).max(axis=-1, keepdims=True)
    new = np.abs(np.diff(srt, axis=-1)) > RANK_TIE_RTOL * scale  # a new value starts here
    edge = np.ones((*src.shape[:-1], 1), dtype=bool)
    sorted_block = np.concatenate([~edge, new], axis=-1).cumsum(axis=-1)
    pos = np.broadcast_to(np.arange(src.shape[-1]), src.shape)
    starts = np.where(np.concatenate([edge, new], axis=-1), pos, 0)  # a block starts here
    lo = np.maximum.accumulate(starts, axis=-1)
    block = np.empty_like(sorted_block)
    np.put_along_axis(block, order, sorted_block, -1)
    return block, lo


def _tie_order(block: np.ndarray, seed: int, draw: int) -> torch.Tensor:
    """Positions in order ``draw``, which breaks every tie uniformly at random: ``B x T x n``.

    Position 0 is removed first. Players of a lower block always come first; within a block
    the order is a uniform permutation, drawn from numpy's generator seeded by
    ``(seed, draw // 2)`` (float64 draws: the same orders on every CPU). Odd draws are the
    antithetic partner of the draw before: the same permutation reversed within each block,
    so a step that removes the first ``j`` of a tied block in one removes the last ``j`` in
    the other. A pair's mean area had 3.3x (all credits tied) and 6.5x (three tied blocks)
    less variance than two independent orders on the nonlinear game of
    tests/metrics/test_small37_ties.py, and is exact for a linear game (the two positions of
    each player sum to ``n + 1``).

    Row ``(i, t)`` of ``block`` reads draws ``(i * T + t) * n ..`` of the stream: its orders
    depend on its position only, never on the other rows (see :func:`deletion`, "Ties").
    """
    u = np.random.default_rng([seed, draw // 2]).random(block.shape)
    if draw % 2:
        u = 1.0 - u
    key = torch.from_numpy(block.astype(np.float64) + 0.5 * u)
    return key.argsort(dim=-1, stable=True).argsort(dim=-1)


def _draw_stderr(per_draw: np.ndarray, tied: np.ndarray) -> np.ndarray:
    """Standard error of the mean over tie orders (axis 0): over antithetic pairs' means
    when the count is even, else over the draws (conservative where a pair is negatively
    correlated); 0 for a sample (and target) none of whose steps splits a tie, NaN for one
    with a split tie and a single order. ``tied``: ``B x T``, whether a step split a tie."""
    r = per_draw.shape[0]
    if not tied.any():
        return np.zeros(per_draw.shape[1:])
    if r == 1:
        se = np.full(per_draw.shape[1:], np.nan)
    else:
        units = per_draw.reshape(r // 2, 2, *per_draw.shape[1:]).mean(1) \
            if r % 2 == 0 and r > 2 else per_draw
        se = np.asarray(units.std(axis=0, ddof=1) / np.sqrt(units.shape[0]))
    # rev37: a sample without a split tie has one curve whatever the order (was NaN with
    # tie_orders=1, and ~1e-16 from re-evaluating its coalition per order, when another
    # sample of the batch had a tie)
    return np.where(tied, se, 0.0)


def _removal_draws(
    game: Game,
    flat: np.ndarray,
    counts: Sequence[int] | np.ndarray,
    *,
    insert: bool,
    reverse: bool,
    tie_orders: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Curves of :func:`removal_curve` under ``tie_orders`` random tie orders: ``R x B x T x S``,
    and, per sample and target (``B x T``), whether any of its steps split a tied block.

    Steps whose cut falls between two blocks of different credit (in every row) are the same
    coalition in every order: they are evaluated once and repeated, so untied credits cost
    ``len(counts)`` coalitions (fewer for the full and the empty one) whatever ``tie_orders``.
    """
    src = -flat if reverse else flat
    block, lo = _tie_blocks(np.asarray(src, dtype=np.float64))
    all_ks = np.asarray(list(counts), dtype=np.int64)
    n = game.n_players
    kept = all_ks if insert else n - all_ks
    is_full, is_empty = kept == n, kept == 0
    # a cut after k players splits a tied block when the block holding position k starts
    # before k: then which of its players go depends on the tie order
    split = np.zeros((*lo.shape[:-1], all_ks.size), dtype=bool)  # B x T x S
    for j, k in enumerate(all_ks):
        if 0 < k < n:
            split[..., j] = lo[..., k] < k
    inside: np.ndarray = np.asarray(split.any(axis=(0, 1)))
    draws = tie_orders if inside.any() else 1
    out = np.empty((draws, game.n_samples, game.n_targets, all_ks.size))
    if is_full.any():
        out[..., is_full] = game.full().numpy()[None, :, :, None]
    if is_empty.any():
        out[..., is_empty] = game.empty().numpy()[None, :, :, None]
    rest = ~(is_full | is_empty)
    # coalitions to evaluate: (draw, step) pairs, draw by draw (one order in memory at a time);
    # a step outside every tie only for draw 0
    pairs = [(r, int(j)) for r in range(draws) for j in np.flatnonzero(rest)
             if r == 0 or inside[j]]
    if pairs:
        pk = torch.as_tensor(all_ks[[j for _, j in pairs]])
        cache: dict[int, torch.Tensor] = {}

        def ranks(r: int) -> torch.Tensor:
            if r not in cache:
                cache.clear()
                cache[r] = _tie_order(block, seed, r)
            return cache[r]

        def make(k0: int, k1: int) -> torch.Tensor:
            keep = torch.empty(game.n_samples, game.n_targets, k1 - k0, n, dtype=torch.float32)
            for c in range(k0, k1):
                rk, k = ranks(pairs[c][0]), int(pk[c])
                keep[:, :, c - k0] = rk < k if insert else rk >= k
            return keep

        vals = values_per_target(game, make, len(pairs)).numpy()  # B x T x pairs
        for c, (r, j) in enumerate(pairs):
            if inside[j]:
                out[r, :, :, j] = vals[:, :, c]
            else:
                out[:, :, :, j] = vals[None, :, :, c]
        # a sample whose cut at step j falls between blocks has one coalition in every order:
        # keep draw 0's value (re-evaluated per order it could differ in the last bits)
        same = inside[None, None, :] & ~split
        out[:, same] = out[0][same][None]
    return out, np.asarray(split.any(axis=-1))


def removal_curve(
    game: Game,
    flat: np.ndarray,
    counts: Sequence[int] | np.ndarray,
    *,
    insert: bool = False,
    reverse: bool = False,
    tie_orders: int = 8,
    seed: int = 0,
) -> np.ndarray:
    """Values after removing (or inserting) the top-``k`` players, for each ``k`` in ``counts``.

    Players of equal credit (within ``RANK_TIE_RTOL`` of the row's largest magnitude) have no
    order of their own: where a step removes only part of a tied block, the value is the
    average over ``tie_orders`` orders that break the ties uniformly at random (seeded by
    ``seed``), a Monte Carlo estimate of the expected curve under random tie-breaking. So the
    curve does not depend on how the players are numbered (up to that Monte Carlo noise); for
    untied credits it is exact and costs nothing extra.

    Args:
        game: the game.
        flat: ``batch x targets x players`` credits.
        counts: numbers of players removed (deletion) or kept (insertion), one per step.
        insert: start from the empty coalition and add players (insertion) instead of removing
            them from the full one (deletion). default=False.
        reverse: use increasing-credit order (least relevant first). default=False.
        tie_orders: random tie orders averaged at steps that split a tied block. default=8.
        seed: seed of the tie orders. default=0.

    Returns:
        ``batch x targets x steps`` float64 values.
    """
    tie_orders = check_int(tie_orders, "tie_orders")
    draws, _ = _removal_draws(game, flat, counts, insert=insert, reverse=reverse,
                              tie_orders=tie_orders, seed=check_seed(seed))
    return np.asarray(draws.mean(axis=0))


def check_flag(value: Any, name: str) -> bool:
    """``value`` as a bool, refused unless it is one (or the int 0 or 1).

    ``bool(value)`` read any non-empty string as True: ``normalise="no"`` normalised the
    deletion curve and ``scale_invariant="False"`` rescaled the credits, silently.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise InputError(f"{name}={value!r} must be True or False.")


def check_positive(value: Any, name: str, *, zero: bool = False) -> float:
    """``value`` as a finite float ``> 0`` (``>= 0`` with ``zero``), else :class:`InputError`."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))
    v = float(value) if ok else float("nan")
    if not (np.isfinite(v) and (v >= 0 if zero else v > 0)):
        raise InputError(f"{name}={value!r} must be a finite number {'>=' if zero else '>'} 0.")
    return v


def _step_counts(n: int, steps: int) -> np.ndarray:
    steps = min(steps, n)
    return np.round(np.arange(steps + 1) * n / steps).astype(np.int64)


def _auc(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trapezoid area under ``y`` (last axis) over ``x``, divided by the x-range (mean height)."""
    span = float(x[-1] - x[0])
    return np.asarray(np.trapezoid(y, x, axis=-1) / (span if span > 0 else 1.0))


def _rescale(curve: np.ndarray, game: Game) -> np.ndarray:
    """``(y - v(empty)) / (v(full) - v(empty))``; NaN where the range is ~0."""
    full = game.full().numpy()[:, :, None]
    empty = game.empty().numpy()[:, :, None]
    rng = full - empty
    scale = np.maximum(np.abs(full), np.abs(empty)) + 1e-12
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (curve - empty) / rng
    return np.where(np.abs(rng) > 1e-9 * scale, out, np.nan)


def _deletion_like(game: Game, attr: Attribution, steps: int, normalise: bool,
                   insert: bool, tie_orders: int, seed: int) -> Scores:
    flat = check_attribution(game, attr, "insertion" if insert else "deletion")
    steps = check_int(steps, "steps")
    normalise = check_flag(normalise, "normalise")
    tie_orders = check_int(tie_orders, "tie_orders")
    seed = check_seed(seed)
    n = game.n_players
    counts = _step_counts(n, steps)
    draws, tied = _removal_draws(game, flat, counts, insert=insert, reverse=False,
                                 tie_orders=tie_orders, seed=seed)  # R x B x T x S
    curve = draws.mean(axis=0)
    x = counts / n
    auc = _auc(curve, x)
    extra: dict[str, object] = {"curve": _squeeze(curve, attr), "fraction": x,
                                "auc": _squeeze(auc, attr)}
    score, per_draw = auc, _auc(draws, x)
    if normalise:
        rescaled = _rescale(curve, game)
        extra["curve_normalised"] = _squeeze(rescaled, attr)
        score = _auc(rescaled, x)
        per_draw = _auc(np.stack([_rescale(d, game) for d in draws]), x)
    extra["stderr_ties"] = _squeeze(_draw_stderr(per_draw, tied), attr)
    return Scores(score, extra)


def _squeeze(a: np.ndarray, attr: Attribution) -> np.ndarray:
    """Drop the target axis (axis 1) unless the attribution has several targets."""
    return a if attr.layout.multi_target else a[:, 0]


@register_metric(name="deletion", higher_is_better=False, category="faithfulness",
                 paper=_PETSIUK)
def deletion(game: Game, attr: Attribution, *, steps: int = 20,
             normalise: bool = False, tie_orders: int = 8, seed: int = 0) -> Scores:
    """Deletion curve: remove players in decreasing-credit order; area under the output curve.

    At step ``j`` of ``steps`` the ``round(j * n / steps)`` players with the largest credit are
    removed (set to the game's baseline — for images use ``baseline="blur"`` in
    :func:`tribute.evaluate` for Petsiuk et al.'s blurred removal) and the explained output is
    recorded. The score is the trapezoid area under that curve over the *fraction* of players
    removed (``x`` in ``[0, 1]``), i.e. the curve's mean height, so it does not depend on the
    number of steps. Lower is better: a faithful attribution makes the output fall fast.

    Ties: players of equal credit (within ``1e-12`` times the sample's largest ``|credit|``)
    have no order, so the score is the *expected* area when ties are broken uniformly at
    random: at a step that removes only part of a tied block, the value is averaged over
    ``tie_orders`` random orders of the ties (seeded; each order is a whole deletion curve,
    so the score is the mean of ``tie_orders`` areas; orders come in antithetic pairs, the
    second reversing the first within each tie, which cuts the variance and makes a tie of
    two players exact). The score therefore does not depend on how players are numbered (up
    to that Monte Carlo noise, ``extra["stderr_ties"]``, from the pairs' means). The orders
    are drawn for each *position* in the batch (and target), independently across samples,
    so that the standard error over samples holds their noise: the same inputs in the same
    order with the same ``seed`` give the same bytes, and a sample's orders do not depend on
    the other samples, but the same sample scored alone, at another position or in another
    word-count group of texts gets other orders, and its score moves by the noise of two
    independent estimates, a few ``stderr_ties`` (the difference has about ``sqrt(2)`` times its
    spread; aud49m: 6 players, 5 of them tied, 0.0017 apart with ``stderr_ties`` 0.0005; rev49k:
    over one ``stderr_ties`` apart in 4 of 12 samples, insertion up to 4.3). Before stop 37
    ties were broken by player index: an all-zero attribution of ``sum_i w_i x_i``
    scored the area of removing players ``0, 1, ...`` first, so permuting the columns changed
    the score. Untied credits give exactly the same curve as before at the same cost: ``steps
    + 1`` evaluations per input (the full coalition is free for feature games); each step
    that splits a tied block costs ``tie_orders`` evaluations instead of one.

    Args:
        steps: number of removal steps (fewer if the game has fewer players). default=20.
        normalise: rescale the curve to ``(v - v(empty)) / (v(full) - v(empty))`` before taking
            the area (NaN for samples with ``v(full) == v(empty)``). default=False.
        tie_orders: random tie orders averaged where a step splits a tied block (an even
            number keeps the antithetic pairs whole). default=8.
        seed: seed of the tie orders. default=0.

    ``extra``: ``curve`` (``batch x steps+1``, the mean over tie orders), ``fraction`` (the
    x-axis), ``auc`` (raw units), ``stderr_ties`` (standard error of each sample's score over
    the tie orders; 0 without ties, NaN with ties and ``tie_orders=1``) and, with
    ``normalise``, ``curve_normalised``.

    Reference: Petsiuk, Das & Saenko (2018), "RISE"; pixel flipping: Bach et al. (2015).
    """
    return _deletion_like(game, attr, steps, normalise, insert=False, tie_orders=tie_orders,
                          seed=seed)


@register_metric(name="insertion", higher_is_better=True, category="faithfulness",
                 paper=_PETSIUK)
def insertion(game: Game, attr: Attribution, *, steps: int = 20,
              normalise: bool = False, tie_orders: int = 8, seed: int = 0) -> Scores:
    """Insertion curve: add players to the empty coalition in decreasing-credit order.

    Mirror image of :func:`deletion`: at step ``j`` only the ``round(j * n / steps)`` players
    with the largest credit are present (the rest at the baseline). The score is the mean
    height of the curve over the fraction of players inserted. Higher is better. Ties in
    credit are broken uniformly at random and averaged over ``tie_orders`` orders, as in
    :func:`deletion` (``extra["stderr_ties"]``); untied credits are exact.

    Args:
        steps: number of insertion steps (fewer if the game has fewer players). default=20.
        normalise: rescale the curve to ``(v - v(empty)) / (v(full) - v(empty))``.
            default=False.
        tie_orders: random tie orders averaged where a step splits a tied block. default=8.
        seed: seed of the tie orders. default=0.

    Reference: Petsiuk, Das & Saenko (2018), "RISE".
    """
    return _deletion_like(game, attr, steps, normalise, insert=True, tie_orders=tie_orders,
                          seed=seed)


@register_metric(
    name="road", higher_is_better=True, category="faithfulness", needs=("image",),
    games=("feature",), reads_values=False,  # removal is its own imputation, not the baseline
    paper="Rong et al. (2022), A Consistent and Efficient Evaluation Strategy for Attribution "
          "Methods (ROAD)",
)
def road(game: Game, attr: Attribution, *,
         fractions: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
         noise: float = 0.01, seed: int = 0, channel_axis: int | None = None) -> Scores:
    """ROAD: remove-and-debias with noisy linear imputation, both removal orders.

    For each fraction ``f``, the ``round(f * n)`` most relevant players (MoRF) — and, on a
    second curve, the least relevant ones (LeRF) — are removed and *imputed*: every removed
    pixel becomes the weighted average of its neighbours (ROAD's linear system, solved for
    all rows at once) plus Gaussian noise of std ``noise``. The score is the mean height of
    ``LeRF - MoRF`` over the fractions: a faithful attribution keeps the output when the least
    relevant pixels go and loses it when the most relevant go. Higher is better. Needs image
    inputs (per-sample shape ``(H, W)`` or ``(C, H, W)``); costs ``2 * len(fractions)``
    evaluations per input, less 2 when ``fractions`` starts at 0 (nothing removed is ``v(N)``,
    already known). Players of equal credit are removed in random order, each curve's point
    averaged over 8 seeded tie orders where it splits a tie (see :func:`deletion`; untied
    credits cost nothing extra). A channel none of whose pixels is kept has nothing to
    impute from and takes the game's baseline: with a background set, the weighted mean of
    the model over the set's rows, each with that channel at the row's values (as the game
    removes players; one model row per background row for those coalitions only).

    Args:
        fractions: fractions of players removed, increasing, in ``[0, 1)``.
            default=(0.0, 0.1, ..., 0.9).
        noise: std of the noise added to imputed values, in input units (ROAD's default for
            normalised images). default=0.01.
        seed: seed of the noise and of the tie orders. default=0.
        channel_axis: the inputs' channel axis, as in :func:`tribute.methods.craft.craft`:
            ``1`` (or None) for ``(batch, C, H, W)`` / ``(batch, H, W)`` images, ``-1`` for
            channels-last ``(batch, H, W, C)`` ones, imputed per channel over ``(H, W)`` (the
            same score as the images permuted to channels-first, noise included). None warns
            where a shape looks channels-last. default=None.

    ``extra``: ``morf`` and ``lerf`` curves (``batch x steps``), ``fraction``, ``auc_morf``,
    ``auc_lerf``.

    Difference with the paper: ROAD reports accuracy after retraining-free removal for a
    dataset; here the curve is the explained output per sample (use ``output="prob"`` for
    probabilities), which makes it a per-sample score with a standard error.

    Reference: Rong, Leemann, Borisov, Kasneci & Kasneci (2022), "A Consistent and Efficient
    Evaluation Strategy for Attribution Methods".
    """
    flat = check_attribution(game, attr, "road")
    if not isinstance(game, FeatureGame):
        raise InputError("metric 'road' imputes image pixels; it needs a feature game.")
    noise = check_positive(noise, "noise (std of the imputation noise)", zero=True)
    try:
        fr = np.asarray(list(fractions), dtype=np.float64)
    except (TypeError, ValueError):
        fr = np.full(1, np.nan)
    if fr.ndim != 1 or fr.size < 2 or not np.all(np.isfinite(fr)) or np.any(np.diff(fr) <= 0) \
            or fr[0] < 0 or fr[-1] >= 1:
        raise InputError(
            f"fractions={fractions!r} must be at least two increasing numbers in [0, 1), e.g. "
            "fractions=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5)."
        )
    n = game.n_players
    counts = np.round(fr * n).astype(np.int64)
    ig = ImputedGame(game, noise=noise, seed=seed, channel_axis=channel_axis)
    morf = removal_curve(ig, flat, counts, seed=seed)  # ties: averaged over random orders
    lerf = removal_curve(ig, flat, counts, reverse=True, seed=seed)
    a_m, a_l = _auc(morf, fr), _auc(lerf, fr)
    extra = {"morf": _squeeze(morf, attr), "lerf": _squeeze(lerf, attr), "fraction": fr,
             "auc_morf": _squeeze(a_m, attr), "auc_lerf": _squeeze(a_l, attr)}
    return Scores(a_l - a_m, extra, n_evals=ig.n_evals)


# ------------------------------------------------------------ random subsets
@register_metric(
    name="linear_score", higher_is_better=True, category="faithfulness",
    paper="Park et al. (2023), TRAK: Attributing Model Behavior at Scale (linear datamodeling "
          "score); Shah et al. (2024), Decomposing and Editing Predictions by Modeling Model "
          "Computation (COAR)",
)
def linear_score(game: Game, attr: Attribution, *, alpha: float = 0.5, n_subsets: int = 100,
                 seed: int = 0) -> Scores:
    """Linear score: Spearman correlation between ``sum(phi over S)`` and ``v(S)``.

    Draws ``n_subsets`` random coalitions ``S`` that each keep ``round(alpha * n)`` players
    (the same coalitions for every sample) and, per sample, correlates the additive
    prediction ``sum_{i in S} phi_i`` with the game's value ``v(S)``. This one formula is the
    linear datamodeling score (LDS) on data games, COAR's check on component games and a
    faithfulness correlation on feature games. Higher is better (1: the credits rank
    coalitions perfectly). Costs ``n_subsets`` evaluations per input.

    Args:
        alpha: fraction of players kept in each coalition, in (0, 1); one that keeps every
            player (``round(alpha * n) == n``, n > 1) is refused. default=0.5.
        n_subsets: number of random coalitions. default=100.
        seed: seed of the coalitions. default=0.

    ``extra``: ``predicted`` and ``actual`` (``batch x n_subsets``) for scatter plots.

    Reference: Park et al. (2023), "TRAK"; Ilyas et al. (2022), "Datamodels"; Shah et al.
    (2024), "Decomposing and Editing Predictions by Modeling Model Computation".
    """
    flat = check_attribution(game, attr, "linear_score")
    a = check_fraction(alpha, "alpha")
    k = check_int(n_subsets, "n_subsets", 3)
    n = game.n_players
    size = min(max(1, round(a * n)), n)
    if size == n > 1:
        # aud45m: every coalition was the full one (alpha=0.92 on 6 players keeps round(5.52) =
        # 6): n_subsets evaluations spent and a NaN score for every sample, with no word
        raise InputError(
            f"metric 'linear_score': alpha={alpha!r} keeps round({a:g} * {n}) = {n} of the {n} "
            "players, so every coalition is the full one and the correlation is undefined; "
            f"choose alpha < {(n - 0.5) / n:.4g} (default 0.5).")
    g = torch_generator(seed)
    masks = random_subsets(n, size, k, g)  # K x n
    v = values_shared(game, masks).permute(0, 2, 1).numpy()  # B x T x K
    pred = flat @ masks.numpy().astype(np.float64).T  # B x T x K
    return Scores(spearman_rows(pred, v),
                  {"predicted": _squeeze(pred, attr), "actual": _squeeze(v, attr),
                   "subset_size": size,
                   **draw_stderr(lambda i: spearman_rows(pred[..., i], v[..., i]), k,
                                 "n_subsets")})


@register_metric(
    name="faithfulness_correlation", higher_is_better=True, category="faithfulness",
    paper="Bhatt, Weller & Moura (2020), Evaluating and Aggregating Feature-based Model "
          "Explanations",
)
def faithfulness_correlation(game: Game, attr: Attribution, *, n_subsets: int = 100,
                             subset_size: int | None = None, seed: int = 0) -> Scores:
    """Faithfulness correlation: Pearson between ``sum(phi over S)`` and the drop from removing S.

    Draws ``n_subsets`` random subsets ``S`` of ``subset_size`` players (shared across
    samples), removes them, and correlates ``sum_{i in S} phi_i`` with
    ``v(N) - v(N \\ S)`` per sample. Higher is better. Costs ``n_subsets`` evaluations per
    input plus ``v(N)`` (free on feature and component games, whose reference pass is ``v(N)``).

    Args:
        n_subsets: number of random subsets. default=100.
        subset_size: players removed per subset. default=None (10% of the players, at
            least 2 when there are 3 players or more, else 1). Not 1 on small games: removing
            one player per subset scores leave-one-out credits (``feature_ablation``,
            ``occlusion`` of one player), which *are* those drops, 1 by construction, so the
            metric would rank them first on any model with fewer than 15 players.
            ``subset_size=n`` (every player in every subset) is refused on games of 2+ players.
        seed: seed of the subsets. default=0.

    Reference: Bhatt, Weller & Moura (2020), "Evaluating and Aggregating Feature-based Model
    Explanations" (IJCAI).
    """
    flat = check_attribution(game, attr, "faithfulness_correlation")
    k = check_int(n_subsets, "n_subsets", 3)
    n = game.n_players
    size = default_subset_size(n) if subset_size is None else check_int(subset_size, "subset_size")
    if size > n:
        raise InputError(f"subset_size={size} exceeds the number of players ({n}).")
    if size == n > 1:
        # aud45m: every subset removed every player: sum(phi) and the drop were the same for
        # each subset, so the score was NaN for every sample after n_subsets evaluations
        raise InputError(
            f"metric 'faithfulness_correlation': subset_size={size} removes all {n} players in "
            "every subset, so the credits' sums and the drops never vary and the correlation is "
            f"undefined; choose subset_size < {n} (default None: 10% of the players).")
    g = torch_generator(seed)
    removed = random_subsets(n, size, k, g)
    v = values_shared(game, 1.0 - removed).permute(0, 2, 1).numpy()  # B x T x K
    drop = game.full().numpy()[:, :, None] - v
    pred = flat @ removed.numpy().astype(np.float64).T
    return Scores(pearson_rows(pred, drop),
                  {"predicted": _squeeze(pred, attr), "actual": _squeeze(drop, attr),
                   "subset_size": size, "min_samples_ci95": HEAVY_TAILED_MIN_SAMPLES,
                   **draw_stderr(lambda i: pearson_rows(pred[..., i], drop[..., i]), k,
                                 "n_subsets")})


def default_subset_size(n: int) -> int:
    """:func:`faithfulness_correlation`'s default: 10% of ``n`` players, at least 2 from 3."""
    return max(1, min(2, n - 1), round(0.1 * n))


@register_metric(
    name="infidelity", higher_is_better=False, category="faithfulness",
    paper="Yeh et al. (2019), On the (In)fidelity and Sensitivity of Explanations",
)
def infidelity(game: Game, attr: Attribution, *, n_perturbations: int = 50,
               perturbation: str = "gaussian", noise: float = 0.2,
               square_size: int | None = None, scale_invariant: bool = False,
               units: str = "auto", seed: int = 0, channel_axis: int | None = None) -> Scores:
    """Infidelity: mean squared error of the credits' linear prediction of output changes.

    Definition used (in the game's mask space): a perturbation ``u`` in ``R^n`` removes a
    fraction ``u_i`` of each player, i.e. evaluates ``v(1 - u)``; for a feature game that is
    the input ``x - u * (x - baseline)``, so ``I = u * (x - baseline)`` in Yeh et al.'s
    notation, and credits measured in output units (``phi_i ~ grad_i * (x_i - b_i)``) predict
    the change as ``u . phi``::

        INFD = E_u[(u . phi - (v(1) - v(1 - u)))^2]

    Perturbations (shared by all samples):

    * ``"gaussian"``: ``u_i ~ N(0, noise^2)`` independently (fractional masks; any
      real-valued game).
    * ``"subset"``: ``u`` is 1 on a random ``noise`` fraction of the players, 0 elsewhere.
    * ``"square"``: Yeh et al.'s square removal: ``u`` is 1 on a random
      ``square_size x square_size`` pixel square (all channels); needs dense (ungrouped)
      image players.

    Credits in *gradient* units (``saliency``, ``smoothgrad``, ``guided_backprop``,
    ``deconvolution``: ``phi_i = df/dx_i``) predict the change as Yeh et al.'s ``I^T phi =
    sum_i u_i (x_i - b_i) phi_i`` instead (``b`` the baseline, or the weighted mean of the
    background rows); ``units`` says which reading applies. Reading gradients as output units
    scored saliency 30-300x worse than Yeh's definition (captum.metrics.infidelity).

    With ``scale_invariant`` the credits are first multiplied by the per-sample least-squares
    scale ``beta = E[(u.phi) d] / E[(u.phi)^2]`` (as in Yeh et al.'s code), so only the
    credits' direction is judged. Lower is better. Costs ``n_perturbations`` evaluations
    per input plus ``v(N)`` (free on feature and component games, whose reference pass is
    ``v(N)``).

    Args:
        n_perturbations: perturbations per sample. default=50.
        perturbation: ``"gaussian"``, ``"subset"`` or ``"square"``. default="gaussian".
        noise: std of ``u`` (gaussian) or fraction removed (subset). default=0.2.
        square_size: side of the removed square in pixels. default=None (a quarter of the
            smaller image side, at least 1).
        scale_invariant: rescale the credits optimally per sample first. default=False.
        units: ``"output"`` (``u . phi``), ``"gradient"`` (``sum u_i (x_i - b_i) phi_i``;
            needs a feature game whose players are the input elements) or ``"auto"``
            (gradient units for the gradient methods named above on such a game, output
            units otherwise; a ``UserWarning`` for unsigned scores, ``smoothgrad_sq``,
            ``vargrad`` and ``sobol``, unless ``scale_invariant``). default="auto".
        seed: seed of the perturbations. default=0.
        channel_axis: the image's channel axis for ``"square"`` (other perturbations have no
            layout): ``1`` (or None) for ``(batch, C, H, W)`` / ``(batch, H, W)``, ``-1`` for
            channels-last ``(batch, H, W, C)``, whose squares then cover ``(H, W)`` in every
            channel. None warns where a shape looks channels-last. default=None.

    ``extra``: ``predicted`` and ``actual`` changes, ``units`` (the reading used).

    Reference: Yeh, Hsieh, Suggala, Inouye & Ravikumar (2019), "On the (In)fidelity and
    Sensitivity of Explanations" (NeurIPS).
    """
    flat = check_attribution(game, attr, "infidelity")
    k = check_int(n_perturbations, "n_perturbations")
    n = game.n_players
    g = torch_generator(seed)
    scale_invariant = check_flag(scale_invariant, "scale_invariant")
    # rev43z: the value checked for every perturbation (as the similarity metrics do), not only
    # for "square": channel_axis=7 or "last" beside "gaussian"/"subset" passed silently
    channels_last(channel_axis, "metric 'infidelity'", [])
    if perturbation == "gaussian":
        noise = check_positive(noise, "noise (std of the gaussian perturbations)")
        _refuse_fractional_on_categorical(game)
        _refuse_fractional_on_thresholded_text(game)
        u = torch.randn(k, n, generator=g, dtype=torch.float64) * float(noise)
    elif perturbation == "subset":
        frac = check_fraction(noise, "noise (fraction removed)", hi_open=False)
        u = random_subsets(n, max(1, round(frac * n)), k, g).double()
    elif perturbation == "square":
        u = _square_masks(game, k, square_size, g, channel_axis)
    else:
        raise InputError(
            f"perturbation={perturbation!r} is not one of 'gaussian', 'subset', 'square'."
        )
    kind = _infidelity_units(game, attr, units, bool(scale_invariant))
    v = values_shared(game, 1.0 - u).permute(0, 2, 1).numpy()  # B x T x K
    d = game.full().numpy()[:, :, None] - v
    if kind == "gradient":  # I = u * (x - b): I^T phi = u . ((x - b) * phi)
        flat = flat * _input_minus_baseline(game)[:, None, :]
    a0 = flat @ u.numpy().T  # B x T x K

    def score(i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, dd = a0[..., i], d[..., i]
        if scale_invariant:
            with np.errstate(invalid="ignore", divide="ignore"):
                beta = (a * dd).sum(-1, keepdims=True) / (a * a).sum(-1, keepdims=True)
            a = a * np.where(np.isfinite(beta), beta, 0.0)
        return ((a - dd) ** 2).mean(-1), a

    infd, a = score(np.arange(k))
    return Scores(infd, {"predicted": _squeeze(a, attr), "actual": _squeeze(d, attr),
                         "units": kind, "min_samples_ci95": HEAVY_TAILED_MIN_SAMPLES,
                         **draw_stderr(lambda i: score(i)[0], k, "n_perturbations")})


def _refuse_fractional_on_categorical(game: Game) -> None:
    """Refuse gaussian (fractional) perturbations on a DataFrame game with categorical columns.

    Such columns are coded as integers and removal only ever swaps a whole value for the
    baseline's; a fraction ``b + m (x - b)`` of a code rounds to another category (``paris +
    0.5 (nice - paris)`` became ``lyon``), so the output change came from a value that neither
    the input nor the baseline holds.
    """
    codec = getattr(getattr(game, "model", None), "codec", None)
    cats = list(getattr(codec, "categorical", None) or [])
    if cats:
        raise InputError(
            "infidelity with perturbation='gaussian' removes a fraction of each player, which "
            f"is undefined for the categorical column(s) {cats[:8]} of this DataFrame (a "
            "blended category code is another category). Use perturbation='subset' (whole "
            "columns removed to the baseline's values)."
        )


def _refuse_fractional_on_thresholded_text(game: Game) -> None:
    """Refuse gaussian (fractional) perturbations on a text game that cannot remove a fraction.

    A text game blends a fractional presence into the input embeddings, except with
    ``removal="delete"`` or where no input embedding module was found: there a token is kept
    where its presence exceeds 0.5 and removed otherwise, so ``v(1 - u)`` with ``u ~ N(0,
    0.2^2)`` was the full text in 48 of 50 draws and infidelity scored exact Shapley values
    by ``E[(u . phi)^2]`` alone (0.19 and 0.52 on two texts, 0.0003 and 0.003 where the
    removal blends embeddings), silently.
    """
    fwd = getattr(getattr(game, "model", None), "fn", None)
    removal = getattr(fwd, "removal", None)
    if removal is None or not hasattr(fwd, "embedding"):
        return  # not a text game's forward
    if removal == "delete" or getattr(fwd, "embedding", None) is None:
        why = ("removal='delete' drops whole tokens" if removal == "delete" else
               "no input embedding module was found to blend a fraction of a token into")
        raise InputError(
            "infidelity with perturbation='gaussian' removes a fraction of each player, but on "
            f"this text game {why}: a token is kept where its presence exceeds 0.5, so almost "
            "no perturbation changes the output. Use perturbation='subset' (whole words "
            "removed), or a removal that blends embeddings (removal='unk'/'mask'/'zero'/'mean' "
            "on a model whose input embedding tribute finds)."
        )


#: Methods whose credits are gradients of the output w.r.t. the input elements.
GRADIENT_UNIT_METHODS = ("saliency", "smoothgrad", "guided_backprop", "deconvolution")


#: Methods whose credits are unsigned scores in neither unit (squared gradients, variances).
SCORE_UNIT_METHODS = ("smoothgrad_sq", "vargrad", "sobol")


def _one_element_per_player(game: Game) -> bool:
    """No groups, or groups that map each input element to its own player (ids 0..n-1 all
    used, so D == n): Yeh et al.'s gradient reading holds for both."""
    return isinstance(game, FeatureGame) and (game.layout.dense or sum(
        int(np.prod(s, dtype=np.int64)) for s in game.input_shapes()) == game.n_players)


def infidelity_unit_problem(game: Game, method: str, scale_invariant: bool = False) -> str | None:
    """Why :func:`infidelity` (``units="auto"``) cannot read ``method``'s credits on ``game`` as
    a prediction of the output change, in a few words; None where it can. The bench marks such
    a (method, case) not applicable instead of ranking it (rev41a); :func:`infidelity` warns."""
    if method in SCORE_UNIT_METHODS and not scale_invariant:
        return "unsigned scores (squared gradients or variances): no reading predicts an output change"
    if method in GRADIENT_UNIT_METHODS and not _one_element_per_player(game):
        return "gradients summed over grouped players: no reading predicts an output change"
    return None


def _infidelity_units(game: Game, attr: Attribution, units: str, scale_invariant: bool) -> str:
    """``"output"`` or ``"gradient"``: how :func:`infidelity` reads the credits."""
    if units not in ("auto", "output", "gradient"):
        raise InputError(f"units={units!r} is not one of 'auto', 'output', 'gradient'.")
    # rev41a: groups np.arange(6) read saliency as output changes, 0.0098 where the ungrouped
    # game gave 4.8e-05 for the same credits, and warned that the players were not single elements
    dense = _one_element_per_player(game)
    if units == "gradient" and not dense:
        raise InputError(
            "infidelity with units='gradient' multiplies each credit by its input element's "
            "x - baseline; it needs a feature game whose players are the input elements (no "
            "groups). Use units='output' for credits in output units."
        )
    if units == "auto":
        problem = infidelity_unit_problem(game, attr.method, scale_invariant)
        if problem is not None and attr.method in SCORE_UNIT_METHODS:
            warnings.warn(
                f"infidelity: the credits of {attr.method!r} are unsigned scores (squared "
                "gradients or variances), neither output changes nor gradients, so no reading of "
                "them predicts the output change and the score compares unlike units. Pass "
                "scale_invariant=True to judge only their direction (Yeh et al. 2019), or compare "
                "methods whose credits are in output units.",
                UserWarning, stacklevel=user_stacklevel())
        elif problem is not None:
            # grouped saliency credits are sums of element gradients: read as output changes
            # they scored 0.009 on a linear model whose exact (input x gradient) credits score
            # 1e-33, with no word; Yeh's reading needs each credited element's x - baseline
            warnings.warn(
                f"infidelity: the credits of {attr.method!r} are gradients (summed over each "
                "player's elements), not output changes, and Yeh et al.'s gradient reading "
                "(sum_i u_i (x_i - b_i) phi_i) needs players that are single input elements, so "
                "on this game's players no reading predicts the output change and the score "
                "compares unlike units. Explain without groups (units='gradient' then applies), "
                "or use a method whose credits are output changes (input_x_gradient, "
                "integrated_gradients, a Shapley method); units='output' scores them as output "
                "changes anyway.", UserWarning, stacklevel=user_stacklevel())
        return "gradient" if dense and attr.method in GRADIENT_UNIT_METHODS else "output"
    return units


def _input_minus_baseline(game: Game) -> np.ndarray:
    """``x - b`` per sample and player, ``B x n`` (b: the background's weighted mean; one
    input element per player)."""
    assert isinstance(game, FeatureGame)
    x = game.inputs_flat().detach().cpu().to(torch.float64)
    base = game.baseline_flat().detach().cpu().to(torch.float64)
    m = int(getattr(game, "n_background", 1))
    if m > 1 and base.shape[0] == m:
        base = (game.background_weights()[:, None] * base).sum(0, keepdim=True)
    diff = x - base
    if not game.layout.dense:  # one element per player: put each in its player's column
        diff = game.elements_to_players(diff.expand(game.n_samples, -1).contiguous())
    return np.asarray(diff.numpy())


def _square_masks(game: Game, k: int, size: int | None, g: torch.Generator,
                  channel_axis: Any = None) -> torch.Tensor:
    shapes: list[tuple[int, ...]] = game.input_shapes() if isinstance(game, FeatureGame) else []
    if not (isinstance(game, FeatureGame) and game.layout.dense and len(shapes) == 1
            and len(shapes[0]) >= 2):
        raise InputError(
            "perturbation='square' needs one image input whose pixels are the players "
            "(per-sample shape (H, W) or (C, H, W), no groups); use 'gaussian' or 'subset'."
        )
    shape = shapes[0]
    last = channels_last(channel_axis, "metric 'infidelity'", [tuple(shape)])
    if channel_axis is None:
        warn_if_channels_last(tuple(shape), "infidelity with perturbation='square'",
                              fix="channel_axis=-1", model=game.model)
    h, w = (shape[0], shape[1]) if last else (shape[-2], shape[-1])
    s = max(1, min(h, w) // 4) if size is None else check_int(size, "square_size")
    if s > min(h, w):
        raise InputError(f"square_size={s} exceeds the image size {(h, w)}.")
    top = torch.randint(0, h - s + 1, (k,), generator=g)
    left = torch.randint(0, w - s + 1, (k,), generator=g)
    rows = torch.arange(h)[None, :]
    cols = torch.arange(w)[None, :]
    in_r = (rows >= top[:, None]) & (rows < top[:, None] + s)  # K x H
    in_c = (cols >= left[:, None]) & (cols < left[:, None] + s)  # K x W
    sq = (in_r[:, :, None] & in_c[:, None, :]).to(torch.float64)  # K x H x W
    if last:  # (H, W, C): the square in every channel (rev43m)
        return sq[..., None].expand(k, h, w, shape[2]).reshape(k, -1)
    lead = int(np.prod(shape[:-2], dtype=np.int64))
    return sq[:, None].expand(k, lead, h, w).reshape(k, -1)
