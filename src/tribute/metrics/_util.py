"""Shared helpers of the metrics: rank statistics, coalition sampling, batched game queries."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.stats
import torch

from ..attribution import Attribution
from ..errors import InputError, user_stacklevel
from ..games.base import VALUE_BLOCK_ELEMENTS, Game
from ..models.layout import channels_last, looks_channels_last
from ..params import check_seed
from .base import differing_targets

__all__ = [
    "HEAVY_TAILED_MIN_SAMPLES",
    "MIN_DRAWS",
    "MIN_DRAWS_FOR_ZERO",
    "call_explain",
    "channels_last",
    "draw_stderr",
    "pearson_rows",
    "random_subsets",
    "rank_rows",
    "shared_draw_unknown",
    "spearman_rows",
    "torch_generator",
    "values_per_target",
    "warn_if_channels_last",
]

#: Values of one row closer than this times the row's largest magnitude are tied in ranks.
RANK_TIE_RTOL = 1e-12


def rank_rows(a: np.ndarray) -> np.ndarray:
    """Ranks along the last axis (1..n, ties get their average rank; NaN rows stay NaN).

    Values within ``RANK_TIE_RTOL`` times the row's largest magnitude of their neighbour in
    sorted order are one tie: a game's value of two coalitions that differ only in a dummy
    player (a dead neuron) is the same number computed in another order, a few ulps apart,
    and ranking it as two values split the tie (exact Shapley values got a linear score of
    0.99922, not 1, under mean ablation).
    """
    a = np.asarray(a, dtype=np.float64)
    if a.shape[-1] < 2:
        return np.asarray(scipy.stats.rankdata(a, axis=-1), dtype=np.float64)
    order = np.argsort(a, axis=-1, kind="stable")
    srt = np.take_along_axis(a, order, -1)
    scale = np.where(np.isfinite(a), np.abs(a), 0.0).max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):  # inf - inf: the same value (a tie)
        step = np.diff(srt, axis=-1) > RANK_TIE_RTOL * scale  # a new value starts here
    tie_id = np.concatenate([np.zeros((*a.shape[:-1], 1)), np.cumsum(step, axis=-1)], axis=-1)
    ranked = np.asarray(scipy.stats.rankdata(tie_id, axis=-1), dtype=np.float64)
    out = np.empty_like(ranked)
    np.put_along_axis(out, order, ranked, -1)
    return np.where(np.isnan(a).any(-1, keepdims=True), np.nan, out)


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis; NaN where either side is constant."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    da = a - a.mean(-1, keepdims=True)
    db = b - b.mean(-1, keepdims=True)
    num = (da * db).sum(-1)
    den = np.sqrt((da * da).sum(-1) * (db * db).sum(-1))
    # a side is constant (up to rounding) when its spread is tiny against its magnitude
    scale_a = np.abs(a).max(-1) * a.shape[-1] ** 0.5 + 1e-300
    scale_b = np.abs(b).max(-1) * b.shape[-1] ** 0.5 + 1e-300
    const = (np.sqrt((da * da).sum(-1)) <= 1e-12 * scale_a) | (
        np.sqrt((db * db).sum(-1)) <= 1e-12 * scale_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    return np.where(const, np.nan, np.clip(r, -1.0, 1.0))


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation along the last axis (average ranks for ties)."""
    return pearson_rows(rank_rows(a), rank_rows(b))


def random_subsets(n: int, size: int, count: int, g: torch.Generator) -> torch.Tensor:
    """``count x n`` binary masks, each with exactly ``size`` ones at uniformly random places."""
    if count < 1:
        raise InputError(f"the number of random subsets must be >= 1; got {count}.")
    order = torch.rand(count, n, generator=g, dtype=torch.float64).argsort(dim=1)
    rank = order.argsort(dim=1)
    return (rank < size).to(torch.float32)


def values_shared(game: Game, masks: torch.Tensor) -> torch.Tensor:
    """``game.value`` for shared ``K x n`` masks, in memory-bounded blocks: ``B x K x T``."""
    return game.value(masks, max_elements=VALUE_BLOCK_ELEMENTS)


