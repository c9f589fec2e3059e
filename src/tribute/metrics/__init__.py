"""Metrics: plain functions of a game and an attribution, registered by name.

>>> res = tribute.evaluate(model, x, attr, metric="deletion")  # doctest: +SKIP
>>> res.mean, res.stderr, res.extra["curve"].shape  # doctest: +SKIP
>>> tribute.metrics()  # name -> MetricInfo (category, higher_is_better, needs, paper)  # doctest: +SKIP

``tribute.metrics`` as an attribute of the package is the listing function; the package
itself is reached with ``from tribute.metrics import ...``. Every registered metric can also
be called directly on a game: ``metric(game, attr, **kw)``
(``from tribute.metrics import deletion; deletion(game, attr, steps=10)``), which is how the bench suites reuse one
game for several metrics. Adding a metric is one function with :func:`register_metric` in a
module of this package.
"""

from __future__ import annotations

from .api import (
    BaselineMismatchWarning,
    Blur,
    OutputMismatchWarning,
    blur,
    default_explainer,
    evaluate,
    metrics,
)
from .base import (
    Metric,
    MetricInfo,
    MetricResult,
    Scores,
    get_metric,
    metric_registry,
    register_metric,
)
from .data import loo_correlation, mislabel_auc
from .faithfulness import (
    deletion,
    faithfulness_correlation,
    infidelity,
    insertion,
    linear_score,
    removal_curve,
    road,
)
from .ground_truth import (
    auroc,
    precision_at_k,
    relevance_mass,
    relevance_rank,
    shapley_error,
)
from .randomisation import model_randomisation, random_logit
from .robustness import avg_sensitivity, max_sensitivity, stability
from .sparsity import complexity, sparseness

__all__ = [
    "BaselineMismatchWarning",
    "Blur",
    "Metric",
    "MetricInfo",
    "MetricResult",
    "OutputMismatchWarning",
    "Scores",
    "auroc",
    "avg_sensitivity",
    "blur",
    "complexity",
    "default_explainer",
    "deletion",
    "evaluate",
    "faithfulness_correlation",
    "get_metric",
    "infidelity",
    "insertion",
    "linear_score",
    "loo_correlation",
    "max_sensitivity",
    "metric_registry",
    "metrics",
    "mislabel_auc",
    "model_randomisation",
    "precision_at_k",
    "random_logit",
    "register_metric",
    "relevance_mass",
    "relevance_rank",
    "removal_curve",
    "road",
    "shapley_error",
    "sparseness",
    "stability",
]
