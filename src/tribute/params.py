"""Parameter constraints as data (the habit of scikit-learn's ``_parameter_constraints``).

A method declares what each hyperparameter accepts::

    class Rise(Method):
        constraints = {"s": Interval(int, 1, None), "p": Interval(float, 0, 1, closed="right")}

and the base class checks every declared parameter in one place before ``attribute`` runs,
with one kind of message: the method, the parameter, the value seen and what is allowed.
The registry exposes the declarations (``tribute.methods()[name].constraints``), so the CLI,
the docs and the conformance tests read them too.

A constraint is one :class:`Constraint` or a tuple of them (the value must satisfy one):
:class:`Interval` (a number in a range), :class:`Options` (one of fixed values, optionally
ignoring case and underscores), :class:`InstanceOf` (an object of given types) and
:class:`SequenceOf` (a sequence or 1-D array whose items each satisfy a constraint, e.g. one
window size per axis).
:data:`NONE` admits ``None`` and :data:`BOOL` ``True`` or ``False``.
"""

from __future__ import annotations

import math
import numbers
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from .errors import InputError

__all__ = ["BOOL", "NONE", "Constraint", "ConstraintLike", "InstanceOf", "Interval", "Options",
           "SequenceOf", "check_params", "check_seed", "declare", "describe", "int_at_least",
           "scalar_value"]


class Constraint(ABC):
    """What one parameter accepts."""

    @abstractmethod
    def accepts(self, value: Any) -> bool:
        """Whether ``value`` satisfies the constraint."""

    @abstractmethod
    def describe(self) -> str:
        """The allowed values in words (``"an int >= 1"``)."""

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class Interval(Constraint):
    """A number in an interval.

    Args:
        kind: ``int`` (integers only; bools refused) or ``float`` (any real number, ints
            included; bools, NaN refused).
        lo, hi: bounds, None for unbounded.
        closed: which bounds are included: ``"both"``, ``"left"``, ``"right"``, ``"neither"``.
            default="both".
    """

    kind: type
    lo: float | None = None
    hi: float | None = None
    closed: Literal["both", "left", "right", "neither"] = "both"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind is int:
            if not isinstance(value, numbers.Integral):
                return False
        elif not isinstance(value, numbers.Real) or math.isnan(float(value)):
            return False
        v = float(value)
        if self.lo is not None:
            if v < self.lo or (v == self.lo and self.closed in ("right", "neither")):
                return False
        if self.hi is not None:
            if v > self.hi or (v == self.hi and self.closed in ("left", "neither")):
                return False
        return True

    def describe(self) -> str:
        what = "an int" if self.kind is int else "a number"
        lo_in = self.closed in ("both", "left")
        hi_in = self.closed in ("both", "right")
        if self.lo is not None and self.hi is not None:
            return (f"{what} in {'[' if lo_in else '('}{_num(self.lo)}, "
                    f"{_num(self.hi)}{']' if hi_in else ')'}")
        if self.lo is not None:
            return f"{what} {'>=' if lo_in else '>'} {_num(self.lo)}"
        if self.hi is not None:
            return f"{what} {'<=' if hi_in else '<'} {_num(self.hi)}"
        return f"{what} (finite)" if self.kind is float else what


@dataclass(frozen=True)
class Options(Constraint):
    """One of a fixed set of values (compared with ``==``; ``None`` may be one of them).

    Args:
        values: the allowed values.
        loose: strings match ignoring case, underscores and surrounding spaces (``"EpsilonPlusFlat"`` is
            ``"epsilon_plus_flat"``), for names the code itself looks up that way.
            default=False.
    """

    values: tuple[Any, ...]
    loose: bool = False

    def accepts(self, value: Any) -> bool:
        if self.loose and isinstance(value, str):
            return _fold(value) in {_fold(v) for v in self.values if isinstance(v, str)}
        try:
            return any(value is v or (type(value) is type(v) and value == v) for v in self.values)
        except Exception:  # an odd __eq__ on a user object means "not one of them"
            return False

    def describe(self) -> str:
        if self.values == (None,):
            return "None"
        words = "one of " + ", ".join(repr(v) for v in self.values)
        return words + " (case and underscores ignored)" if self.loose else words


