"""Metrics of training-data attribution: ``loo_correlation`` and ``mislabel_auc``.

The linear datamodeling score (LDS) needs nothing new: :func:`tribute.metrics.linear_score` on
a data game draws its random subsets from its own seeded stream (held out from the subsets of
``datamodels``) and gets their values from the retrain bank, so every model is trained once
and shared by every estimator and metric that asks for it.

* ``loo_correlation``: Pearson (or Spearman) correlation, per test point, between the credits
  and exact leave-one-out retraining ``v(all) - v(all without i)``.
* ``mislabel_auc``: explain the training points themselves (``inputs = X_train``,
  ``target = y_train``); the *self-influence* ``|phi_ii|`` of a mislabelled example is large
  (Koh & Liang 2017; Pruthi et al. 2020), so ranking examples by it detects flipped labels.
  The score of each flipped example is the fraction of clean examples it outranks (ties
  half, within a relative 1e-9); their mean is the AUROC of the detector (Mann–Whitney).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..attribution import Attribution
from ..errors import InputError
from ..games.base import Game
from ._util import pearson_rows, spearman_rows
from .base import Scores, check_attribution, register_metric
from .faithfulness import check_flag

__all__ = ["loo_correlation", "mislabel_auc"]

#: Relative difference below which ``mislabel_auc`` counts two self-influences as tied (float64
#: credits; :data:`TIE_RTOL_FLOAT32` for float32 ones, whose rounding alone is ~1e-7).
TIE_RTOL = 1e-9
TIE_RTOL_FLOAT32 = 1e-6


@register_metric(name="loo_correlation", higher_is_better=True, category="faithfulness",
                 paper="Koh & Liang (2017), Understanding Black-box Predictions via Influence "
                       "Functions (correlation with leave-one-out retraining)",
                 games=("data",))
def loo_correlation(game: Game, attr: Attribution, *, rank: bool = False) -> Scores:
    """Correlation, per test point, between the credits and exact leave-one-out retraining.

    ``v(all) - v(all without i)`` for every player (``n + 1`` retrained models, shared through
    the retrain bank). Higher is better.

    Args:
        rank: Spearman (True) or Pearson (False) correlation. default=False.

    ``extra["loo"]``: the leave-one-out differences, ``batch x players``.

    Reference: Koh & Liang (2017), "Understanding Black-box Predictions via Influence
    Functions" (ICML).
    """
    flat = check_attribution(game, attr, "loo_correlation")
    rank = check_flag(rank, "rank")
    n = game.n_players
    full = game.full()  # B x T
    masks = torch.ones(n, n, dtype=torch.float64) - torch.eye(n, dtype=torch.float64)
    v = game.value(masks)  # B x n x T
    loo = (full[:, None, :] - v).permute(0, 2, 1).numpy()  # B x T x n
    corr = spearman_rows(flat, loo) if rank else pearson_rows(flat, loo)
    return Scores(corr, {"loo": loo if attr.layout.multi_target else loo[:, 0]})


def _flipped_indices(gt: np.ndarray, n: int) -> np.ndarray:
    """``mislabel_auc``'s non-boolean ground truth as example indices, refused where ambiguous.

    A 0/1 integer or float mask (``flipped.astype(int)``) read as indices flagged examples 0
    and 1 only, silently: the AUROC of a perfect detector came out 0.67 instead of 1. Indices
    must be distinct whole numbers in ``0..n-1``.
    """
    if gt.ndim > 1 or gt.dtype.kind not in "iuf":
        raise InputError(
            f"mislabel_auc: ground_truth has shape {gt.shape} and dtype {gt.dtype}; pass the "
            f"indices of the flipped examples or a boolean mask of shape ({n},).")
    idx = gt.reshape(-1)
    if idx.size and not np.all(np.isfinite(idx) & (idx == np.round(idx))):
        raise InputError(
            f"mislabel_auc: ground_truth holds non-integer values (e.g. "
            f"{idx[~(np.isfinite(idx) & (idx == np.round(idx)))][0]!r}); pass the indices of the "
            f"flipped examples or a boolean mask of shape ({n},).")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise InputError(f"mislabel_auc: ground_truth indices must be in 0..{n - 1}; got "
                         f"{idx.min():g}..{idx.max():g}.")
    if np.unique(idx).size != idx.size:
        mask_like = idx.size == n and bool(np.all((idx == 0) | (idx == 1)))
        raise InputError(
            "mislabel_auc: ground_truth repeats indices"
            + (f" (it looks like a 0/1 mask of the {n} examples, which would be read as indices "
               "0 and 1)" if mask_like else "")
            + f"; pass distinct indices of the flipped examples or a boolean mask of shape "
              f"({n},), e.g. ground_truth=mask.astype(bool).")
    return idx.astype(np.int64)


def _rounded_copy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Where ``a`` equals ``b`` (same shape): up to a relative ``1e-6`` (float32 rounding), NaN
    equal to NaN, or, where every value of ``a`` is a float16 or bfloat16 number, as that
    dtype's rounding of ``b`` (within half a unit in its last place, double rounding through
    float32 allowed). small45: a bfloat16 copy of ``X_train`` (rounding moves values by up to
    0.4%) was refused as "30 of 30 rows differ" while float32 copies were accepted."""
    if not (a.is_floating_point() and b.is_floating_point()):
        return a == b
    a64, b64 = a.detach().double(), b.detach().double()
    close = torch.isclose(a64, b64, rtol=1e-6, atol=0.0, equal_nan=True)
    if bool(close.all()):
        return close
    finite = torch.isfinite(a64)
    for d in (torch.float16, torch.bfloat16):
        info = torch.finfo(d)
        fits = torch.where(finite, a64.to(d).double() == a64, True)
        if not bool(fits.all()):
            continue  # a holds a value this dtype cannot: not its copy
        _, exp = torch.frexp(a64)  # |a| in [2^(exp-1), 2^exp)
        ulp = torch.clamp(torch.ldexp(torch.ones_like(a64), exp - 1) * info.eps, min=info.tiny * info.eps)
        # a 0 is the rounding of values within half the smallest subnormal only (rev45s: frexp
        # gives 0 the ulp of [0.5, 1), so a float16 "copy" holding 0 where X_train held 2e-4
        # was accepted)
        ulp = torch.where(a64 == 0, info.tiny * info.eps, ulp)
        close |= finite & ((a64 - b64).abs() <= 0.5 * ulp * (1.0 + 2.0**-10))
    return close


