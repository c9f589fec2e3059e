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
  half); their mean is the AUROC of the detector (Mann–Whitney).
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

__all__ = ["loo_correlation", "mislabel_auc"]


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
    n = game.n_players
    full = game.full()  # B x T
    masks = torch.ones(n, n, dtype=torch.float64) - torch.eye(n, dtype=torch.float64)
    v = game.value(masks)  # B x n x T
    loo = (full[:, None, :] - v).permute(0, 2, 1).numpy()  # B x T x n
    corr = spearman_rows(flat, loo) if rank else pearson_rows(flat, loo)
    return Scores(corr, {"loo": loo if attr.layout.multi_target else loo[:, 0]})


@register_metric(name="mislabel_auc", higher_is_better=True, category="ground_truth",
                 needs=("ground_truth",),
                 paper="Koh & Liang (2017); Pruthi et al. (2020), Estimating Training Data "
                       "Influence by Tracing Gradient Descent (self-influence finds mislabels)",
                 games=("data",))
def mislabel_auc(game: Game, attr: Attribution, *, ground_truth: Any) -> Scores:
    """AUROC of self-influence ``|phi_ii|`` as a detector of flipped training labels.

    ``attr`` must explain the training points themselves (``n_samples == n_players``, sample
    ``i`` = training example ``i``; e.g. ``explain(model, X_train, target=y_train,
    output="loss", players=data)``). Per flipped example: the fraction of clean examples with
    a lower self-influence (ties half), NaN for clean ones, so the mean is the AUROC. No
    model evaluations.

    Args:
        ground_truth: indices of the flipped examples, or a boolean mask over them.
    """
    flat = check_attribution(game, attr, "mislabel_auc")
    n = game.n_players
    if game.n_samples != n:
        raise InputError(
            f"mislabel_auc: the attribution explains {game.n_samples} samples but there are {n} "
            "players; explain the training points themselves (inputs=X_train, target=y_train)."
        )
    gt = np.asarray(ground_truth)
    flipped = np.zeros(n, dtype=bool)
    if gt.dtype == bool:
        if gt.shape != (n,):
            raise InputError(f"mislabel_auc: ground_truth mask has shape {gt.shape}; expected ({n},).")
        flipped = gt.copy()
    else:
        if gt.size and (gt.min() < 0 or gt.max() >= n):
            raise InputError(f"mislabel_auc: ground_truth indices must be in 0..{n - 1}.")
        flipped[gt.astype(np.int64)] = True
    if flipped.all() or not flipped.any():
        raise InputError("mislabel_auc: ground_truth must flag some, but not all, examples.")
    self_inf = np.abs(flat[np.arange(n), 0, np.arange(n)])
    clean = np.sort(self_inf[~flipped])
    lo = np.searchsorted(clean, self_inf, side="left")
    hi = np.searchsorted(clean, self_inf, side="right")
    frac = (lo + 0.5 * (hi - lo)) / len(clean)
    out = np.where(flipped, frac, np.nan)[:, None]
    return Scores(out, {"self_influence": self_inf, "auc": float(np.nanmean(out))})
