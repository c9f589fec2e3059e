"""The analysis registry: methods whose answer is not a per-player :class:`~tribute.Attribution`.

Some methods users ask for return something else than one credit per player per input: a TCAV
score with its p-value, a parliament of seats, a set of discovered concepts, a recourse table, a
certified radius. They cannot run through :func:`tribute.explain` (whose result is an
``Attribution``), yet they deserve the same treatment as methods: a name, the paper they come
from, a one-line summary, a result type, and a place in ``tribute analyses`` /
:func:`tribute.analyses`.

An analysis is a plain function registered with :func:`register_analysis`; it keeps its own
signature and returns its own (frozen dataclass) result. Run one by name with
:func:`run_analysis` or call the function directly (``tribute.tcav(...)``).

>>> from tribute.methods.analyses import analysis_infos
>>> info = analysis_infos()["dhondt"]
>>> info.kind, info.returns
('decision', 'DhondtResult')
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from ..registry import Registry

__all__ = ["ANALYSES", "AnalysisInfo", "AnalysisKind", "analysis_infos", "get_analysis",
           "register_analysis", "run_analysis"]

#: What an analysis is about: ``concept`` (concept vectors, discovered concepts, SAE features),
#: ``decision`` (recourse, seat allocation, distribution-aware credit), ``robustness``
#: (certified bounds), ``model_set`` (over a set of near-equally good models), ``data``
#: (training examples, when the answer is not an attribution matrix).
AnalysisKind = Literal["concept", "decision", "robustness", "model_set", "data"]
_KINDS: tuple[str, ...] = ("concept", "decision", "robustness", "model_set", "data")


@dataclass(frozen=True)
class AnalysisInfo:
    """One registered analysis.

    Attributes:
        name: registry name (``"tcav"``).
        function: the function that runs it.
        kind: one of :data:`AnalysisKind`.
        paper: the paper it comes from (authors, title, venue, year).
        summary: first paragraph of the function's docstring.
        returns: the name of the result type (``"TCAVResult"``).
    """

    name: str
    function: Callable[..., Any]
    kind: str
    paper: str
    summary: str
    returns: str

    def as_dict(self) -> dict[str, str]:
        """JSON-friendly view (the function by its qualified name)."""
        fn = self.function
        return {"name": self.name, "kind": self.kind, "paper": self.paper, "summary": self.summary,
                "returns": self.returns, "function": f"{fn.__module__}.{fn.__qualname__}"}


def _load_all() -> None:
    from .base import METHODS

    METHODS.load()  # imports every module of tribute.methods; analyses register on import


#: The analysis registry (filled by :func:`register_analysis`; loads every methods module on
#: first read).
ANALYSES: Registry[AnalysisInfo] = Registry(
    "analysis", hint="See tribute.analyses() or `tribute analyses` for the list.", loader=_load_all,
    same=lambda old, new: old.function.__qualname__ == new.function.__qualname__
    and old.function.__module__ == new.function.__module__)

F = TypeVar("F", bound=Callable[..., Any])


def register_analysis(name: str, *, kind: AnalysisKind, paper: str) -> Callable[[F], F]:
    """Function decorator: register an analysis under ``name``.

    The function must carry a docstring (its first paragraph becomes the summary) and a return
    annotation naming its result type.

    Args:
        name: registry name.
        kind: one of :data:`AnalysisKind`.
        paper: the paper the analysis comes from.
    """
    if kind not in _KINDS:
        raise TypeError(f"register_analysis({name!r}): kind={kind!r} must be one of {_KINDS}")
    if not paper.strip():
        raise TypeError(f"register_analysis({name!r}): paper must name the paper it comes from")

    def deco(fn: F) -> F:
        doc = inspect.getdoc(fn)
        if not doc:
            raise TypeError(f"analysis {name!r}: {fn.__qualname__} has no docstring")
        ret = inspect.signature(fn).return_annotation
        if ret is inspect.Signature.empty:
            raise TypeError(f"analysis {name!r}: {fn.__qualname__} has no return annotation")
        returns = ret if isinstance(ret, str) else getattr(ret, "__name__", repr(ret))
        summary = doc.split("\n\n")[0].replace("\n", " ")
        ANALYSES.add(name, AnalysisInfo(name, fn, kind, paper, summary, returns))
        return fn

    return deco


def analysis_infos() -> dict[str, AnalysisInfo]:
    """Name -> :class:`AnalysisInfo` for every registered analysis, sorted by name."""
    return ANALYSES.entries()


def get_analysis(name: str) -> Callable[..., Any]:
    """The function registered as analysis ``name``."""
    return ANALYSES.get(name).function


def run_analysis(name: str, *args: Any, **kwargs: Any) -> Any:
    """Run the analysis registered as ``name`` with the given arguments."""
    return get_analysis(name)(*args, **kwargs)