def _check_self_explained(game: Game) -> None:
    """Refuse a data game whose test points are not the training points with their own labels.

    Only the count was checked: 40 test points beside 40 training examples scored the
    diagonal of test-by-train credits as self-influences (AUROC 0.72 where the self-influence
    one is 0.97), and ``target=None`` (the predicted class) scored the influence on the
    predicted label's loss, which hides a flipped label behind the model's own guess (0.93)."""
    X_test, X_train = getattr(game, "X_test", None), getattr(game, "X_train", None)
    if isinstance(X_test, torch.Tensor) and isinstance(X_train, torch.Tensor):
        if X_test.shape == X_train.shape:
            # the same rows, NaN included, up to float32, float16 or bfloat16 rounding (a
            # float32 copy of a float64 X_train for a float32 model)
            close = _rounded_copy(X_test, X_train)
            rows = int((~close).reshape(len(X_test), -1).any(1).sum())
        else:
            rows = len(X_test)
        if rows:
            raise InputError(
                f"mislabel_auc: the attribution's inputs are not the training examples ({rows} of "
                f"{len(X_test)} rows differ from X_train); sample i must be training example i. "
                "Explain inputs=X_train (in its order) with target=y_train.")
    y_test, y_train = getattr(game, "y_test", None), getattr(game, "y_train", None)
    by_label = bool(getattr(game, "classifier", False)) or getattr(game, "output", None) == "loss"
    if by_label and isinstance(y_test, torch.Tensor) and isinstance(y_train, torch.Tensor):
        # one target per example, whatever its shape: a regression's y_train of shape (n, 1)
        # beside the game's (n,) targets was refused though target=y_train (rev44z)
        yt, yr = y_test.reshape(len(y_test), -1), y_train.reshape(len(y_train), -1)
        if yt.shape != yr.shape:
            rows = len(y_test)
        else:
            same = _rounded_copy(yt, yr)
            rows = int((~same).any(1).sum())
        if rows:
            raise InputError(
                f"mislabel_auc: the explained targets differ from y_train at {rows} of "
                f"{len(y_train)} examples (target=None or 'predicted' explains the model's own "
                "class); self-influence is the influence of each example on its own training "
                "label. Pass target=y_train.")


