"""The public entry points: :func:`explain`, :func:`build_game`, :func:`methods`.

The implementations live in their layers (:mod:`tribute.games.build`,
:mod:`tribute.methods.explain`); this module gathers them for users.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .games.base import Game
from .games.build import PlayerSet, framework_of, labels_to_columns
from .games.build import build_game as _build_game
from .games.features import DEFAULT_BASELINE
from .methods.analyses import AnalysisInfo, analysis_infos, run_analysis
from .methods.base import MethodInfo, method_infos
from .methods.certified import CertifiedResult, certified_attribution
from .methods.dhondt import DhondtResult, dhondt_seats
from .methods.explain import explain
from .methods.generation import GenerationAttribution, explain_generation
from .methods.responsiveness import Actionability, ResponsivenessResult, feature_responsiveness
from .methods.tcav import TCAVResult, tcav
from .models import as_model
from .targets import TargetLike

__all__ = ["GenerationAttribution", "PlayerSet", "build_game", "explain", "explain_generation",
           "methods"]
__all__ += ["DhondtResult", "TCAVResult", "dhondt_seats", "tcav"]
__all__ += ["AnalysisInfo", "analyses", "run_analysis"]

# Rashomon feature interaction scores (issue #16).
from .methods.rashomon import RashomonResult, rashomon_interactions  # noqa: E402

__all__ += ["RashomonResult", "rashomon_interactions"]
__all__ += ["Actionability", "CertifiedResult", "ResponsivenessResult", "certified_attribution",
            "feature_responsiveness"]


def build_game(
    model: Any,
    inputs: Any,
    *,
    target: TargetLike = None,
    baseline: Any = DEFAULT_BASELINE,
    groups: Any = None,
    output: str = "raw",
    players: PlayerSet | str | Any = None,
    forward_args: Sequence[Any] | None = None,
    forward_kwargs: dict[str, Any] | None = None,
    feature_names: Sequence[str] | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
    model_output: str | None = None,
    allow_missing: bool = False,
    tokenizer: Any = None,
    removal: Any = None,
    pair: str | None = None,
    include_special: bool = False,
    max_length: int | None = None,
    **settings: Any,
) -> Game:
    """Build the game :func:`explain` would explain (useful for metrics and custom methods).

    Takes :func:`explain`'s game arguments and reads ``target`` as it does: for a
    scikit-learn classifier whose numeric ``classes_`` are not ``0..K-1``, integer targets are
    class labels (``target=2`` is the class labelled 2, not column 2), and the game's targets
    are output columns. The other arguments are those of
    :func:`tribute.games.build.build_game` (text games with ``tokenizer=``, component and
    training-data games with ``players=``).
    """
    if players is None:
        adapter = as_model(model, framework_of(inputs), model_output)
        target = labels_to_columns(adapter, target)  # a classifier's labels -> its columns
        model, model_output = adapter, None
    return _build_game(
        model, inputs, target=target, baseline=baseline, groups=groups, output=output,
        players=players, forward_args=forward_args, forward_kwargs=forward_kwargs,
        feature_names=feature_names, batch_size=batch_size, progress=progress,
        model_output=model_output, allow_missing=allow_missing, tokenizer=tokenizer,
        removal=removal, pair=pair, include_special=include_special, max_length=max_length,
        **settings,
    )


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
