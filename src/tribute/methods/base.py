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
import math
import numbers
import warnings
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, TypeVar

from ..attribution import Attribution
from ..engine.progress import SLOW_RUN_SECONDS, SlowRunWarning
from ..errors import BudgetError, InputError, UnsupportedModelError, user_stacklevel
from ..games.base import Game
from ..params import ConstraintLike, check_params, describe
from ..registry import Registry

__all__ = ["METHODS", "Cost", "Method", "MethodInfo", "SlowRunWarning", "Tags", "alias", "check_budget_param",
           "coalition_cost", "estimate_seconds", "get_method", "method_info", "method_infos",
           "register", "registry", "solve_seconds"]

#: Assumed speed of the estimators' own dense arithmetic (flop/s) for time estimates.
_SOLVE_FLOPS_PER_SECOND = 5e9
_F64 = 8


@dataclass(frozen=True)
class Cost:
    """What one call of a method will cost, estimated before it starts (``Method.estimate_cost``).

    Attributes:
        rows: model rows it will evaluate (inputs x evaluations x background rows).
        bytes: peak bytes tribute itself allocates: masks, values, gradients, the estimator's
            design and solve matrices, the results (not the model's own activations).
        note: what dominates the memory, in words (quoted in refusals).
        flops: the estimator's own arithmetic after the model rows (solve, fit), for time
            estimates and the progress bar.
    """

    rows: int
    bytes: int
    note: str = ""
    flops: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        note = "; ".join(n for n in (self.note, other.note) if n)
        return Cost(self.rows + other.rows, self.bytes + other.bytes, note, self.flops + other.flops)


