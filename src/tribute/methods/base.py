"""The method contract, capability tags and the registry.

A method is a class whose constructor stores hyperparameters only (no I/O, no device probing)
and whose :meth:`Method.attribute` turns evaluations of a game into an :class:`Attribution`.
Registering is one decorator; the CLI, the report and the conformance tests read the registry.

Example:
    >>> @register  # doctest: +SKIP
    ... class Occlusion(Method):
    ...     name = "my_occlusion"
    ...     tags = Tags(family="perturbation")
    ...     paper = "Zeiler & Fergus (2014), Visualizing and Understanding Convolutional Networks"
    ...     def attribute(self, game, *, budget=None, seed=0): ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, TypeVar

from ..attribution import Attribution
from ..errors import BudgetError, InputError, UnsupportedModelError
from ..games.base import Game

__all__ = ["Method", "MethodInfo", "Tags", "get_method", "method_info", "register", "registry"]


@dataclass(frozen=True)
class Tags:
    """Capabilities of a method, as data.

    Attributes:
        family: ``"gradient"``, ``"perturbation"``, ``"surrogate"``, ``"shapley"``, ...
        needs_gradients: needs a differentiable (torch) game.
        stochastic: results depend on ``seed``; reports ``stderr``.
        exact: computes the defining quantity exactly (no estimation error).
        needs_baseline: the result depends on the baseline (removal value).
        has_gap: reports a completeness/efficiency gap.
        games: game kinds it works on.
        dense_output: credits every element (ignores ``groups``) — e.g. saliency maps.
        max_players: refuses games with more players (exact enumeration), None = no limit.
        budgeted: takes a ``budget`` of evaluations per input.
        model_specific: needs access to model internals (layers, hooks) beyond the game.
    """

    family: str
    needs_gradients: bool = False
    stochastic: bool = False
    exact: bool = False
    needs_baseline: bool = True
    has_gap: bool = False
    games: tuple[str, ...] = ("feature", "component")
    dense_output: bool = False
    max_players: int | None = None
    budgeted: bool = False
    model_specific: bool = False


class Method:
    """Base class of all estimators.

    Subclasses set ``name``, ``tags`` and ``paper``, declare hyperparameters as keyword
    arguments of ``__init__`` (stored as attributes of the same name) and implement
    :meth:`attribute`.
    """

    name: ClassVar[str] = ""
    tags: ClassVar[Tags] = Tags(family="other")
    paper: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        for k, v in params.items():
            setattr(self, k, v)

    # ------------------------------------------------------------- parameters
    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Hyperparameters and their defaults, read from ``__init__``'s signature."""
        sig = inspect.signature(cls.__init__)
        return {
            p.name: p.default
            for p in sig.parameters.values()
            if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.default is not inspect.Parameter.empty
        }

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k, v) for k, v in self.defaults().items()}

    # ---------------------------------------------------------------- budget
    def min_budget(self, game: Game) -> int:
        """Fewest evaluations per input this method can run with (budgeted methods)."""
        return 1

    def default_budget(self, game: Game) -> int | None:
        """Evaluations per input when the user gives no budget (None: the method's own)."""
        return None

    def check(self, game: Game, budget: int | None) -> int | None:
        """Validate the game and budget; return the budget to use."""
        cls = type(self)
        if game.kind not in cls.tags.games:
            raise UnsupportedModelError(
                f"method {cls.name!r} works on {cls.tags.games} games, not {game.kind!r} games."
            )
        if cls.tags.needs_gradients and not game.differentiable:
            raise UnsupportedModelError(
                f"method {cls.name!r} needs gradients, but this model/input is not differentiable "
                "(a numpy callable, or integer inputs). Use a perturbation method such as "
                "'kernel_shap' or 'feature_ablation', or attribute embeddings."
            )
        if cls.tags.max_players is not None and game.n_players > cls.tags.max_players:
            raise BudgetError(
                f"method {cls.name!r} enumerates all 2^{game.n_players} coalitions "
                f"({2 ** min(game.n_players, 200):.3g} evaluations per input); it is limited to "
                f"{cls.tags.max_players} players. Group features (groups=...) or use "
                "'kernel_shap' / 'permutation_shapley'."
            )
        if budget is not None:
            if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
                raise InputError(f"budget={budget!r} must be a positive int (evaluations per input).")
            need = self.min_budget(game)
            if budget < need:
                raise BudgetError(
                    f"budget={budget} is too small for {cls.name!r} with {game.n_players} players: "
                    f"it needs at least {need} evaluations per input. Raise budget to >= {need} "
                    "or group features to reduce the number of players."
                )
            return budget
        return self.default_budget(game)

    # ------------------------------------------------------------ the method
    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        """Credit each player of ``game``; returns flat credits packed by the game."""
        raise NotImplementedError(f"{type(self).__name__} does not implement attribute()")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


@dataclass(frozen=True)
class MethodInfo:
    """What the registry says about a method (for ``tribute.methods()`` and the CLI)."""

    name: str
    tags: Tags
    paper: str
    defaults: dict[str, Any]
    summary: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tags": asdict(self.tags), "paper": self.paper,
                "defaults": self.defaults, "summary": self.summary}


_REGISTRY: dict[str, type[Method]] = {}
_ALIASES: dict[str, str] = {}

M = TypeVar("M", bound=type[Method])


def register(cls: M) -> M:
    """Class decorator: add a method to the registry under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no registry name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise TypeError(f"method name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def alias(name: str, target: str) -> None:
    """Register ``name`` as another name of method ``target`` (e.g. ``shapley``)."""
    _ALIASES[name] = target


def registry() -> dict[str, type[Method]]:
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def get_method(name: str) -> type[Method]:
    _load_all()
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY) + list(_ALIASES), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise InputError(
            f"method={name!r} is not a registered method.{hint} See tribute.methods() or "
            "`tribute methods` for the list."
        )
    return _REGISTRY[key]


def method_info(cls: type[Method]) -> MethodInfo:
    doc = inspect.getdoc(cls) or ""
    return MethodInfo(cls.name, cls.tags, cls.paper, cls.defaults(), doc.split("\n\n")[0].replace("\n", " "))


_loaded = False
_LOADERS: list[Callable[[], None]] = []


def _load_all() -> None:
    """Import every module of :mod:`tribute.methods` so that each registers itself."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    import pkgutil

    pkg = importlib.import_module(__name__.rsplit(".", 1)[0])
    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_") and mod.name != "base":
            importlib.import_module(f"{pkg.__name__}.{mod.name}")
