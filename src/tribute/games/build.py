"""Build the game a call explains: input features by default, or another player set.

:func:`build_game` is what :func:`tribute.explain` and :func:`tribute.evaluate` use; custom
methods and metrics call it too. Player sets other than features (components, training data)
implement the :class:`PlayerSet` protocol.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ..errors import InputError
from ..models import ModelAdapter, as_model
from ..models.tabular import from_polars, prepare_categorical
from ..targets import TargetLike
from .base import Game
from .features import DEFAULT_BASELINE, Background, FeatureGame

__all__ = ["PlayerSet", "build_game", "framework_of"]


@runtime_checkable
class PlayerSet(Protocol):
    """Something that defines players other than input features (components, training data).

    ``tribute.explain(..., players=obj)`` calls ``obj.make_game(model, inputs, **settings)``
    with the adapted model, the user's inputs and the call's settings (target, output,
    baseline, ablation, forward arguments, batch_size, progress) and runs the method on the
    returned game.
    """

    def make_game(self, model: ModelAdapter, inputs: Any, **settings: Any) -> Game: ...


def build_game(
    model: Any,
    inputs: Any,
    *,
    target: TargetLike = None,
    baseline: Any = DEFAULT_BASELINE,
    groups: Any = None,
    output: str = "raw",
    players: PlayerSet | None = None,
    forward_args: Sequence[Any] | None = None,
    forward_kwargs: dict[str, Any] | None = None,
    feature_names: Sequence[str] | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
    model_output: str | None = None,
    allow_missing: bool = False,
    **settings: Any,
) -> Game:
    """Build the game :func:`explain` would explain (useful for metrics and custom methods).

    Must be called inside ``adapter.session()`` when the caller wants the model restored; the
    public functions do that for you. ``allow_missing`` lets NaN through in feature inputs and
    baselines (for methods that read missing values as the model does, such as ``tree_shap``).
    """
    framework = framework_of(inputs)
    adapter = as_model(model, framework, model_output)
    if players is not None:
        if not isinstance(players, PlayerSet):
            raise InputError(
                f"players of type {type(players).__name__} is not a player set; use "
                "tribute.components(model, 'module.path', unit=...) or leave it None for features."
            )
        if groups is not None:
            raise InputError("groups applies to input features; with players=... leave groups=None.")
        return players.make_game(
            adapter, inputs, target=target, baseline=baseline, output=output,
            forward_args=forward_args, forward_kwargs=forward_kwargs, batch_size=batch_size,
            progress=progress, **settings,
        )
    if settings:
        raise InputError(f"unexpected argument(s) {sorted(settings)} for a feature game.")
    # polars tables are read as pandas ones (column names become player names)
    inputs = from_polars(inputs)
    if isinstance(baseline, Background):
        baseline = dataclasses.replace(baseline, data=from_polars(baseline.data))
    else:
        baseline = from_polars(baseline)
    # DataFrames with categorical columns: one player per original column, rows decoded back
    # into the user's values before the model (its own pipeline) sees them.
    adapter, inputs, baseline = prepare_categorical(adapter, inputs, baseline, Background)
    return FeatureGame(
        adapter, inputs, target=target, baseline=baseline, groups=groups, output=output,
        forward_args=forward_args, forward_kwargs=forward_kwargs, feature_names=feature_names,
        batch_size=batch_size, progress=progress, allow_missing=allow_missing,
    )


def framework_of(inputs: Any) -> str:
    """``"torch"`` when the (first) input is a tensor, else ``"numpy"``."""
    import torch

    first = inputs[0] if isinstance(inputs, (tuple, list)) and inputs else inputs
    return "torch" if isinstance(first, torch.Tensor) else "numpy"
