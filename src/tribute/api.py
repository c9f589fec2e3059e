"""The public entry points: :func:`explain` and :func:`methods`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from .attribution import Attribution
from .engine.memory import resolve_max_memory
from .engine.progress import progress_scope
from .errors import InputError
from .games.base import Game
from .games.features import FeatureGame
from .methods.base import (
    MethodInfo,
    estimate_seconds,
    get_method,
    method_info,
    registry,
    solve_seconds,
)
from .models import ModelAdapter, as_model
from .targets import TargetLike

__all__ = ["PlayerSet", "build_game", "explain", "methods"]


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
    baseline: Any = 0.0,
    groups: Any = None,
    output: str = "raw",
    players: PlayerSet | None = None,
    forward_args: Sequence[Any] | None = None,
    forward_kwargs: dict[str, Any] | None = None,
    feature_names: Sequence[str] | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
    **settings: Any,
) -> Game:
    """Build the game :func:`explain` would explain (useful for metrics and custom methods).

    Must be called inside ``adapter.session()`` when the caller wants the model restored; the
    public functions do that for you.
    """
    framework = _framework_of(inputs)
    adapter = model if isinstance(model, ModelAdapter) else as_model(model, framework)
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
    return FeatureGame(
        adapter, inputs, target=target, baseline=baseline, groups=groups, output=output,
        forward_args=forward_args, forward_kwargs=forward_kwargs, feature_names=feature_names,
        batch_size=batch_size, progress=progress,
    )


def explain(
    model: Any,
    inputs: Any,
    method: str = "kernel_shap",
    target: TargetLike = None,
    baseline: Any = 0.0,
    groups: Any = None,
    budget: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool | None = None,
    *,
    output: str = "raw",
    players: PlayerSet | None = None,
    ablation: Any = None,
    forward_args: Sequence[Any] | None = None,
    forward_kwargs: dict[str, Any] | None = None,
    feature_names: Sequence[str] | None = None,
    max_memory: int | str | None = None,
    **params: Any,
) -> Attribution:
    """Credit the model's output to players (input features by default).

    Args:
        model: a ``torch.nn.Module`` (one or several input tensors), or any callable on numpy
            arrays (scikit-learn estimators use ``predict_proba``, then ``decision_function``,
            then ``predict``).
        inputs: tensor or array with the batch first, or a tuple of them. Results come back in
            the same framework (torch in, torch out; numpy in, numpy out).
        method: registry name (see :func:`methods`). default="kernel_shap".
        target: ``None`` (regression output / predicted class), ``"predicted"``, an int, a
            list of ints (several targets, adds a target axis), one index per sample (1-D array),
            ``batch x targets`` indices, or a callable ``output -> rows``. default=None.
        baseline: removal value: a scalar, an array broadcast to one sample, one per sample, or
            a background set ``M x *shape`` (the value averages over it: interventional SHAP;
            wrap in :class:`tribute.Background` when ``M`` equals the batch). default=0.0.
        groups: which elements form one player: None (every element), an integer mask of ids
            ``0..n-1`` (superpixels, column groups, token spans), or :func:`tribute.patches`.
        budget: model evaluations per input (coalitions or gradient points). default=None
            (the method's own default).
        seed: seed of the method's local random generator. default=0.
        batch_size: rows per forward pass. default=None (automatic).
        progress: show a progress bar (None: on a terminal, for runs over two seconds).
        output: ``"raw"``/``"logit"``, ``"prob"`` (softmax/sigmoid) or ``"log_prob"``.
        players: a player set other than input features, e.g. ``tribute.components(...)``.
        ablation: how removed components are replaced (component games only).
        forward_args, forward_kwargs: extra non-attributed model arguments; tensors whose first
            axis is the batch are indexed per row.
        feature_names: one name per player.
        max_memory: bytes tribute itself may allocate (masks, composed rows, gradients, the
            estimator's solve, results), a number or a string such as ``"8GiB"``. A call whose
            estimate exceeds it is refused before it starts, with settings that fit.
            default=None (half the memory available when the call starts).
        **params: the method's hyperparameters (see ``tribute.methods()[name].defaults``).

    Returns:
        An :class:`Attribution`.

    Example:
        >>> attr = tribute.explain(clf, X[:5], method="exact_shapley", baseline=X.mean(0))
        >>> attr.values.shape
        (5, 13)
    """
    cls = get_method(method)
    unknown = set(params) - set(cls.defaults())
    if unknown:
        raise InputError(
            f"method {method!r} got unknown parameter(s) {sorted(unknown)}; its parameters are "
            f"{sorted(cls.defaults()) or 'none'}."
        )
    estimator = cls(**params)
    framework = _framework_of(inputs)
    adapter = as_model(model, framework)
    extra: dict[str, Any] = {}
    if ablation is not None:
        extra["ablation"] = ablation
    cap = resolve_max_memory(max_memory)
    t0 = time.perf_counter()
    with adapter.session(), progress_scope(0, cls.name, progress) as bar:
        game = build_game(
            adapter, inputs, target=target, baseline=baseline, groups=groups, output=output,
            players=players, forward_args=forward_args, forward_kwargs=forward_kwargs,
            feature_names=feature_names, batch_size=batch_size, progress=progress, **extra,
        )
        game.engine.max_memory = cap
        use_budget = estimator.check(game, budget)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InputError(f"seed={seed!r} must be an int.")
        cost = estimator.estimate_cost(game, use_budget)
        known = estimate_seconds(game.engine, game, cost) is not None  # announced by check()

        def plan(seconds: float) -> str:
            return estimator.plan_message(game, use_budget, cost, seconds)

        bar.replan(cost.rows, estimator.solve_rows(game, cost), None if known else plan,
                   solve_seconds(cost))
        attr = estimator.attribute(game, budget=use_budget, seed=seed)
    attr.seconds = time.perf_counter() - t0
    attr.n_rows = game.engine.n_rows
    attr.params = {**attr.params, "budget": use_budget, "seed": seed, "output": output}
    return attr


def methods() -> dict[str, MethodInfo]:
    """The method registry: name -> :class:`MethodInfo` (tags, paper, default parameters)."""
    return {name: method_info(cls) for name, cls in registry().items()}


def _framework_of(inputs: Any) -> str:
    import torch

    first = inputs[0] if isinstance(inputs, (tuple, list)) and inputs else inputs
    return "torch" if isinstance(first, torch.Tensor) else "numpy"
