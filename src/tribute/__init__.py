"""tribute: attribution you can measure.

Credit a model's output to input features, internal components or training examples, as one
cooperative game, and measure how faithful those credits are.

>>> import tribute  # doctest: +SKIP
>>> attr = tribute.explain(model, x, method="kernel_shap", budget=512)  # doctest: +SKIP
>>> tribute.methods()  # the method registry  # doctest: +SKIP
>>> tribute.evaluate(model, x, attr, metric="deletion").mean  # doctest: +SKIP
>>> tribute.metrics()  # the metric registry  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

# Load the sub-packages first: ``methods`` and ``metrics`` below then rebind these names to the
# listing functions (``import tribute.methods.base`` keeps working through sys.modules).
from . import methods as _methods_package  # noqa: F401
from . import metrics as _metrics_package  # noqa: F401
from .api import GenerationAttribution, PlayerSet, build_game, explain, explain_generation, methods
from .attribution import Attribution
from .errors import (
    BudgetError,
    InputError,
    ModelOutputError,
    ProbabilityClipWarning,
    StderrWarning,
    TributeError,
    UndefinedScoreWarning,
    UnsupportedModelError,
    WeightsFormatError,
)
from .games import Background, FeatureGame, Game, PerSample, patches
from .games.components import Ablation, ComponentGame, ComponentSet, components
from .games.data import DataGame, ModelMismatchWarning, TrainingData
from .jobs import explain_dataset
from .metrics.api import evaluate, metrics
from .metrics.base import MetricResult
from .version import __version__

__all__ = [
    "Ablation",
    "Attribution",
    "Background",
    "BudgetError",
    "ComponentGame",
    "ComponentSet",
    "DataGame",
    "FeatureGame",
    "Game",
    "GenerationAttribution",
    "InputError",
    "MetricResult",
    "ModelMismatchWarning",
    "ModelOutputError",
    "PerSample",
    "PlayerSet",
    "ProbabilityClipWarning",
    "StderrWarning",
    "TrainingData",
    "TributeError",
    "UndefinedScoreWarning",
    "UnsupportedModelError",
    "WeightsFormatError",
    "__version__",
    "build_game",
    "components",
    "evaluate",
    "explain",
    "explain_dataset",
    "explain_generation",
    "methods",
    "metrics",
    "patches",
]

# Concepts and seats (issue #16).
# Analyses: registered methods whose answer is not an Attribution (TCAV, seats, ...).
from .api import AnalysisInfo, DhondtResult, TCAVResult, analyses, dhondt_seats, run_analysis, tcav

__all__ += ["DhondtResult", "TCAVResult", "dhondt_seats", "tcav"]
__all__ += ["AnalysisInfo", "analyses", "run_analysis"]

# CRAFT concepts and SAE features as players (issue #16).
from .api import SAE, CRAFTResult, SAEComponentSet, craft, craft_decompose, sae_features  # noqa: E402

__all__ += ["SAE", "CRAFTResult", "SAEComponentSet", "craft", "craft_decompose", "sae_features"]

# Recourse (feature responsiveness) and certified attributions (issue #16, decide).
from .api import (  # noqa: E402
    Actionability,
    CertifiedResult,
    ResponsivenessResult,
    certified_attribution,
    feature_responsiveness,
)

__all__ += ["Actionability", "CertifiedResult", "ResponsivenessResult", "certified_attribution",
            "feature_responsiveness"]

# Label leakage of feature selections (Jethani et al. 2023; SHAP-KL is output="kl").
from .api import LeakageReport, label_leakage, top_k_selection  # noqa: E402

__all__ += ["LeakageReport", "label_leakage", "top_k_selection"]

# Rashomon feature interaction scores (issue #16).
from .api import RashomonResult, rashomon_interactions  # noqa: E402

__all__ += ["RashomonResult", "rashomon_interactions"]

# Heavier sub-packages load on first use (keeps `import tribute` fast).
_LAZY = {"plot": ".plot", "viz": ".viz", "datasets": ".datasets"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        mod = importlib.import_module(_LAZY[name], __name__)
        globals()[name] = mod
        return mod
    raise AttributeError(f"module 'tribute' has no attribute {name!r}")