def values_per_target(
    game: Game,
    make_masks: Callable[[int, int], torch.Tensor],
    k_total: int,
) -> torch.Tensor:
    """Values of per-sample, per-target coalitions: ``B x T x K``.

    Args:
        game: the game.
        make_masks: ``(k0, k1) -> B x T x (k1 - k0) x n`` masks for coalitions ``k0..k1-1``
            (each target may have its own coalitions, e.g. its own deletion order).
        k_total: number of coalitions per target.

    All targets' coalitions are stacked into one ``B x (T*k) x n`` query per block of
    :meth:`Game.value_stream` (the engine batches them); the value for target ``t`` is read
    from target ``t``'s coalitions.
    """
    b, t = game.n_samples, game.n_targets
    out = torch.empty(b, t, k_total, dtype=torch.float64)
    tt = torch.arange(t)

    def make(k0: int, k1: int) -> torch.Tensor:
        return make_masks(k0, k1).reshape(b, t * (k1 - k0), game.n_players)

    for blk in game.value_stream(k_total, make, coalitions_per_item=t, per_sample=True):
        kk = blk.stop - blk.start
        v = blk.values.reshape(b, t, kk, t)  # B x (T*k) x T
        out[:, :, blk.start : blk.stop] = v[:, tt, :, tt].permute(1, 0, 2)
    return out


def torch_generator(seed: Any, name: str = "seed") -> torch.Generator:
    """A local torch generator seeded by ``seed`` (:func:`tribute.params.check_seed`: a
    non-negative int below ``2**64``, else :class:`InputError` naming it).

    The metrics read ``int(seed)`` when called directly on a game: ``seed=1.5`` and
    ``seed=True`` drew seed 1's coalitions, ``seed="3"`` seed 3's and ``seed=-1`` a stream of its
    own, silently, where :func:`tribute.evaluate` and ``deletion`` refuse them (aud43m). The
    ``2**64`` bound lives in ``check_seed`` alone (aud43i; rev43m removed a second copy here).
    """
    return torch.Generator().manual_seed(check_seed(seed, name))


def warn_if_channels_last(shape: tuple[int, ...], what: str, fix: str | None = None,
                          model: Any = None) -> None:
    """Warn where a per-sample image shape looks channels-last (``(H, W, C)``, e.g.
    ``(28, 28, 1)`` or ``(224, 224, 3)``) for code that reads ``(C, H, W)``.

    ROAD's imputation, the ``"square"`` infidelity masks, SSIM maps and :func:`blur` work over
    the last two axes: on ``(8, 8, 3)`` images they imputed, blurred and compared along
    (width, channel) planes, silently (ROAD 1.83 for 1.65 on the same model and credits laid
    out channels-first; aud43m). ``model`` (the game's, where the caller has one) settles
    shapes that read both ways: its first ``Conv2d`` reading 8 channels makes ``(8, 6, 3)``
    an 8-channel image, which the shape rule alone called channels-last (small44;
    :func:`tribute.models.layout.looks_channels_last`).
    """
    if looks_channels_last(tuple(int(d) for d in shape), model):
        warnings.warn(
            f"{what} reads images as (C, H, W) or (H, W) and works over the last two axes; the "
            f"per-sample shape {tuple(shape)} looks channels-last (H, W, C), so it would work "
            f"over (W, C) planes. "
            + (f"Pass {fix} for channels-last images, or give" if fix else "Give")
            + " the model channels-first inputs (e.g. wrap it: "
            "forward(x) = model(x.permute(0, 2, 3, 1)), inputs x.permute(0, 3, 1, 2)).",
            UserWarning, stacklevel=user_stacklevel())


