"""Ground truth: compare credits with a known relevant region or with exact Shapley values.

A truth mask gives, per sample, which players (``batch x players``) or which input elements
(``batch x *input_shape``, or broadcastable to it, e.g. ``batch x H x W`` for
``batch x C x H x W`` images) are relevant; non-zero entries count as relevant. When the truth
is element-level and the attribution credits groups of elements, each element receives its
group's credit divided by the group size (credit density), so totals are preserved.

A mask whose first axis is as long as the batch is read as one mask per sample. A mask of the
input's per-sample shape on a batch of that many samples (``(3, H, W)`` on three ``(3, H, W)``
images) reads both ways: it is taken per sample, with a warning where the two readings differ;
pass ``np.broadcast_to(mask, inputs.shape)`` for one mask shared by every sample, or
``(batch, 1, H, W)`` for one per sample.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from ..attribution import Attribution
from ..errors import InputError, user_stacklevel
from ..games.base import Game
from ..methods.exact import all_coalitions, shapley_from_table
from ._util import RANK_TIE_RTOL, check_int, rank_rows, spearman_rows
from .base import Scores, check_attribution, register_metric
from .faithfulness import check_flag

__all__ = [
    "auroc",
    "element_scores",
    "precision_at_k",
    "relevance_mass",
    "relevance_rank",
    "shapley_error",
    "truth_and_scores",
]

_ARRAS = ("Arras, Osman & Samek (2022), CLEVR-XAI: A Benchmark Dataset for the Ground Truth "
          "Evaluation of Neural Network Explanations")


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        # numpy has no bfloat16: .numpy() raised a raw TypeError (aud45m)
        return (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    return np.asarray(x)


def _check_truth_values(arrs: list[np.ndarray], metric: str) -> list[np.ndarray]:
    """Refuse a truth mask that is not boolean or real numbers, or holds NaN / infinity; an
    object array of Python / numpy booleans and numbers is read as float64.

    Non-zero entries count as relevant, and NaN is non-zero: a mask marking unknown pixels
    NaN flagged them all relevant, silently (relevance_mass 0.956 where the mask with those
    entries 0 gives 0.0); a string mask was all relevant (auroc NaN for every sample) and a
    complex one all irrelevant (aud45m). Object arrays of numbers are what pandas gives for a
    DataFrame of mixed bool / int columns or of nullable ``boolean`` / ``Int64`` columns: they
    were refused by dtype (rev45m), though the mask scored right before.
    """
    out = []
    for j, a in enumerate(arrs):
        part = f"ground_truth{'' if len(arrs) == 1 else f'[{j}]'}"
        if a.dtype.kind == "O" and all(
                isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating)) for v in a.flat):
            a = a.astype(np.float64)
        if a.dtype.kind not in "biuf":
            raise InputError(
                f"metric {metric!r}: {part} has dtype {a.dtype}; pass a boolean mask (or 0/1 "
                "numbers: non-zero entries count as relevant), e.g. mask.astype(bool).")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            bad = np.argwhere(~np.isfinite(a))
            raise InputError(
                f"metric {metric!r}: {part} holds {len(bad)} NaN or infinite entries (first at "
                f"index {tuple(int(i) for i in bad[0])}); a truth mask says relevant (non-zero) "
                "or not (0) for every element: replace them, e.g. np.nan_to_num(mask, nan=0.0) "
                "to count unknown elements as irrelevant.")
        out.append(a)
    return out


def element_scores(attr: Attribution, flat: np.ndarray) -> np.ndarray:
    """Credits per input element, ``B x T x D`` (group credit / group size for groups)."""
    if attr.layout.dense:
        return flat
    if attr.groups is None:
        raise InputError(
            "ground_truth is element-level but the attribution's players are not input "
            f"elements or groups ({attr.player_kind}s); pass a batch x players truth instead."
        )
    g = np.asarray(attr.groups, dtype=np.int64)
    n = flat.shape[-1]
    if g.ndim == 1:
        counts = np.bincount(g, minlength=n).astype(np.float64)
        return flat[..., g] / counts[g]
    counts = np.stack([np.bincount(row, minlength=n) for row in g]).astype(np.float64)
    per = np.take_along_axis(flat, np.broadcast_to(g[:, None, :], (*flat.shape[:2], g.shape[1])), 2)
    dens = np.take_along_axis(counts, g, 1)[:, None, :]
    return per / dens


def _truth_parts(ground_truth: Any, b: int, n_parts: int) -> list[np.ndarray]:
    """The truth's parts: one array per input (a tuple or list of them), or the one array.

    A list that is not one ``batch x ...`` array per input is read as one nested mask:
    ``[[1, 0, 0], [0, 1, 0]]`` flags players of two samples (it was read as two parts, one per
    input, and refused with "ground_truth has shape(s) [(3,), (3,)]; expected (2, 3)").
    """
    if not isinstance(ground_truth, (tuple, list)):
        return [_np(ground_truth)]
    arrs = [_np(p) for p in ground_truth]
    if isinstance(ground_truth, list) and not (
            len(arrs) == n_parts and all(a.ndim >= 1 and a.shape[0] == b for a in arrs)):
        try:
            whole = np.asarray(arrs)
        except ValueError:  # ragged: not one mask
            return arrs
        if whole.dtype != object and whole.ndim >= 1 and whole.shape[0] == b:
            return [whole]
    return arrs


def truth_and_scores(game: Game, attr: Attribution, ground_truth: Any,
                     metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Align a truth mask with the credits: ``(truth B x m bool, credits B x T x m)``."""
    flat = check_attribution(game, attr, metric)
    b, _, n = flat.shape
    if ground_truth is None:
        raise InputError(f"metric {metric!r} needs ground_truth=... (a truth mask per sample).")
    shapes = attr.layout.input_shapes
    arrs = _truth_parts(ground_truth, b, max(len(shapes), 1))
    arrs = _check_truth_values(arrs, metric)
    if len(arrs) == 1 and arrs[0].shape == (b, n):
        return arrs[0] != 0, flat
    if not shapes:  # component or training-example players: no input elements to map
        raise InputError(
            f"metric {metric!r}: ground_truth has shape(s) {[a.shape for a in arrs]}; the "
            f"attribution credits {attr.player_kind} players, which are not input elements, so "
            f"the truth must flag the players themselves: shape ({b}, {n})."
        )
    if len(arrs) != len(shapes):
        raise InputError(
            f"metric {metric!r}: ground_truth has shape(s) {[a.shape for a in arrs]}; expected "
            f"({b}, {n}) (one flag per player) or the inputs' shape(s) "
            f"{[(b, *s) for s in shapes]}."
        )
    flat_parts = []
    for a, s in zip(arrs, shapes):
        s = tuple(int(d) for d in s)
        shared = (b, *s)  # one mask shared by every sample, broadcast over the batch
        looks_shared = 1 <= a.ndim <= len(s) and a.shape == s[len(s) - a.ndim:]
        if a.ndim == 1 and int(np.prod(s, dtype=np.int64)) > 1:
            # aud43m: a vector lacks the batch axis or the element axis; read as one flag per
            # sample it flagged every element of some samples and none of the others. A mask
            # shared by every sample ([1, 1, 0, 0, 0, 0] for 6 features) on a batch of 6 was
            # read so: relevance_mass 1, 1, 0, 0, 0, 0 (0.33 mean) where the mask per sample
            # gives 0.61. rev43m: the message said "one flag per sample" for any length.
            fix = (b, n) if a.shape[0] == n else shared
            raise InputError(
                f"metric {metric!r}: ground_truth has shape {a.shape}, a vector with no axis for "
                f"the batch or none for the players/input elements"
                + (" (read as one flag per sample, each sample would be all relevant or all "
                   "irrelevant)" if a.shape[0] == b else "")
                + f". Pass ({b}, {n}) (one flag per player) or the input shape {shared}; for one "
                f"mask shared by every sample use np.broadcast_to(mask, {fix})."
            )
        if looks_shared and a.shape[0] == b > 1 and a.ndim - 1 < len(s) \
                and not (a.ndim == len(s) >= 3):
            # rev43m: the 2-D analogue of the case above. On 8 images (8, 1, 8, 8) one (8, 8)
            # mask shared by every sample was read as (batch, W) flags broadcast over channels
            # and rows: sample i's truth was row i of the mask, copied down every row
            # (relevance_mass 0, 0, .683, .683, .683, 0, 0, 0 where the shared mask gives .318 each).
            # (batch, H, W) over (C, H, W) images, the documented per-pixel form, is kept.
            raise InputError(
                f"metric {metric!r}: ground_truth has shape {a.shape}, which is both the input's "
                f"per-sample shape (trailing axes {a.shape}: one mask shared by every sample) and "
                f"a batch of {b} masks broadcast over the leading input axes; which is meant is "
                f"ambiguous because the batch size {b} equals its first axis. For one shared mask "
                f"pass np.broadcast_to(mask, {(b, *a.shape)}); for one mask per sample pass it "
                f"with the broadcast axes kept, shape {(b, *([1] * (len(s) - a.ndim + 1)), *a.shape[1:])}."
            )
        full = None
        if a.ndim >= 1 and a.shape[0] == b and a.ndim - 1 <= len(s):
            lifted = a.reshape(b, *([1] * (len(s) - (a.ndim - 1))), *a.shape[1:])
            try:
                full = np.broadcast_to(lifted, (b, *s))
            except ValueError:
                full = None
        if full is not None and b > 1 and a.shape == s \
                and not np.array_equal(full, np.broadcast_to(a, shared)):
            # small44: (C, H, W) on a batch of exactly C images is both the per-pixel form
            # (batch, H, W) and one (C, H, W) mask shared by every image. The documented rule
            # (a first axis as long as the batch is the batch) reads it per image; where the two
            # readings differ, say so: a channel-0 region shared by 3 RGB images scored
            # relevance_mass .357 / 0 / 0 read per image, .122 / .091 / .096 shared.
            warnings.warn(
                f"metric {metric!r}: ground_truth has shape {a.shape}, both the input's per-sample "
                f"shape (one mask shared by every sample) and a batch of {b} masks broadcast over "
                f"axis 1 of the input (the per-pixel form); it is read as one mask per sample, "
                f"because its first axis is as long as the batch. For one shared mask pass "
                f"np.broadcast_to(mask, {shared}); to say one mask per sample (and silence this) "
                f"pass shape {(b, 1, *a.shape[1:])}.",
                UserWarning, stacklevel=user_stacklevel())
        if full is None:
            raise InputError(
                f"metric {metric!r}: ground_truth has shape {a.shape}, which does not match the "
                f"input shape {(b, *s)} (a per-pixel mask broadcast over channels is fine, e.g. "
                f"{(b, *s[-2:])} for images) nor ({b}, {n}) players"
                + (f"; for one mask shared by every sample use np.broadcast_to(mask, {(b, *a.shape)})"
                   if looks_shared else "") + "."
            )
        flat_parts.append(full.reshape(b, -1))
    truth = np.concatenate(flat_parts, axis=1) != 0
    return truth, element_scores(attr, flat)


