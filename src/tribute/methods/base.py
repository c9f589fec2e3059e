"""The method contract, capability tags and the registry.

A method is a class whose constructor stores hyperparameters only (no I/O, no device probing)
and whose :meth:`Method.attribute` turns evaluations of a game into an :class:`Attribution`.
Registering is one decorator; the CLI, the report and the conformance tests read the registry.

Hyperparameters declare what they accept as data (``constraints``, see
:mod:`tribute.params`); the base class checks them in one place before :meth:`Method.attribute`
runs, so a method's own code only checks what depends on the game.

Example (a plugin: ``from tribute.methods import Method, Tags, register`` and
``from tribute.params import Interval, declare``):
    >>> @register  # doctest: +SKIP
    ... class Occlusion(Method):
    ...     name = "my_occlusion"
    ...     tags = Tags(family="perturbation")
    ...     paper = "Zeiler & Fergus (2014), Visualizing and Understanding Convolutional Networks"
    ...     constraints = declare({"width": Interval(int, 1)})
    ...     def __init__(self, width: int = 3) -> None:
    ...         self.width = width
    ...     def attribute(self, game, *, budget=None, seed=0): ...
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, TypeVar

from ..attribution import Attribution
from ..errors import BudgetError, InputError, UnsupportedModelError
from ..games.base import Game
from ..params import ConstraintLike, check_params, describe
from ..registry import Registry

__all__ = ["METHODS", "Method", "MethodInfo", "Tags", "alias", "get_method", "method_info",
           "method_infos", "register", "registry"]


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


class Method(ABC):
    """Base class of all estimators.

    Subclasses set ``name``, ``tags`` and ``paper``, declare hyperparameters as keyword
    arguments of ``__init__`` (stored as attributes of the same name), declare what each
    accepts in ``constraints`` (checked by :meth:`validate_params` before every
    :meth:`attribute` call) and implement :meth:`attribute`.
    """

    name: ClassVar[str] = ""
    tags: ClassVar[Tags] = Tags(family="other")
    paper: ClassVar[str] = ""
    #: Hyperparameter -> what it accepts (see :mod:`tribute.params`); merged along the MRO.
    constraints: ClassVar[Mapping[str, ConstraintLike]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        merged: dict[str, ConstraintLike] = {}
        for klass in reversed(cls.__mro__):
            merged.update(klass.__dict__.get("constraints", {}))
        cls.constraints = merged
        own: Callable[..., Attribution] | None = cls.__dict__.get("attribute")
        if own is not None and not getattr(own, "__isabstractmethod__", False) \
                and not getattr(own, "_validates", False):
            @functools.wraps(own)
            def attribute(self: Method, game: Game, *args: Any, **kw: Any) -> Attribution:
                self.validate_params()
                assert own is not None
                return own(self, game, *args, **kw)

            attribute._validates = True  # type: ignore[attr-defined]
            cls.attribute = attribute  # type: ignore[method-assign]

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

    def validate_params(self) -> None:
        """Check every hyperparameter against the declared :attr:`constraints`.

        Runs before each :meth:`attribute` call (the base class wraps it), so methods never
        repeat these checks.

        Raises:
            InputError: naming the method, the parameter, the value and what is allowed.
        """
        check_params(f"method {type(self).name!r}", self.get_params(), type(self).constraints)

    # ---------------------------------------------------------------- budget
    def min_budget(self, game: Game) -> int:
        """Fewest evaluations per input this method can run with (budgeted methods)."""
        return 1

    def default_budget(self, game: Game) -> int | None:
        """Evaluations per input when the user gives no budget (None: the method's own)."""
        return None

    def check(self, game: Game, budget: int | None) -> int | None:
        """Validate the hyperparameters, the game and the budget; return the budget to use."""
        self.validate_params()
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
    @abstractmethod
    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        """Credit each player of ``game``; returns flat credits packed by the game."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


@dataclass(frozen=True)
class MethodInfo:
    """What the registry says about a method (for ``tribute.methods()`` and the CLI).

    Attributes:
        name: the registry name (or the alias, for alias entries).
        tags: capability tags.
        paper: the reference.
        defaults: hyperparameters and their defaults.
        summary: the first paragraph of the docstring.
        constraints: hyperparameter -> allowed values, in words.
        alias_of: for an alias entry (``shapley``), the method it names; else None.
    """

    name: str
    tags: Tags
    paper: str
    defaults: dict[str, Any]
    summary: str
    constraints: dict[str, str] = field(default_factory=dict)
    alias_of: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tags": asdict(self.tags), "paper": self.paper,
                "defaults": self.defaults, "summary": self.summary,
                "constraints": self.constraints, "alias_of": self.alias_of}


def _load_all() -> None:
    """Import every module of :mod:`tribute.methods` so that each registers itself."""
    import importlib
    import pkgutil

    pkg = importlib.import_module(__name__.rsplit(".", 1)[0])
    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_") and mod.name != "base":
            importlib.import_module(f"{pkg.__name__}.{mod.name}")


#: The method registry (filled by :func:`register`; every module of the package is imported
#: on first read).
METHODS: Registry[type[Method]] = Registry(
    "method", hint="See tribute.methods() or `tribute methods` for the list.", loader=_load_all)

M = TypeVar("M", bound=type[Method])


def register(cls: M) -> M:
    """Class decorator: add a method to the registry under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no registry name")
    if inspect.isabstract(cls):
        raise TypeError(f"{cls.__name__} is abstract (it does not implement attribute())")
    METHODS.add(cls.name, cls)
    return cls


def alias(name: str, target: str) -> None:
    """Register ``name`` as another name of method ``target`` (e.g. ``shapley``)."""
    METHODS.alias(name, target)


def registry() -> dict[str, type[Method]]:
    """Registered method classes by name (aliases not included)."""
    return METHODS.entries()


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name`` (or aliased by it)."""
    return METHODS.get(name)


def method_info(cls: type[Method], alias_name: str | None = None) -> MethodInfo:
    """The :class:`MethodInfo` of a method class (or of an alias of it)."""
    doc = inspect.getdoc(cls) or ""
    summary = doc.split("\n\n")[0].replace("\n", " ")
    cons = {k: describe(c) for k, c in cls.constraints.items()}
    if alias_name is not None:
        return MethodInfo(alias_name, cls.tags, cls.paper, cls.defaults(),
                          f"Alias of {cls.name!r}. {summary}", cons, alias_of=cls.name)
    return MethodInfo(cls.name, cls.tags, cls.paper, cls.defaults(), summary, cons)


def method_infos(*, aliases: bool = True) -> dict[str, MethodInfo]:
    """Name -> :class:`MethodInfo` for every method, and every alias (``alias_of`` set)."""
    out = {name: method_info(cls) for name, cls in METHODS.entries().items()}
    if aliases:
        for a, target in METHODS.aliases().items():
            out[a] = method_info(METHODS.get(target), alias_name=a)
    return dict(sorted(out.items()))