def check_int(value: Any, name: str, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise InputError(f"{name}={value!r} must be an int >= {lo}.")
    return int(value)


def check_fraction(value: Any, name: str, lo_open: bool = True, hi_open: bool = True) -> float:
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    v = float(value) if ok else float("nan")
    lo_ok = v > 0 if lo_open else v >= 0
    hi_ok = v < 1 if hi_open else v <= 1
    if not (ok and lo_ok and hi_ok):
        lo = "(0" if lo_open else "[0"
        hi = "1)" if hi_open else "1]"
        raise InputError(f"{name}={value!r} must be a number in {lo}, {hi}.")
    return v


def accepts(fn: Callable[..., Any], name: str, var_keyword: bool = True) -> bool:
    """Whether ``fn`` takes a keyword argument ``name`` (or ``**kwargs``, unless
    ``var_keyword=False``: then only a parameter of that name counts)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    for p in sig.parameters.values():
        if (var_keyword and p.kind == p.VAR_KEYWORD) or (p.name == name and p.kind in (
                p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)):
            return True
    return False


#: Keywords :func:`call_explain` hands only to a callable with a parameter of that name, never
#: through ``**kwargs``: :func:`tribute.explain` does not take them, and the usual forwarding
#: callable ``lambda x, **kw: tribute.explain(model, x, method=..., **kw)`` failed with
#: "method ... got unknown parameter(s) ['sample']".
NAMED_ONLY = frozenset({"sample"})


def call_explain(fn: Callable[..., Any], *args: Any, metric: str, **optional: Any) -> Attribution:
    """Call a user ``explain`` callable, passing each optional keyword only if it accepts it.

    ``optional`` typically holds ``target`` (per-row targets matching the original
    attribution's) and ``sample`` (which original sample each row comes from). ``sample`` goes
    only to a callable with a parameter named ``sample`` (see :data:`NAMED_ONLY`); the others
    also reach ``**kwargs``.
    """
    kwargs = {k: v for k, v in optional.items() if accepts(fn, k, k not in NAMED_ONLY)}
    out = fn(*args, **kwargs)
    if not isinstance(out, Attribution):
        raise InputError(
            f"metric {metric!r}: the explain callable returned a {type(out).__name__}; it must "
            "return a tribute.Attribution (e.g. lambda x: tribute.explain(model, x, ...))."
        )
    return out


def flat_of(attr: Attribution, b: int, t: int, n: int, metric: str, what: str,
            targets: Any = None) -> np.ndarray:
    """Flat ``B x T x n`` values of a re-explanation, checked against the expected shape and,
    where both are known, against the output columns it was asked for (``targets``, one row
    per re-explained row).

    A callable that drops ``target`` (``lambda x: tribute.explain(model, x, method=...)``, or
    one that takes ``target=`` and ignores it) re-explains the predicted class: per-sample
    credits of classes 0, 2, 1, 2 got a max_sensitivity of 9.03 / 1.13 / 0.29 / 1.75 against
    the predicted classes' credits, where their own is 0.67 / 0.23 / 0.29 / 0.30 (aud47m).
    """
    flat = attr.flat()
    if flat.shape != (b, t, n):
        raise InputError(
            f"metric {metric!r}: {what} returned an attribution with flat shape {flat.shape} "
            f"(batch x targets x players); expected {(b, t, n)} like the original attribution. "
            "Use the same method settings, targets and groups."
        )
    got = getattr(attr, "targets", None)
    diff = None if targets is None or got is None else differing_targets(got, targets)
    if diff is not None:
        mine, want, rows = diff
        i = int(rows[0])
        raise InputError(
            f"metric {metric!r}: {what} returned credits of output column(s) "
            f"{np.atleast_1d(mine[i]).tolist()} for row {i}, but it was asked for column(s) "
            f"{np.atleast_1d(want[i]).tolist()} ({rows.size} of {mine.shape[0]} rows differ), "
            "so the score would compare credits of different classes. A callable that drops "
            "target= should take it and pass it on, e.g. explain=lambda x, **kw: "
            "tribute.explain(model, x, method=..., **kw); one that passes it on to a "
            "classifier whose classes_ are not 0..K-1 should pass classes_[target] (the "
            "metric sends output columns, which such a classifier reads as labels).")
    return flat


def targets_rows(attr: Attribution, sample: np.ndarray) -> np.ndarray | None:
    """The original attribution's targets for rows that come from samples ``sample``."""
    if attr.targets is None:
        return None
    tg = np.asarray(attr.targets)
    return np.asarray(tg[sample])


#: Fewer shared draws than this do not show their noise reliably: the standard error is NaN (see
#: :func:`draw_stderr`). With 4-10 draws the 95% interval covered the metric's expectation in
#: as little as 0.71 of runs (faithfulness_correlation with 4 subsets on the f7 game; 0.71-0.99
#: over 3 models and 10 or 200 samples, 150 seeds); the jackknife's own scatter (and its skew:
#: small exactly where the error is large) is too large to correct.
MIN_DRAWS = 20

#: ``faithfulness_correlation`` (Pearson over drops near 1) and ``infidelity`` (a mean squared
#: error) have heavy-tailed per-sample scores: with default settings their corrected 95%
#: interval covered the expectation 0.69-0.93 of the time at 20-50 samples, 0.82-0.98 at 200
#: (three models, 150 seeds). Below this many samples their ``ci95`` is NaN.
HEAVY_TAILED_MIN_SAMPLES = 200

#: Fewer shared draws than this that all give the same mean score do not show their noise: a
#: standard error of 0 from them is not believed (see :func:`draw_stderr`).
MIN_DRAWS_FOR_ZERO = 30


def shared_draw_unknown(why: str) -> dict[str, Any]:
    """``extra`` entries for a metric whose random draw is shared by every sample and cannot be
    repeated (one set of perturbations whose maximum is taken, one class offset, one random
    model): the spread over samples leaves that draw's noise out, which does not shrink with
    more samples (avg/max sensitivity covered their expectation in 0.59-0.60 of runs at 200
    samples, model randomisation 0.18-0.45). The standard error is
    NaN with a warning (:func:`~tribute.metrics.base.finish`); ``extra["stderr_samples"]`` keeps
    the spread over samples, which describes this draw (this ``seed``) only."""
    return {"stderr_draws": float("nan"), "stderr_draws_dof": float("nan"),
            "stderr_draws_note": f"{why}; its noise does not shrink with more samples and cannot "
                                 "be estimated from one draw, so the standard error is NaN "
                                 "(extra['stderr_samples'] is the spread over samples for this "
                                 "seed only)"}


def draw_stderr(score_of: Callable[[np.ndarray], np.ndarray], k: int, param: str,
                groups: int = 10) -> dict[str, Any]:
    """Standard error of the metric's mean score that comes from its ``k`` shared random draws.

    Delete-a-group jackknife over the draws: the draws are split into ``groups`` blocks, the
    mean score over samples (targets averaged first, NaN samples skipped, as in
    :class:`~tribute.metrics.MetricResult`) is recomputed without each block, and
    ``se^2 = (G - 1) / G * sum_g (theta_(-g) - mean theta)^2``. ``score_of(draws)`` returns the
    ``batch x targets`` scores computed from the draws with those indices (no model
    evaluations: from the values already taken). The across-sample standard error leaves this
    part out, because every sample shares the same draws. NaN when it cannot be formed.

    Returns ``{"stderr_draws": se, "stderr_draws_dof": G - 1, "stderr_draws_skew": s}`` for
    the metric's ``extra``: the jackknife's degrees of freedom (few draws give a noisy ``se``,
    which the interval in :attr:`~tribute.metrics.MetricResult.ci95` must widen for) and the
    skewness of the draws' part of the mean (the blocks' pseudo-values' skewness over
    ``sqrt(G)``), which its skewness correction uses. Where the draws' noise cannot
    be estimated, ``se`` is NaN and ``stderr_draws_note`` says why and which argument
    (``param``) to raise; :func:`~tribute.metrics.base.finish` then reports a NaN standard
    error with a warning. That is the case with fewer than :data:`MIN_DRAWS` draws (with 4
    subsets, ``faithfulness_correlation``'s interval covered 0.71-0.77 of the time on a tanh
    game), and when fewer than :data:`MIN_DRAWS_FOR_ZERO` draws all leave the mean unchanged: with 5 subsets
    every sample's ``linear_score`` was 1.0 in 28% of runs whose expectation is 0.93, and a
    standard error of 0 covered it in none of them.
    """
    g = min(int(groups), int(k))

    def unknown(why: str) -> dict[str, Any]:
        return {"stderr_draws": float("nan"), "stderr_draws_dof": float("nan"),
                "stderr_draws_note": f"{why}; their noise cannot be estimated, so the "
                                     f"standard error is NaN: raise {param} (e.g. to "
                                     f"{max(MIN_DRAWS_FOR_ZERO, 2 * int(k))})"}

    if g < 2:
        return unknown(f"{param}={k}: one shared random draw")
    if k < MIN_DRAWS:
        return unknown(f"{param}={k}: fewer than {MIN_DRAWS} shared random draws")
    everything = np.arange(k)
    thetas = []
    for block in np.array_split(everything, g):
        vals = np.asarray(score_of(np.setdiff1d(everything, block)), dtype=np.float64)
        vals = vals.reshape(vals.shape[0], -1)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            per = np.nanmean(vals, axis=1)
        per = per[np.isfinite(per)]
        if per.size == 0:
            return {"stderr_draws": float("nan"), "stderr_draws_dof": float("nan")}
        thetas.append(float(per.mean()))
    t = np.asarray(thetas)
    se = float(np.sqrt((g - 1) / g * np.sum((t - t.mean()) ** 2)))
    if se == 0.0 and k < MIN_DRAWS_FOR_ZERO:
        return unknown(f"{param}={k}: every shared random draw gave the same mean score")
    # the draws' skewness, from the blocks' pseudo-values g theta - (g - 1) theta_(-g) (their
    # spread is -(g - 1) times the leave-one-out means'), for the interval's correction
    d = -(t - t.mean())
    m2 = float(np.mean(d * d))
    skew = float(np.mean(d**3)) / (m2 * np.sqrt(m2)) / np.sqrt(g) if m2 > 0 else 0.0
    return {"stderr_draws": se, "stderr_draws_dof": float(g - 1), "stderr_draws_skew": skew}
