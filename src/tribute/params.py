"""Parameter constraints as data (the habit of scikit-learn's ``_parameter_constraints``).

A method declares what each hyperparameter accepts::

    class Rise(Method):
        constraints = {"s": Interval(int, 1, None), "p": Interval(float, 0, 1, closed="right")}

and the base class checks every declared parameter in one place before ``attribute`` runs,
with one kind of message: the method, the parameter, the value seen and what is allowed.
The registry exposes the declarations (``tribute.methods()[name].constraints``), so the CLI,
the docs and the conformance tests read them too.

A constraint is one :class:`Constraint` or a tuple of them (the value must satisfy one);
:data:`NONE` admits ``None``.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from .errors import InputError

__all__ = ["NONE", "Constraint", "ConstraintLike", "InstanceOf", "Interval", "Options",
           "check_params", "declare", "describe"]


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
    """One of a fixed set of values (compared with ``==``; ``None`` may be one of them)."""

    values: tuple[Any, ...]

    def accepts(self, value: Any) -> bool:
        try:
            return any(value is v or (type(value) is type(v) and value == v) for v in self.values)
        except Exception:  # an odd __eq__ on a user object means "not one of them"
            return False

    def describe(self) -> str:
        if self.values == (None,):
            return "None"
        return "one of " + ", ".join(repr(v) for v in self.values)


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


#: Admits ``None`` (combine: ``(NONE, Interval(int, 1))``).
NONE = Options((None,))

ConstraintLike = Constraint | tuple[Constraint, ...]


def declare(constraints: Mapping[str, ConstraintLike]) -> Mapping[str, ConstraintLike]:
    """A read-only constraint table for a class attribute (``constraints = declare({...})``)."""
    return MappingProxyType(dict(constraints))


def describe(constraint: ConstraintLike) -> str:
    """Words for a constraint or a tuple of alternatives."""
    parts = constraint if isinstance(constraint, tuple) else (constraint,)
    return " or ".join(c.describe() for c in parts)


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


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)
