"""The public entry points: :func:`explain`, :func:`build_game`, :func:`methods`.

The implementations live in their layers (:mod:`tribute.games.build`,
:mod:`tribute.methods.explain`); this module gathers them for users.
"""

from __future__ import annotations

from .games.build import PlayerSet, build_game
from .methods.analyses import AnalysisInfo, analysis_infos, run_analysis
from .methods.base import MethodInfo, method_infos
from .methods.certified import CertifiedResult, certified_attribution
from .methods.dhondt import DhondtResult, dhondt_seats
from .methods.explain import explain
from .methods.generation import GenerationAttribution, explain_generation
from .methods.responsiveness import Actionability, ResponsivenessResult, feature_responsiveness
from .methods.shap_kl import LeakageReport, label_leakage, top_k_selection
from .methods.tcav import TCAVResult, tcav

__all__ = ["GenerationAttribution", "PlayerSet", "build_game", "explain", "explain_generation",
           "methods"]
__all__ += ["DhondtResult", "TCAVResult", "dhondt_seats", "tcav"]
__all__ += ["AnalysisInfo", "analyses", "run_analysis"]

# Rashomon feature interaction scores (issue #16).
from .methods.rashomon import RashomonResult, rashomon_interactions  # noqa: E402

__all__ += ["RashomonResult", "rashomon_interactions"]
__all__ += ["Actionability", "CertifiedResult", "ResponsivenessResult", "certified_attribution",
            "feature_responsiveness"]
__all__ += ["LeakageReport", "label_leakage", "top_k_selection"]


def methods() -> dict[str, MethodInfo]:
    """The method registry: name -> :class:`MethodInfo` (tags, paper, defaults, constraints).

    Aliases are listed too, as entries whose ``alias_of`` names the method they stand for
    (``shapley`` -> ``gp_shapley``, the recommended Shapley estimator).
    """
    return method_infos()


def analyses() -> dict[str, AnalysisInfo]:
    """The analysis registry: name -> :class:`AnalysisInfo` (kind, paper, summary, result type).

    Analyses are methods whose answer is not a per-player attribution (TCAV scores, D'Hondt
    seats, ...); run one with :func:`run_analysis` or call its function directly.
    """
    return analysis_infos()

# CRAFT concepts and SAE features as players (issue #16).
from .games.sae import SAE, SAEComponentSet, sae_features  # noqa: E402
from .methods.craft import CRAFTResult, craft, craft_decompose  # noqa: E402

__all__ += ["SAE", "CRAFTResult", "SAEComponentSet", "craft", "craft_decompose", "sae_features"]