def coalition_cost(game: Any, k: int, *, design: int = 0, solve: int = 0, flops: float = 0.0,
                   note: str = "", per_sample_masks: bool = False, grads: bool = False,
                   mask_rows: int | None = None, background: bool = True) -> Cost:
    """The common part of a cost: ``k`` evaluations per input of a game.

    Counts the ``k x players`` float64 masks (``batch x k x players`` when per sample; only
    ``mask_rows`` of them when the method sends its masks in blocks), the ``batch x k x
    targets`` values (with ``grads``: ``batch x targets x players`` gradient accumulators),
    three ``batch x targets x players`` results (values, stderr, a scratch copy), plus
    ``design`` and ``solve`` bytes given by the method. ``note`` names them. The ``k``
    evaluations include ``v(N)``'s reference pass, one row per input; the others take one row
    per input and background row (``background=False``: one, for passes at the input only).
    """
    n, b, t = int(game.n_players), int(game.n_samples), int(game.n_targets)
    mb = int(getattr(game, "n_background", 1) or 1) if background else 1
    k = max(int(k), 0)
    alive = k if mask_rows is None else max(int(mask_rows), 0)
    masks = alive * n * _F64 * (b if per_sample_masks else 1)
    vals = b * k * t * _F64
    result = 3 * b * t * n * _F64 + (2 * b * t * n * _F64 if grads else 0)
    rows = b * (1 + (k - 1) * mb) if k else 0  # v(N) is one row per input, the rest one per background row
    return Cost(rows=rows, bytes=masks + vals + result + int(design) + int(solve),
                note=note or f"{k:,} coalitions x {n:,} players", flops=float(flops))


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
        reads_missing: reads NaN inputs the way the model does (tree models route missing
            values), so :func:`tribute.explain` lets NaN through instead of refusing it.
        images_only: explains one image input (per-sample ``(C, H, W)`` or ``(H, W)``) with
            regions of pixels; refuses other inputs (the region methods).
        fractional_masks: evaluates the game at masks strictly between 0 and 1 without
            gradients (``sobol``), so it needs a game that can remove a fraction of a player
            (real-valued inputs, or text that blends input embeddings); gradient methods say so
            through ``needs_gradients``. ``rise`` is not tagged: its smooth (fractional) masks
            are drawn on dense image games only, whose inputs are real; elsewhere it draws 0/1.
        signed: credits carry a direction (positive: keeping the player raises ``v``); False
            for unsigned importances (Sobol indices, SmoothGrad², VarGrad, extremal
            perturbation's mask sums), which a plot colours by magnitude only.
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
    reads_missing: bool = False
    images_only: bool = False
    fractional_masks: bool = False
    signed: bool = True


#: class -> (its ``__init__``, hyperparameter defaults): ``inspect.signature`` once per class.
_DEFAULTS: dict[type, tuple[Any, dict[str, Any]]] = {}


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
    #: Hyperparameters a dataset job sets where the user leaves them unset, so that a shard's
    #: result depends only on the seed and the shard, never on timing (a resumed job must be
    #: byte-identical to an uninterrupted one: :func:`tribute.jobs.shards.run_shard`).
    reproducible: ClassVar[Mapping[str, Any]] = {}
    #: Whether :meth:`attribute` asks the game for ``v(N)`` (``game.full()``): None reads
    #: ``tags.has_gap``; False for a method with a gap that takes ``f(x)`` from its own pass.
    #: A wrapper running the method on new inputs (smoothgrad's noisy copies) plans by it.
    reads_full: ClassVar[bool | None] = None
    #: Whether the method reads a component game's ablation values (``ablation=``). False for
    #: methods that never ablate a unit (conductance, layer_grad_cam): :func:`tribute.explain`
    #: then builds the game without the reference / counterfactual capture pass of
    #: ``ablation="mean" / "resample" / "patch"``, which their budget would otherwise pay for.
    reads_ablation: ClassVar[bool] = True

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
                # explain() has just validated them in check() (and nothing set them since):
                # it marks that, so the parameters are not checked twice per call
                if not self.__dict__.pop("_params_checked", False):
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
    def reads_baseline(cls, params: dict[str, Any]) -> bool:
        """Whether a call with hyperparameters ``params`` reads the removal value (the
        baseline): ``tags.needs_baseline`` unless a parameter decides (tree_shap's
        interventional game reads it, its path-dependent game does not). A call that reads none
        takes :data:`~tribute.games.features.UNREAD_BASELINE` when no baseline is given."""
        return cls.tags.needs_baseline

    def reads_player_count(self) -> str | None:
        """Why this estimate of a player's credit depends on how many players the game has
        besides it (players that never change the value included), or None when it does not.

        Texts of one call are padded to the longest text's players, so a shorter text would
        then get credits that depend on the other texts of the call; :func:`tribute.explain`
        explains each group of texts of one player count as its own call for these methods
        and merges the results (:mod:`tribute.methods.text_split`). Shapley values, Banzhaf
        values, leave-one-out and gradients do not depend on players that change nothing (the
        null-player axiom)."""
        return None

    def reads_player_count_at(self, budget: Any) -> str | None:
        """:meth:`reads_player_count` for a call given ``budget``: also why a hyperparameter that
        the budget sets from the number of players (integrated Hessians' ``steps``) would follow
        the longest text's players. :func:`tribute.explain` asks this one."""
        return self.reads_player_count()

    def exact_at(self, n_players: int, budget: int | None) -> bool:
        """Whether a game of ``n_players`` players given ``budget`` evaluations per input (None:
        :meth:`default_budget` for that many players) is computed exactly, every coalition
        evaluated, where fewer would be sampled (permutation Shapley, KernelSHAP, Banzhaf and
        GP Shapley values at ``budget >= 2^n``). False for a method without such a switch.

        A text shorter than the longest of its call would be sampled over the longest one's
        players in one padded game, while alone it gets its exact values in fewer rows;
        :func:`tribute.explain` then explains each group of texts of one player count as its own
        call (:mod:`tribute.methods.text_split`)."""
        return False

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Hyperparameters and their defaults, read from ``__init__``'s signature."""
        cached = _DEFAULTS.get(cls)
        if cached is None or cached[0] is not cls.__init__:
            sig = inspect.signature(cls.__init__)  # ~7 us: read once per class (issue #9)
            cached = (cls.__init__, {
                p.name: p.default
                for p in sig.parameters.values()
                if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                and p.default is not inspect.Parameter.empty
            })
            _DEFAULTS[cls] = cached
        return dict(cached[1])

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

    def min_budget_reason(self, game: Game) -> str:
        """What :meth:`min_budget` is made of, for the "budget is too small" refusal: ``""``, or a
        clause (with its leading space) naming what multiplies the minimum, e.g. the targets."""
        return ""

    def default_budget(self, game: Game) -> int | None:
        """Evaluations per input when the user gives no budget (None: the method's own)."""
        return None

    def check(self, game: Game, budget: int | None) -> int | None:
        """Validate the hyperparameters, the game and the budget; return the budget to use."""
        self.validate_params()
        cls = type(self)
        if game.kind not in cls.tags.games:
            # aud50d: method="shapley" (gp_shapley) or "lime" on training-data players named no
            # method that does run there: the same family's first, then the others
            fits = sorted(n for n, c in registry().items() if game.kind in c.tags.games)
            same = [n for n in fits if registry()[n].tags.family == cls.tags.family]
            hint = (f" Methods for {game.kind!r} games: "
                    + ", ".join(same + [n for n in fits if n not in same]) + "." if fits else "")
            if cls.tags.games == ("data",):  # a data method called without training-data players
                hint = (" Pass the training data as players: players=tribute.TrainingData(X_train, "
                        "y_train, fit=...).")
            raise UnsupportedModelError(
                f"method {cls.name!r} works on {cls.tags.games} games, not {game.kind!r} games."
                + hint
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
                f"{cls.tags.max_players} players. {_fewer_players(game).capitalize()} or use "
                "'kernel_shap' / 'permutation_shapley'."
            )
        if budget is not None:
            if isinstance(budget, numbers.Integral) and not isinstance(budget, bool):
                budget = int(budget)  # numpy integers (e.g. from a grid) are ints too
            if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
                raise InputError(f"budget={budget!r} must be a positive int (evaluations per input).")
            need = self.min_budget(game)
            if budget < need:
                raise BudgetError(
                    f"budget={budget} is too small for {cls.name!r} with {game.n_players} players: "
                    f"it needs at least {need} evaluations per input{self.min_budget_reason(game)}. "
                    f"Raise budget to >= {need} "
                    f"{cls.reduce_cost_hint or 'or ' + _fewer_players(game)}."
                )
            self.check_cost(game, budget)
            _reference_now(game)
            return budget
        use = self.default_budget(game)
        self.check_cost(game, use, given=False)
        _reference_now(game)
        return use

    # ------------------------------------------------------------------ cost
    #: The default budget as text (``n`` = players), shown by ``tribute methods``.
    budget_rule: ClassVar[str] = ""
    #: How to need fewer evaluations, closing the "budget is too small" refusal (a method whose
    #: cost does not depend on the players says what it does depend on).
    #: Empty: the players' own way to be fewer (:func:`_fewer_players`: groups of features,
    #: of training examples, sentences for text).
    reduce_cost_hint: ClassVar[str] = ""
    #: The hyperparameter a ``budget`` sets (integrated_gradients' ``steps``, lime's
    #: ``n_samples``), or None. :func:`tribute.explain` refuses both given with values that
    #: disagree (:meth:`budget_sets`), rather than running the budget's value silently.
    budget_param: ClassVar[str | None] = None

    def budget_count(self) -> str | None:
        """The hyperparameter a ``budget`` sets with these settings (:attr:`budget_param`;
        smoothgrad's ``n_samples`` only over saliency), or None."""
        return type(self).budget_param

    def budget_sets(self, game: Game, budget: int) -> int | None:
        """The value of :meth:`budget_count` that ``budget`` runs on ``game`` (None: this
        budget leaves the parameter as given). Called only when :attr:`budget_param` is set."""
        return None

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """Rows and bytes one call will need, before it starts (``budget`` as :meth:`check`
        returns it). The default: ``budget`` (else one per player) coalitions per input;
        methods with their own design or solve override it."""
        k = budget if budget is not None else int(game.n_players) + 1
        return coalition_cost(game, k)

    def settings_that_fit(self, game: Game, budget: int | None, cap: int) -> list[str]:
        """Method-specific settings that would fit under ``cap`` bytes, in words, for the
        refusal of :meth:`check_cost` (a smaller projection, another solver, fewer test points);
        the base class adds fewer players and a smaller budget. Default: none."""
        return []

    def check_cost(self, game: Game, budget: int | None, *, given: bool = True) -> Cost:
        """Refuse up front when :meth:`estimate_cost` exceeds the engine's ``max_memory``.

        The refusal quotes the estimate, the cap and settings that would fit (fewer players
        through ``groups=``, a smaller ``budget``); runs estimated to take over ten seconds
        (from the throughput measured on this model) announce their plan as a
        :class:`SlowRunWarning`. ``given``: ``budget`` is the user's (fewer players are then
        priced at it), not the method's default for this game (then at their own default).
        """
        cls = type(self)
        cost = self.estimate_cost(game, budget)
        # explain() reuses it (a weak reference: a method kept by the user keeps no game alive)
        self.__dict__["_checked_cost"] = (weakref.ref(game), budget, cost)
        engine = getattr(game, "engine", None)
        cap = getattr(engine, "max_memory", None)
        if cap is not None and cost.bytes > cap:
            from ..engine.memory import format_bytes

            fits = _fitting_settings(self, game, budget, cap, given)
            raise BudgetError(
                f"method {cls.name!r} on {game.n_samples:,} input(s) x {game.n_players:,} players "
                f"needs about {format_bytes(cost.bytes)} ({cost.note}), more than "
                f"max_memory={format_bytes(cap)}. {fits} Or raise max_memory (e.g. "
                f"max_memory={_round_up(cost.bytes):.3g}) if the machine has the memory."
            )
        # a deferred reference pass runs now, past the memory refusal (which spends no row):
        # the throughput read below is measured by it on a model's first call (>= 256 inputs),
        # as when the game ran it at build (without it a slow first call gave no SlowRunWarning)
        _reference_now(game)
        seconds = estimate_seconds(engine, game, cost)
        if seconds is not None and seconds > SLOW_RUN_SECONDS:
            warnings.warn(self.plan_message(game, budget, cost, seconds), SlowRunWarning,
                          stacklevel=user_stacklevel())
        return cost

    def plan_message(self, game: Game, budget: int | None, cost: Cost, seconds: float) -> str:
        """``kernel_shap: 1 input(s) x budget=2,440 evaluations ≈ 2,441 model rows, est. 12 min
        — pass budget= or groups= to reduce``."""
        mb = int(getattr(game, "n_background", 1) or 1)
        per_input = cost.rows // max(int(game.n_samples), 1)  # 1 + (k - 1) x mb (coalition_cost)
        per = 1 + (per_input - 1) // mb if per_input else 0
        what = f"budget={budget:,} evaluations" if budget is not None else f"{per:,} evaluations"
        return (f"{type(self).name}: {game.n_samples:,} input(s) x {what} ≈ {cost.rows:,} model "
                f"rows{' + its own solve' if cost.flops else ''}, est. {_fmt_seconds(seconds)} — "
                "pass budget= or groups= to reduce.")

    def solve_rows(self, game: Game, cost: Cost) -> int:
        """The estimator's solve in row-equivalents (for one progress bar over both)."""
        engine = getattr(game, "engine", None)
        rate = engine.throughput(int(getattr(game, "row_bytes", 0))) if engine is not None else None
        if not cost.flops or not rate:
            return 0
        return int(min(cost.flops / _SOLVE_FLOPS_PER_SECOND * rate, 1e12))

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
        budget_rule: the default budget as text (``n`` = players, e.g.
            ``"min(2^n, 2n + 2048)"``); :meth:`default_budget` is the same rule as a function
            of ``n``.
    """

    name: str
    tags: Tags
    paper: str
    defaults: dict[str, Any]
    summary: str
    constraints: dict[str, str] = field(default_factory=dict)
    alias_of: str | None = None
    budget_rule: str = ""

    def default_budget(self, n_players: int) -> int | None:
        """Evaluations per input the method spends by default on ``n_players`` players."""
        cls = get_method(self.name)
        return cls().default_budget(_Players(int(n_players)))  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tags": asdict(self.tags), "paper": self.paper,
                "defaults": self.defaults, "summary": self.summary,
                "constraints": self.constraints, "alias_of": self.alias_of,
                "budget_rule": self.budget_rule}


def _load_all() -> None:
    """Import every module of :mod:`tribute.methods` so that each registers itself."""
    import importlib
    import pkgutil

    pkg = importlib.import_module(__name__.rsplit(".", 1)[0])
    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_") and mod.name != "base":
            importlib.import_module(f"{pkg.__name__}.{mod.name}")


#: Other libraries' names of methods tribute registers under another name (the key is the
#: name lower-cased without ``_``, ``-`` or spaces). aud51g: ``method="gradient_shap"`` was
#: told "Did you mean 'metagradient', 'joint_shapley'?".
_OTHER_NAMES = {
    "gradientshap": "Captum's GradientShap is 'expected_gradients' (stdevs= adds its input "
                    "noise; baselines drawn from baseline=tribute.Background(...))",
    "deepliftshap": "Captum's DeepLiftShap is 'deeplift' with baseline=tribute.Background(...)",
    "noisetunnel": "Captum's NoiseTunnel is 'smoothgrad', 'smoothgrad_sq' or 'vargrad' "
                   "(base= names the method under the noise)",
}
_METHODS_HINT = "See tribute.methods() or `tribute methods` for the list."


def _unknown_method(name: Any, close: list[str]) -> InputError:
    key = name.lower().replace("_", "").replace("-", "").replace(" ", "") if isinstance(name, str) else None
    other = _OTHER_NAMES.get(key) if key is not None else None
    if other is not None:
        return InputError(f"method={name!r} is not a registered method: {other}. {_METHODS_HINT}")
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return InputError(f"method={name!r} is not a registered method.{hint} {_METHODS_HINT}")


#: The method registry (filled by :func:`register`; every module of the package is imported
#: on first read).
METHODS: Registry[type[Method]] = Registry(
    "method", hint=_METHODS_HINT, loader=_load_all, unknown_error=_unknown_method)

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


def check_budget_param(estimator: Method, params: dict[str, Any], game: Any,
                        budget: int | None) -> None:
    """Refuse a hyperparameter that ``budget`` sets (``steps=20`` with ``budget=100``) given
    with another value: the budget's value would run, and the one the user asked for would not."""
    name = estimator.budget_count()
    if budget is None or name is None or params.get(name) is None:
        return  # not given (lime's n_samples=None is "use the budget")
    implied = estimator.budget_sets(game, budget)
    if implied is not None and params[name] != implied:
        raise InputError(
            f"method {type(estimator).name!r}: {name}={params[name]!r} and budget={budget} disagree "
            f"(budget={budget} runs {name}={implied}). Give one of them.")


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name`` (or aliased by it)."""
    return METHODS.get(name)


def method_info(cls: type[Method], alias_name: str | None = None) -> MethodInfo:
    """The :class:`MethodInfo` of a method class (or of an alias of it)."""
    doc = inspect.getdoc(cls) or ""
    summary = doc.split("\n\n")[0].replace("\n", " ")
    cons = {k: describe(c) for k, c in cls.constraints.items()}
    rule = cls.budget_rule or ("" if cls.tags.budgeted else "fixed by the method")
    if alias_name is not None:
        return MethodInfo(alias_name, cls.tags, cls.paper, cls.defaults(),
                          f"Alias of {cls.name!r}. {summary}", cons, alias_of=cls.name,
                          budget_rule=rule)
    return MethodInfo(cls.name, cls.tags, cls.paper, cls.defaults(), summary, cons,
                      budget_rule=rule)


def method_infos(*, aliases: bool = True) -> dict[str, MethodInfo]:
    """Name -> :class:`MethodInfo` for every method, and every alias (``alias_of`` set)."""
    out = {name: method_info(cls) for name, cls in METHODS.entries().items()}
    if aliases:
        for a, target in METHODS.aliases().items():
            out[a] = method_info(METHODS.get(target), alias_name=a)
    return dict(sorted(out.items()))


# ----------------------------------------------------------------------- cost helpers
class _Players:
    """Stands in for a game of ``n`` players when evaluating a budget rule or a what-if cost."""

    def __init__(self, n: int, like: Any = None) -> None:
        self.n_players = n
        self._like = like

    def __getattr__(self, name: str) -> Any:
        if name == "n_evals" and (self._like is None or not hasattr(self._like, "n_evals")):
            return 1  # the reference pass v(N) every explanation spends before its method runs
        if name.startswith("__") or self._like is None:
            raise AttributeError(name)
        return getattr(self._like, name)


def _reference_now(game: Game) -> None:
    """Run a feature game's deferred reference pass (:meth:`Game.reference_pending`) once the
    checks passed, before the method: the method then finds the game as it was built before
    (target resolved, ``v(N)`` known, its rows already seen by hooks it registers later), and
    only the refusals above spend no model row."""
    if game.reference_pending():
        game.full()


def _round_up(nbytes: int) -> float:
    return float(10 ** math.ceil(math.log10(max(nbytes, 1))) if nbytes > 1e30 else
                 math.ceil(nbytes / 1e9) * 1e9)


def _fmt_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.0f} days"


def solve_seconds(cost: Cost) -> float:
    """Seconds the estimator's own arithmetic is expected to take."""
    return cost.flops / _SOLVE_FLOPS_PER_SECOND


def estimate_seconds(engine: Any, game: Any, cost: Cost) -> float | None:
    """Seconds a call of ``cost`` will take at the measured throughput (None: not measured)."""
    if engine is None or not hasattr(engine, "throughput"):
        return None
    rate = engine.throughput(int(getattr(game, "row_bytes", 0)))
    if not rate:
        return None
    return float(cost.rows / rate + cost.flops / _SOLVE_FLOPS_PER_SECOND)


def _fits(method: Method, game: Any, budget: int | None, cap: int) -> tuple[bool, int]:
    try:
        c = method.estimate_cost(game, budget)
    except Exception:  # a what-if the method cannot price (e.g. needs the real input shape)
        return False, 0
    return c.bytes <= cap, c.bytes


def _fitting_settings(method: Method, game: Any, budget: int | None, cap: int,
                      given: bool = True) -> str:
    """Words naming settings that fit under ``cap``: fewer players, a smaller budget
    (``given``: ``budget`` is the user's, not the default for ``game``)."""
    from ..engine.memory import format_bytes

    parts: list[str] = list(method.settings_that_fit(game, budget, cap))
    n = int(game.n_players)
    # fewer players (groups): halve until it fits at the budget given (else the default)
    m = n // 2
    while m >= 1:
        what_if = _Players(m, game)
        try:  # at the budget given, else their own default (rev44o: the default was priced,
            # so following the hint with budget=100 was refused again: IG 6.52 KiB vs 3.91 KiB)
            b_m = budget if given and budget is not None else method.default_budget(what_if)  # type: ignore[arg-type]
        except Exception:
            b_m = None
        ok, nbytes = _fits(method, what_if, b_m, cap)
        if ok:
            parts.append(_groups_hint(game, m, nbytes, format_bytes))
            break
        m //= 2
    # a smaller budget with the same players
    if type(method).tags.budgeted:
        lo = int(method.min_budget(game))
        hi = int(budget) if budget is not None else int(method.default_budget(game) or lo)
        ok, _ = _fits(method, game, lo, cap)
        if not ok:
            parts.append(f"no budget fits with {n:,} players (it needs at least {lo:,}).")
        else:
            if hi <= lo:  # no budget to start from (steps= given): the first that does not fit
                # (aud51g: integrated_gradients with steps=2000 was told the minimum, steps=1,
                # where steps=1,574 fit)
                hi = 2 * lo
                while hi < 2**40 and _fits(method, game, hi, cap)[0]:
                    hi *= 2
            while lo < hi - 1:  # largest budget that fits
                mid = (lo + hi) // 2
                if _fits(method, game, mid, cap)[0]:
                    lo = mid
                else:
                    hi = mid
            parts.append(f"{_budget_spelling(method, game, lo, given)} fits with the current players.")
    if not parts:
        return "Group features (groups=...) to reduce the number of players."
    return "Settings that fit: " + " ".join(parts)


def _budget_spelling(method: Method, game: Any, budget: int, given: bool) -> str:
    """``budget=98`` in the words the user called with: a method whose budget sets a
    hyperparameter (``steps``) called without a budget names that hyperparameter's value
    (rev50i: integrated_hessians with ``steps=32`` was told "budget=98 fits", and passing
    budget=98 next to steps=32 is refused as a disagreement); with a budget, both."""
    name = method.budget_count()
    implied: int | None = None
    if name is not None:
        try:
            implied = method.budget_sets(game, budget)
        except Exception:  # a what-if the method cannot price: the budget alone
            implied = None
    if name is None or implied is None:
        return f"budget={budget:,}"
    if given:
        return f"budget={budget:,} ({name}={implied:,})"
    return f"{name}={implied:,}"


def _groups_hint(game: Any, m: int, nbytes: int, fmt: Callable[[float], str]) -> str:
    shapes: list[tuple[int, ...]] = list(
        getattr(getattr(game, "layout", None), "input_shapes", None) or ())
    if game.kind == "feature" and len(shapes) == 1 and len(shapes[0]) >= 2:
        from ..games.features import patch_channel_axis
        from ..models.layout import looks_channels_last

        # an (H, W, C) sample's patches tile its first two axes (aud51c); where the model does
        # not say so, the hint names the layout it assumes (patches would refuse the shape)
        told = patch_channel_axis(tuple(shapes[0]), getattr(game, "model", None))
        last = told == -1 or (told is None and looks_channels_last(tuple(shapes[0])))
        spec = ", channel_axis=-1" if last and told is None else ""
        h, w = (int(shapes[0][0]), int(shapes[0][1])) if last else (int(shapes[0][-2]), int(shapes[0][-1]))
        for p in range(2, max(h, w) + 1):
            players = -(-h // p) * -(-w // p)
            if players <= m:
                return (f"groups=tribute.patches({p}{spec}) ({players:,} players, est. "
                        f"{fmt(nbytes)} or less);")
    noun = "player" if m == 1 else "players"
    if game.kind == "feature":
        return f"groups with at most {m:,} {noun} (e.g. superpixels or column groups), est. {fmt(nbytes)};"
    return f"at most {m:,} {noun} (coarser components), est. {fmt(nbytes)};"


def _fewer_players(game: Game) -> str:
    """How to have fewer players of this game's kind (the end of a too-costly refusal): a
    training-data game groups examples, a text game takes coarser units, a feature game groups
    features (a data game was told to "group features", which it has none of: aud40d)."""
    kind = getattr(game, "player_kind", "feature")
    if kind == "example":
        return ("group the training examples (tribute.TrainingData(..., groups=...)) to reduce "
                "the number of players")
    if kind in ("word", "token", "span"):
        return "use coarser players (players='sentences', or 'words' for tokens) to reduce their number"
    if kind == "component":
        return "explain fewer components (fewer sites or layers) to reduce the number of players"
    return "group features (groups=...) to reduce the number of players"