@dataclass(frozen=True)
class InstanceOf(Constraint):
    """An instance of one of ``types`` (``description`` words it for messages)."""

    types: tuple[type, ...]
    description: str = ""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.types) and not (
            isinstance(value, bool) and bool not in self.types)

    def describe(self) -> str:
        return self.description or " or ".join(f"a {t.__name__}" for t in self.types)


@dataclass(frozen=True)
class SequenceOf(Constraint):
    """A sequence (list, tuple, range, ``torch.Size``...; not a string) or a 1-D numpy array of
    at least ``min_len`` items, each accepted by ``item``.

    Where ``item`` is an ``Interval(int, ...)``, an integral number of another type counts as
    that integer (``(1.0, 3.0)`` is ``(1, 3)``; ``2.5`` is still refused), since a sequence often
    comes from an array or from JSON; the user of the value converts its items with ``int``.

    Args:
        item: what each item accepts.
        min_len: fewest items. default=1.
        description: the allowed values in words; default: generated from ``item``.
    """

    item: Constraint
    min_len: int = 1
    description: str = ""

    def accepts(self, value: Any) -> bool:
        if not _is_sequence(value):
            return False
        try:
            items = list(value)
        except Exception:  # an odd user object that claims to be a sequence
            return False
        integral = isinstance(self.item, Interval) and self.item.kind is int
        return len(items) >= self.min_len and all(
            self.item.accepts(_integral(v) if integral else v) for v in items)

    def describe(self) -> str:
        if self.description:
            return self.description
        each = self.item.describe()
        if self.min_len <= 0:
            return f"a list or tuple, each item {each}"
        if self.min_len == 1:
            return f"a non-empty list or tuple, each item {each}"
        return f"a list or tuple of at least {self.min_len} items, each {each}"


def _is_sequence(value: Any) -> bool:
    """A non-string sequence or a 1-D numpy array (numpy is only looked at if imported)."""
    if isinstance(value, (str, bytes, bytearray)):
        return False
    if isinstance(value, Sequence):
        return True
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, np.ndarray) and value.ndim == 1


def _integral(v: Any) -> Any:
    """``v`` as an int when it is a whole real number (``3.0``, ``np.float32(3)``), else ``v``."""
    if isinstance(v, bool) or isinstance(v, numbers.Integral) or not isinstance(v, numbers.Real):
        return v
    f = float(v)
    return int(f) if math.isfinite(f) and f.is_integer() else v


#: Admits ``None`` (combine: ``(NONE, Interval(int, 1))``).
NONE = Options((None,))
#: Admits ``True`` and ``False`` only (not 0/1 or numpy booleans).
BOOL = InstanceOf((bool,), "True or False")

ConstraintLike = Constraint | tuple[Constraint, ...]


def declare(constraints: Mapping[str, ConstraintLike]) -> Mapping[str, ConstraintLike]:
    """A read-only constraint table for a class attribute (``constraints = declare({...})``)."""
    return MappingProxyType(dict(constraints))


def describe(constraint: ConstraintLike) -> str:
    """Words for a constraint or a tuple of alternatives."""
    parts = constraint if isinstance(constraint, tuple) else (constraint,)
    return " or ".join(c.describe() for c in parts)


def scalar_value(value: Any) -> Any:
    """A 0-d numpy array or torch tensor as the Python number it holds (``.item()``), for a
    hyperparameter that takes one number; anything else unchanged (a bool tensor gives a bool,
    which :class:`Interval` still refuses). ``stdevs=torch.tensor(0.1)`` was refused as "not
    a number" (aud45g, small46)."""
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)) \
            and type(value).__module__.split(".")[0] in ("numpy", "torch"):
        return value.item()
    return value