@register_metric(name="mislabel_auc", higher_is_better=True, category="ground_truth",
                 needs=("ground_truth",),
                 paper="Koh & Liang (2017); Pruthi et al. (2020), Estimating Training Data "
                       "Influence by Tracing Gradient Descent (self-influence finds mislabels)",
                 games=("data",), reads_values=False)
def mislabel_auc(game: Game, attr: Attribution, *, ground_truth: Any) -> Scores:
    """AUROC of self-influence ``|phi_ii|`` as a detector of flipped training labels.

    ``attr`` must explain the training points themselves (``n_samples == n_players``, sample
    ``i`` = training example ``i``; e.g. ``explain(model, X_train, target=y_train,
    output="loss", players=data)``): other inputs, or targets other than ``y_train``, are
    refused. Per flipped example: the fraction of clean examples with
    a lower self-influence (ties half: within a relative ``1e-9``, ``1e-6`` for float32
    credits, as rounding and iterative solvers split the tie of duplicated rows), NaN for
    clean ones, so the mean is the AUROC
    (``extra["auc"]``; an example whose credits hold a NaN or an infinity is left out: a
    flipped one is not scored and a clean one is no comparison). No
    model evaluations.

    Args:
        ground_truth: distinct indices of the flipped examples, or a boolean mask over the
            training examples (a 0/1 integer mask is refused: it reads as indices).
    """
    flat = check_attribution(game, attr, "mislabel_auc")
    n = game.n_players
    if game.n_samples != n:
        raise InputError(
            f"mislabel_auc: the attribution explains {game.n_samples} samples but there are {n} "
            "players; explain the training points themselves (inputs=X_train, target=y_train)."
        )
    _check_self_explained(game)
    gt = np.asarray(ground_truth)
    flipped = np.zeros(n, dtype=bool)
    if gt.dtype == bool:
        if gt.shape != (n,):
            raise InputError(f"mislabel_auc: ground_truth mask has shape {gt.shape}; expected ({n},).")
        flipped = gt.copy()
    else:
        flipped[_flipped_indices(gt, n)] = True
    if flipped.all() or not flipped.any():
        raise InputError("mislabel_auc: ground_truth must flag some, but not all, examples.")
    self_inf = np.abs(flat[np.arange(n), 0, np.arange(n)])
    # an undefined (NaN) self-influence is no evidence either way: it is not compared with;
    # nor is a clean example whose credits hold a NaN elsewhere, as a flipped one is left out
    # (rev41a: the two sides followed different rules, 0.80 where sklearn's AUROC over the
    # examples with finite credits is 0.75)
    finite_row = np.isfinite(flat[:, 0, :]).all(axis=-1)
    clean = np.sort(self_inf[~flipped & finite_row])
    if clean.size == 0:
        raise InputError("mislabel_auc: no clean example has finite credits (a NaN or an infinity in "
                         "each clean row); check the method's output.")
    # ties (half) within a relative TIE_RTOL: identical training rows have one self-influence in
    # exact arithmetic, but rounding and iterative solvers split it (1e-16 to 2e-11 relative,
    # CG at tol=1e-10), and a split tie between a flipped and a clean copy counted 0 or 1
    # instead of 1/2 (AUROC 0.5546 where the tie-aware 0.5588; grad_cos, whose self-influence is
    # 1 for every example, 0.21 instead of 0.5)
    dtype = str(getattr(attr.values, "dtype", attr.layout.dtype))
    rtol = TIE_RTOL if "float64" in dtype else TIE_RTOL_FLOAT32
    lo = np.searchsorted(clean, self_inf * (1.0 - rtol), side="left")
    hi = np.searchsorted(clean, self_inf / (1.0 - rtol), side="right")
    frac = (lo + 0.5 * (hi - lo)) / len(clean)
    # a flipped example is scored only where its credits are finite (the rule every metric's
    # scores follow, base.undefined_where_not_finite): a NaN self-influence sorted above every
    # clean one and counted as a perfect detection in extra["auc"] (0.78 where the scores'
    # mean, and sklearn's AUROC over the finite examples, were 0.67)
    scored = flipped & finite_row
    out = np.where(scored, frac, np.nan)[:, None]
    auc = float(np.mean(frac[scored])) if scored.any() else float("nan")
    return Scores(out, {"self_influence": self_inf, "auc": auc})
