"""DhondtXAI: D'Hondt proportional allocation of "seats" from attributions.

Attributions are hard to read when there are many small credits; DhondtXAI (Ogurlu et al.,
"DhondtXAI: A D'Hondt-based explainable AI approach", 2024) turns them into an integer
number of seats in a parliament of ``seats`` seats with the D'Hondt (Jefferson) highest
averages method: seat after seat goes to the party with the largest quotient
``votes / (seats_won + 1)``. Features are the parties and their credits the votes.

Choices made here (each tested in ``tests/concepts/test_dhondt.py``):

- **Negative credits.** ``credit="abs"`` (default) uses ``|credit|`` as votes: a feature that
  pushes the output down is as *important* as one that pushes it up. ``credit="positive"``
  uses the positive part ``max(credit, 0)``: only features that raise the output win seats.
  For an attribution with several samples the votes are the mean over samples of the
  per-sample votes (mean ``|credit|`` or mean positive part); with several targets, the mean
  over samples and targets.
- **Threshold.** A list (a feature, or an alliance) whose share of all votes is strictly
  below ``threshold`` wins no seat; its votes are not redistributed (as in an election).
- **Alliances.** ``alliances={"name": [features...]}`` pools its members' votes into one list
  that competes (and faces the threshold) as a whole; the alliance's seats are then split among
  its members by D'Hondt again (no threshold inside an alliance).
- **Ties.** When two quotients are equal, the seat goes to the list with more votes; if the
  votes are equal too, to the list that comes first (alliances in the order given, then the
  remaining features in input order). Quotients are compared exactly by cross-multiplication
  (``v_i * (s_j + 1)`` vs ``v_j * (s_i + 1)``), never through rounded divisions.

>>> r = dhondt_seats([100_000, 80_000, 30_000, 20_000], seats=8, names=["A", "B", "C", "D"])
>>> r.seats
{'A': 4, 'B': 3, 'C': 1, 'D': 0}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from .analyses import register_analysis

__all__ = ["DhondtResult", "dhondt_allocate", "dhondt_seats"]


@dataclass(frozen=True)
class DhondtResult:
    """Seats per feature, and per list (alliances pooled).

    Attributes:
        seats: feature name -> seats won (every feature, in input order; 0 when none).
        votes: feature name -> votes (``|credit|`` or positive part, averaged over samples
            and targets).
        list_seats: list name -> seats (alliances pooled; other features under their own name).
        list_votes: list name -> pooled votes.
        excluded: lists below the threshold (they won no seat).
        total_seats: the seats allocated: the parliament's size, or 0 when no list has
            votes (every credit 0, or every list below ``threshold``).
        alliances: alliance name -> member feature names.
    """

    seats: dict[str, int]
    votes: dict[str, float]
    list_seats: dict[str, int]
    list_votes: dict[str, float]
    excluded: list[str]
    total_seats: int
    alliances: dict[str, list[str]] = field(default_factory=dict)

    def plot(self, **kwargs: Any) -> Any:
        """Draw the parliament (hemicycle); see :func:`tribute.viz.parliament`."""
        from ..viz import parliament  # viz sits above methods: lazy (allowed in the layering test)

        return parliament(self, **kwargs)


def dhondt_allocate(votes: Sequence[float] | np.ndarray, seats: int) -> np.ndarray:
    """Allocate ``seats`` seats to lists with ``votes`` by D'Hondt (ties: more votes, then first).

    Args:
        votes: one non-negative number per list (``lists``).
        seats: number of seats (>= 0).

    Returns:
        ``lists`` integer seat counts summing to ``seats`` (all zero when every vote is zero).
    """
    v = np.asarray(votes, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise InputError(f"dhondt_allocate: votes must be finite and >= 0; got {v.tolist()}.")
    if isinstance(seats, bool) or not isinstance(seats, (int, np.integer)) or seats < 0:
        raise InputError(f"dhondt_allocate: seats={seats!r} must be an integer >= 0.")
    won = np.zeros(v.shape[0], dtype=np.int64)
    if v.size == 0 or not np.any(v > 0):
        return won
    # scale by a power of two (exact) so that the largest vote is in [0.5, 1): the products
    # v_i * (s_j + 1) below overflowed to inf for votes near the float maximum, and inf == inf
    # read as a tie (votes 1.7e308 / 1.6e308, 4 seats: 3 / 1 instead of 2 / 2)
    v = np.ldexp(v, -math.frexp(float(v.max()))[1])
    for _ in range(int(seats)):
        best = -1
        for i in range(v.shape[0]):
            if v[i] <= 0:
                continue
            if best < 0:
                best = i
                continue
            lhs, rhs = v[i] * (won[best] + 1), v[best] * (won[i] + 1)
            if lhs > rhs or (lhs == rhs and v[i] > v[best]):
                best = i
        won[best] += 1
    return won


def _votes(credits: Any, names: Sequence[str] | None, credit: str) -> tuple[list[str], np.ndarray]:
    if isinstance(credits, Mapping):
        if names is not None:
            raise InputError("dhondt_seats: names= is taken from the mapping's keys; pass names=None.")
        names = [str(k) for k in credits]
        credits = [float(credits[k]) for k in credits]
    is_attribution = callable(getattr(credits, "flat", None)) and hasattr(credits, "player_names")
    # an Attribution: its flat ``batch x targets x players`` credits (dense maps and several inputs alike)
    values = credits.flat() if is_attribution else credits
    if names is None and getattr(credits, "player_names", None):
        names = list(credits.player_names)
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0 or arr.size == 0:
        raise InputError(f"dhondt_seats: credits must hold one value per feature; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise InputError("dhondt_seats: credits contain NaN or inf; clean them before allocating seats.")
    if credit not in ("abs", "positive"):
        raise InputError(f"dhondt_seats: credit={credit!r} must be 'abs' (|credit|) or 'positive' (max(credit, 0)).")
    per = np.abs(arr) if credit == "abs" else np.clip(arr, 0.0, None)
    if arr.ndim > 1 and not is_attribution and names is not None and arr.shape[-1] != len(names):
        raise InputError(
            f"dhondt_seats: credits of shape {arr.shape} have {arr.shape[-1]} features on the last axis but "
            f"{len(names)} names were given; pass samples x features credits (transpose them?) with one name "
            "per feature.")
    per = per.reshape(-1, arr.shape[-1])
    votes = per.mean(axis=0)
    names = [str(j) for j in range(votes.shape[0])] if names is None else [str(n) for n in names]
    if len(names) != votes.shape[0]:
        raise InputError(
            f"dhondt_seats: got {len(names)} names for {votes.shape[0]} features (credits shape {arr.shape}); "
            "pass one name per feature."
        )
    if len(set(names)) != len(names):
        raise InputError(f"dhondt_seats: feature names must be unique; got {names}.")
    return names, votes


@register_analysis("dhondt", kind="decision", paper="Ogurlu et al. (2024), DhondtXAI: A D'Hondt-based "
                   "explainable AI approach")
def dhondt_seats(
    credits: Any,
    seats: int = 100,
    *,
    names: Sequence[str] | None = None,
    alliances: Mapping[str, Sequence[str]] | None = None,
    threshold: float = 0.0,
    credit: Literal["abs", "positive"] = "abs",
) -> DhondtResult:
    """Seats per feature by D'Hondt from attributions (DhondtXAI, Ogurlu et al. 2024).

    Args:
        credits: an :class:`~tribute.Attribution` (its player names are used), a 1-D array
            (``features``), a ``samples x features`` array (votes averaged over samples) or a
            mapping name -> credit.
        seats: size of the parliament, default=100.
        names: one name per feature, default=``"0", "1", ...`` (or the attribution's names).
        alliances: alliance name -> member feature names; members pool their votes, default=None.
        threshold: share of all votes in ``[0, 1)`` a list needs to win seats, default=0.0.
        credit: ``"abs"`` (votes = ``|credit|``) or ``"positive"`` (votes = ``max(credit, 0)``),
            default="abs".

    Returns:
        A :class:`DhondtResult`; ``result.plot()`` draws the parliament.
    """
    names_l, votes = _votes(credits, names, credit)
    if isinstance(seats, bool) or not isinstance(seats, (int, np.integer)) or seats < 0:
        raise InputError(f"dhondt_seats: seats={seats!r} must be an integer >= 0, e.g. seats=100.")
    if not (isinstance(threshold, (int, float)) and 0.0 <= float(threshold) < 1.0):
        raise InputError(f"dhondt_seats: threshold={threshold!r} must be a share in [0, 1), e.g. 0.05 for 5%.")
    index = {n: j for j, n in enumerate(names_l)}
    groups: dict[str, list[str]] = {}
    taken: set[str] = set()
    for a, members in (alliances or {}).items():
        mem = [str(m) for m in members]
        if not mem:
            raise InputError(f"dhondt_seats: alliance {a!r} has no members.")
        unknown = [m for m in mem if m not in index]
        if unknown:
            raise InputError(f"dhondt_seats: alliance {a!r} names unknown features {unknown}; features are {names_l}.")
        twice = [m for m in mem if m in taken]
        if twice or len(set(mem)) != len(mem):
            raise InputError(f"dhondt_seats: alliance {a!r} repeats features {twice or mem} (each feature joins at most one alliance).")
        if str(a) in index and str(a) not in mem:
            raise InputError(f"dhondt_seats: alliance name {a!r} clashes with a feature name; rename the alliance.")
        taken.update(mem)
        groups[str(a)] = mem
    lists: list[tuple[str, list[str]]] = list(groups.items()) + [(n, [n]) for n in names_l if n not in taken]
    list_votes = np.array([sum(votes[index[m]] for m in mem) for _, mem in lists], dtype=np.float64)
    total = float(list_votes.sum())
    excluded = [ln for (ln, _), lv in zip(lists, list_votes, strict=True) if total > 0 and lv / total < threshold]
    eligible = np.where(np.isin([ln for ln, _ in lists], excluded), 0.0, list_votes)
    won = dhondt_allocate(eligible, int(seats))
    feature_seats = dict.fromkeys(names_l, 0)
    for (_ln, mem), s in zip(lists, won, strict=True):
        inner = dhondt_allocate([votes[index[m]] for m in mem], int(s))
        for m, k in zip(mem, inner, strict=True):
            feature_seats[m] = int(k)
    return DhondtResult(
        seats=feature_seats,
        votes={n: float(votes[j]) for j, n in enumerate(names_l)},
        list_seats={ln: int(s) for (ln, _), s in zip(lists, won, strict=True)},
        list_votes={ln: float(v) for (ln, _), v in zip(lists, list_votes, strict=True)},
        excluded=excluded,
        total_seats=int(won.sum()),
        alliances=groups,
    )
