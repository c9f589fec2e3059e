"""Complexity: how concentrated are the credits? (No model evaluations.)"""

from __future__ import annotations

import math

import numpy as np

from ..attribution import Attribution
from ..games.base import Game
from .base import Scores, check_attribution, register_metric

__all__ = ["complexity", "sparseness"]


def gini(a: np.ndarray) -> np.ndarray:
    """Gini index of non-negative values along the last axis (NaN where all are zero).

    ``G = sum_i (2i - n - 1) a_(i) / (n * sum(a))`` with ``a_(1) <= ... <= a_(n)``: 0 for
    equal values, ``(n - 1) / n`` for a single non-zero value.
    """
    s = np.sort(a, axis=-1)
    n = s.shape[-1]
    i = np.arange(1, n + 1, dtype=np.float64)
    tot = s.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = ((2 * i - n - 1) * s).sum(-1) / (n * tot)
    return np.where(tot > 0, g, np.nan)


@register_metric(
    name="sparseness", higher_is_better=True, category="complexity",
    paper="Chalasani et al. (2020), Concise Explanations of Neural Networks using Adversarial "
          "Training",
    reads_values=False,
)
def sparseness(game: Game, attr: Attribution) -> Scores:
    """Sparseness: the Gini index of ``|phi|`` per sample.

    0 when every player gets the same absolute credit, ``(n - 1) / n`` (about 1) when one
    player gets it all; NaN for an all-zero attribution. Higher means sparser (taken as
    better, as in Chalasani et al. and Quantus). No model evaluations.

    Against Quantus' ``Sparseness`` (same formula): Quantus adds ``1e-7`` to every ``|phi_i|``
    (all-zero credits score 0 there, not NaN; other scores move by about ``1e-7``) and ranks
    input elements, where tribute ranks players (groups, when the attribution has them).

    Reference: Chalasani, Chen, Chowdhury, Wu & Jha (2020), "Concise Explanations of Neural
    Networks using Adversarial Training" (ICML).
    """
    flat = check_attribution(game, attr, "sparseness")
    return Scores(gini(np.abs(flat)))


@register_metric(
    name="complexity", higher_is_better=False, category="complexity",
    paper="Bhatt, Weller & Moura (2020), Evaluating and Aggregating Feature-based Model "
          "Explanations",
    reads_values=False,
)
def complexity(game: Game, attr: Attribution) -> Scores:
    """Complexity: entropy of the fractional contributions ``|phi_i| / sum_j |phi_j|``.

    Normalised by ``log(n)`` so the score lies in ``[0, 1]``: 0 when one player holds all the
    credit, 1 when it is spread evenly; NaN for an all-zero attribution. Lower is better.
    ``extra["entropy"]`` holds the unnormalised entropy in nats. No model evaluations.

    Against Bhatt et al. and Quantus' ``Complexity``: they report the unnormalised entropy,
    which is ``extra["entropy"]`` here (Quantus adds ``1e-12`` inside the logarithm and works
    on input elements, where tribute uses players); the score itself is divided by ``log(n)``
    so that attributions with different numbers of players compare.

    Reference: Bhatt, Weller & Moura (2020), "Evaluating and Aggregating Feature-based Model
    Explanations" (IJCAI).
    """
    flat = check_attribution(game, attr, "complexity")
    a = np.abs(flat)
    tot = a.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = a / tot
        ent = -np.where(p > 0, p * np.log(p), 0.0).sum(-1)
    ent = np.where(tot[..., 0] > 0, ent, np.nan)
    n = flat.shape[-1]
    norm = math.log(n) if n > 1 else 1.0
    ent_out = ent if attr.layout.multi_target else ent[:, 0]
    return Scores(ent / norm, {"entropy": ent_out})