def _auroc_rows(score: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """AUROC per row via the Mann-Whitney statistic (ties count half); NaN if one class."""
    r = rank_rows(score)  # B x T x m
    pos = truth[:, None, :].astype(np.float64)
    n_pos = pos.sum(-1)
    n_neg = truth.shape[-1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((r * pos).sum(-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _tie_blocks_desc(score: np.ndarray) -> np.ndarray:
    """Tie block of every element in decreasing-score order (0 = the largest scores), ``B x T x m``.

    Scores within ``RANK_TIE_RTOL`` times the row's largest finite magnitude of their neighbour
    in sorted order are one block, as :func:`~tribute.metrics._util.rank_rows` (auroc) and the
    deletion curves tie them: credits equal but for rounding (``kernel_shap`` of a symmetric
    game, 1e-16 apart) are a tie, not an order.
    """
    order = np.argsort(-score, axis=-1, kind="stable")
    srt = np.take_along_axis(score, order, -1)
    scale = np.where(np.isfinite(score), np.abs(score), 0.0).max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):  # inf - inf: the same value (a tie)
        new = (srt[..., :-1] - srt[..., 1:]) > RANK_TIE_RTOL * scale
    first = np.zeros((*score.shape[:-1], 1), dtype=np.int64)
    sorted_block = np.concatenate([first, np.cumsum(new, axis=-1)], axis=-1)
    block = np.empty_like(sorted_block)
    np.put_along_axis(block, order, sorted_block, -1)
    return block


def _precision_top(score: np.ndarray, truth: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Expected fraction of true elements among the top ``k`` (ties broken at random).

    ``score`` is ``B x T x m``, ``truth`` ``B x m``, ``k`` ``B`` (>= 1). Ties as in
    :func:`_tie_blocks_desc` (exact equality split credits equal but for rounding by their
    last bits: precision 0 where the tie's expectation is 1/3; aud43m).
    """
    m = score.shape[-1]
    kk = np.clip(k, 1, m)[:, None, None].astype(np.int64)  # B x 1 x 1
    block = _tie_blocks_desc(score)
    thr = np.take_along_axis(np.sort(block, axis=-1),
                             np.broadcast_to(kk - 1, (*score.shape[:2], 1)), -1)
    above = block < thr
    tied = block == thr
    t = truth[:, None, :]
    n_above = above.sum(-1, keepdims=True)
    n_tied = tied.sum(-1, keepdims=True)
    p_above = (above & t).sum(-1, keepdims=True)
    p_tied = (tied & t).sum(-1, keepdims=True)
    expect = p_above + p_tied * (kk - n_above) / np.maximum(n_tied, 1)
    return np.asarray((expect / kk)[..., 0])


@register_metric(name="auroc", higher_is_better=True, category="ground_truth",
                 needs=("ground_truth",),
                 paper="e.g. Arras, Osman & Samek (2022), CLEVR-XAI; Zhou et al. (2022), Do "
                       "Feature Attribution Methods Correctly Attribute Features?",
                 reads_values=False)
def auroc(game: Game, attr: Attribution, *, ground_truth: Any, absolute: bool = True) -> Scores:
    """AUROC of the credits as a detector of the true region, per sample.

    The probability that a random relevant element/player gets a larger score than a random
    irrelevant one (ties count half): 1 for a perfect ranking, 0.5 for chance. NaN for samples
    whose truth is all relevant or all irrelevant. No model evaluations. Equals Quantus'
    ``AUC`` with ``absolute=False`` (Quantus' default ranks the signed credits).

    Args:
        ground_truth: truth mask (see the module docstring).
        absolute: rank by ``|phi|`` (True) or by signed ``phi``. default=True.
    """
    truth, sc = truth_and_scores(game, attr, ground_truth, "auroc")
    # aud43m: absolute="False" (a non-empty string) ranked |phi| silently, as absolute=True
    absolute = check_flag(absolute, "absolute")
    return Scores(_auroc_rows(np.abs(sc) if absolute else sc, truth))


@register_metric(name="precision_at_k", higher_is_better=True, category="ground_truth",
                 needs=("ground_truth",),
                 paper="e.g. Arras, Osman & Samek (2022), CLEVR-XAI (relevance rank accuracy)",
                 reads_values=False)
def precision_at_k(game: Game, attr: Attribution, *, ground_truth: Any, k: int | None = None,
                   absolute: bool = True) -> Scores:
    """Fraction of the ``k`` top-scored elements/players that are truly relevant.

    Ties at the cut-off are counted in expectation (as if broken at random), so the score never
    depends on element order; credits within ``1e-12`` times the sample's largest ``|credit|``
    are tied (as in :func:`auroc` and the deletion curves), so rounding does not order them.
    No model evaluations.

    Args:
        ground_truth: truth mask (see the module docstring).
        k: how many top elements to check, at most the number of elements (players)
            scored; a larger ``k`` is refused. default=None (the size of each sample's true
            region).
        absolute: rank by ``|phi|`` (True) or by signed ``phi``. default=True.
    """
    truth, sc = truth_and_scores(game, attr, ground_truth, "precision_at_k")
    absolute = check_flag(absolute, "absolute")
    if k is not None and check_int(k, "k") > truth.shape[-1]:
        # it was clipped to the element count silently: precision_at_k(k=20) of 10 elements
        # scored the true share of all elements, a number that answers another question (small39)
        raise InputError(
            f"metric 'precision_at_k': k={k} is larger than the {truth.shape[-1]} players/elements the truth "
            f"mask scores per sample; choose k <= {truth.shape[-1]}, or k=None for the size of each sample's true "
            "region.")
    kk = truth.sum(-1) if k is None else np.full(truth.shape[0], check_int(k, "k"))
    out = _precision_top(np.abs(sc) if absolute else sc, truth, kk)
    return Scores(np.where(kk[:, None] > 0, out, np.nan))


@register_metric(name="relevance_mass", higher_is_better=True, category="ground_truth",
                 needs=("ground_truth",), paper=_ARRAS, reads_values=False)
def relevance_mass(game: Game, attr: Attribution, *, ground_truth: Any,
                   absolute: bool = False) -> Scores:
    """Relevance mass accuracy: share of the positive credit that falls inside the true region.

    ``sum_{i in GT} max(phi_i, 0) / sum_i max(phi_i, 0)`` (with ``absolute``, ``|phi|``
    instead of the positive part); NaN when there is no positive credit. 1 is best. No model
    evaluations. Quantus' ``RelevanceMassAccuracy`` divides the signed sums (negative credits
    not clipped; ``abs=True`` there is ``absolute=True`` here): the two agree when no credit
    is negative.

    Args:
        ground_truth: truth mask (see the module docstring).
        absolute: use ``|phi|`` instead of the positive part. default=False.

    Reference: Arras, Osman & Samek (2022), "CLEVR-XAI".
    """
    truth, sc = truth_and_scores(game, attr, ground_truth, "relevance_mass")
    absolute = check_flag(absolute, "absolute")
    r = np.abs(sc) if absolute else np.clip(sc, 0.0, None)
    tot = r.sum(-1)
    inside = (r * truth[:, None, :]).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = inside / tot
    return Scores(np.where(tot > 0, out, np.nan))


@register_metric(name="relevance_rank", higher_is_better=True, category="ground_truth",
                 needs=("ground_truth",), paper=_ARRAS, reads_values=False)
def relevance_rank(game: Game, attr: Attribution, *, ground_truth: Any) -> Scores:
    """Relevance rank accuracy: share of the ``K = |GT|`` highest credits that lie in the truth.

    Uses the signed credits (the most positive ones), as in CLEVR-XAI; ties at the cut-off are
    counted in expectation. For ranking by ``|phi|`` or another ``k`` see
    :func:`precision_at_k`. No model evaluations. Equals Quantus' ``RelevanceRankAccuracy``
    (signed by default too) but for ties at the cut-off, which Quantus breaks by its sort.

    Reference: Arras, Osman & Samek (2022), "CLEVR-XAI".
    """
    truth, sc = truth_and_scores(game, attr, ground_truth, "relevance_rank")
    kk = truth.sum(-1)
    out = _precision_top(sc, truth, kk)
    return Scores(np.where(kk[:, None] > 0, out, np.nan))


def check_max_players(n: int, max_players: Any, where: str = "", text: bool = False) -> None:
    """Refuse ``shapley_error`` on ``n`` players above ``max_players`` (``where``: which input
    has them, appended to the message; ``text``: players of a text, which take no ``groups=``)."""
    if n > check_int(max_players, "max_players"):
        # rev50x: texts were told to pass groups=, which texts refuse ("do not apply to texts")
        fewer = ("Use coarser players (players='sentences', or 'words' for tokens)" if text
                 else "Group players (groups=...)")
        raise InputError(
            f"metric 'shapley_error' enumerates all 2^{n} coalitions{where}; it is limited to "
            f"max_players={max_players}. {fewer} or raise max_players."
        )


@register_metric(name="shapley_error", higher_is_better=False, category="ground_truth",
                 paper="Shapley (1953), A Value for n-Person Games (exact enumeration)")
def shapley_error(game: Game, attr: Attribution, *, max_players: int = 16) -> Scores:
    """Relative L2 error against exact Shapley values: ``||phi - phi*|| / ||phi*||``.

    ``phi*`` is computed through the game by enumerating all ``2^n`` coalitions (``2^n``
    evaluations per input), so it is limited to ``n <= max_players``; group players to get
    there. NaN for samples whose exact values are all zero. ``extra`` holds the exact values
    (``exact``) and the Spearman correlation with them (``spearman``).

    Args:
        max_players: refuse games with more players. default=16.
    """
    flat = check_attribution(game, attr, "shapley_error")
    n = game.n_players
    check_max_players(n, max_players, text=callable(getattr(game, "players_per_text", None)))
    table = game.value(all_coalitions(n)).permute(0, 2, 1)  # B x T x 2^n
    exact = shapley_from_table(table, n).numpy()
    num = np.linalg.norm(flat - exact, axis=-1)
    den = np.linalg.norm(exact, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = num / den
    err = np.where(den > 0, err, np.nan)
    multi = attr.layout.multi_target
    return Scores(err, {"exact": exact if multi else exact[:, 0],
                        "spearman": (spearman_rows(flat, exact) if multi
                                     else spearman_rows(flat, exact)[:, 0])})