def check_params(owner: str, params: Mapping[str, Any],
                 constraints: Mapping[str, ConstraintLike]) -> None:
    """Check each declared parameter; raise :class:`InputError` at the first violation.

    Args:
        owner: who owns the parameters, for messages (``"method 'rise'"``).
        params: parameter values by name (names without a declaration are not checked).
        constraints: name -> constraint (or a tuple of alternatives).
    """
    for name, constraint in constraints.items():
        if name not in params:
            continue
        value = params[name]
        parts = constraint if isinstance(constraint, tuple) else (constraint,)
        if not any(c.accepts(value) for c in parts):
            raise InputError(
                f"{owner}: {name}={value!r} is not allowed; {name} must be {describe(constraint)}."
            )


def _fold(name: str) -> str:
    """A name with case, underscores and surrounding spaces ignored (``" Epsilon_Plus"`` ->
    ``"epsilonplus"``)."""
    return name.strip().lower().replace("_", "")


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


#: Seeds accepted by :func:`check_seed`: ``0 <= seed < MAX_SEED`` (torch's generators take
#: unsigned 64-bit seeds).
MAX_SEED = 1 << 64


def check_seed(seed: Any, owner: str = "seed") -> int:
    """``seed`` as an int, refused (:class:`InputError`) unless it is a non-negative int below
    :data:`MAX_SEED` (``2**64``).

    numpy's ``SeedSequence`` (behind every method's and metric's random generator) refuses
    negative seeds with a bare ``ValueError`` deep inside the estimator, after the game was
    built; this check says so up front, naming the value.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InputError(f"{owner}={seed!r} must be a non-negative int, e.g. {owner}=0.")
    if seed < 0:
        raise InputError(f"{owner}={seed!r} must be a non-negative int (it seeds numpy's "
                         f"random generator, which refuses negative seeds), e.g. {owner}=0.")
    if int(seed) >= MAX_SEED:
        # torch.Generator.manual_seed raised a bare "Overflow when unpacking long long" deep
        # inside banzhaf, lime, rise, sobol, permutation_shapley, smoothgrad ... (aud43i)
        raise InputError(f"{owner}={seed!r} is too large: seeds must be below 2**64 (torch's random "
                         f"generators take 64-bit seeds), e.g. {owner}={int(seed) % MAX_SEED}.")
    return int(seed)


def check_unique_names(names: Sequence[Any], owner: str = "feature_names", fix: str = "") -> None:
    """Refuse repeated player names (:class:`InputError` naming them and ``fix``).

    Two players with one name cannot be told apart in ``to_pandas`` columns, plots or
    ``top``; a repeated column label would also make ``df["age"]`` a frame, not a column.
    """
    seen: dict[str, int] = {}
    for n in names:
        seen[str(n)] = seen.get(str(n), 0) + 1
    repeated = [n for n, c in seen.items() if c > 1]
    if repeated:
        shown = ", ".join(f"{n!r} ({seen[n]}x)" for n in repeated[:5])
        more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
        raise InputError(f"{owner} repeats name(s) {shown}{more}; give every player its own "
                         f"name{fix or ' (e.g. add a suffix: age_1, age_2)'}.")


def int_at_least(lo: int, hint: str) -> Callable[[str], int]:
    """An argparse ``type=``: the text as an int ``>= lo``, else ``argparse.ArgumentTypeError``
    naming the value and ``hint`` (what to do instead); argparse adds the option's name.

    The one copy the command lines share (``tribute explain --limit``, ``--seed``, the dataset
    jobs' ``--workers`` / ``--shard-size`` / ``--threads``, ``tribute bench``): ``--workers 0``
    ran with 1 and ``--limit 0`` explained every row, silently.
    """
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an int") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"{value} must be at least {lo} ({hint})")
        return value
    return parse
