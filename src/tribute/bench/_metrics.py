"""Metrics that only make sense inside the benchmark (they need a case's exact truth values).

They are :class:`~tribute.metrics.Metric` objects with the same call contract as the
registry's metrics, but they are *not* registered: ``tribute.metrics()`` stays the list of
metrics a user can run on their own data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..attribution import Attribution
from ..errors import InputError
from ..games.base import Game
from ..metrics.base import Metric, MetricInfo, Scores, check_attribution

__all__ = ["BENCH_METRICS", "truth_error"]


def _truth_error(game: Game, attr: Attribution, *, truth_values: Any = None) -> Scores:
    """Relative L2 error against the case's exact attribution values: ``||phi - phi*|| / ||phi*||``.

    ``phi*`` is known in closed form for the benchmark's symbolic tabular data (exact Shapley
    values of the generating function; observational Shapley values for the "true to the
    data" case). 0 is perfect, 1 is as far as the all-zero attribution. NaN for samples whose
    exact values are all zero. No model evaluations.
    """
    flat = check_attribution(game, attr, "truth_error")
    if truth_values is None:
        raise InputError("metric 'truth_error' needs truth_values=... (batch x players).")
    exact = np.asarray(truth_values, dtype=np.float64)
    if exact.shape != (flat.shape[0], flat.shape[2]):
        raise InputError(f"metric 'truth_error': truth_values has shape {exact.shape}; expected "
                         f"{(flat.shape[0], flat.shape[2])} (batch x players).")
    num = np.linalg.norm(flat - exact[:, None, :], axis=-1)
    den = np.linalg.norm(exact, axis=-1)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(den > 0, num / den, np.nan)
    return Scores(err)


truth_error = Metric(_truth_error, MetricInfo(
    name="truth_error", category="ground_truth", higher_is_better=False,
    needs=("truth_values",),
    paper="Shapley (1953), A Value for n-Person Games; closed forms of tribute.datasets",
    defaults={}, games=("feature",),
    summary=("Relative L2 error against the case's exact attribution values "
             "(||phi - phi*|| / ||phi*||): exact Shapley values of the symbolic generating "
             "function, or observational Shapley values for the 'true to the data' case. "
             "0 is perfect; 1 is as far off as an all-zero attribution."),
))

#: Bench-only metrics by name.
BENCH_METRICS: dict[str, Metric] = {"truth_error": truth_error}
