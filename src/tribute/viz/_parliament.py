"""Parliament (hemicycle) plot of a DhondtXAI seat allocation.

Seats are dots on concentric half rings; each ring holds a number of seats proportional to its
radius, and seats are handed out by angle from left to right, party after party (largest party
first), so each party occupies one wedge as in the usual parliament diagrams.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from ..errors import InputError
from ._common import NEUTRAL_COLOR, PALETTE, _figure_and_axes, _plain

# Colours past the 8 colour-blind-safe ones: matplotlib's tab20 (every party its own colour
# up to 28 parties; the palette repeats after that, adjacent wedges still differ).
_MORE = tuple(to_hex(c) for c in colormaps["tab20"].colors)  # type: ignore[attr-defined]


def _party_colour(i: int) -> str:
    every = PALETTE + _MORE
    return every[i % len(every)]

__all__ = ["hemicycle_positions", "parliament"]


def hemicycle_positions(n_seats: int, rows: int | None = None) -> np.ndarray:
    """``n_seats x 2`` seat centres on a half disc, ordered by angle (left to right).

    Args:
        n_seats: number of seats (>= 0).
        rows: number of rings, default=about ``sqrt(n_seats / 2)`` (at least 1).
    """
    if n_seats <= 0:
        return np.zeros((0, 2))
    rows = max(1, round(float(np.sqrt(n_seats / 2.0)))) if rows is None else max(1, min(int(rows), n_seats))
    radii = np.linspace(0.5, 1.0, rows) if rows > 1 else np.array([1.0])
    share = radii / radii.sum() * n_seats
    per_row = np.floor(share).astype(int)
    # Largest remainders take the leftover seats (outer rings first on ties).
    for j in np.argsort(-(share - per_row) - radii * 1e-9, kind="stable")[: n_seats - int(per_row.sum())]:
        per_row[j] += 1
    pts: list[tuple[float, float, float]] = []
    for r, k in zip(radii, per_row, strict=True):
        angles = np.array([np.pi / 2]) if k == 1 else np.linspace(np.pi, 0.0, int(k))
        pts.extend((float(a), r * np.cos(a), r * np.sin(a)) for a in angles)
    pts.sort(key=lambda p: (-p[0], p[1] ** 2 + p[2] ** 2))
    return np.array([[x, y] for _, x, y in pts], dtype=np.float64)


def parliament(
    result: Any,
    *,
    by: str = "feature",
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (7.0, 4.2),
) -> Figure:
    """Draw a :class:`~tribute.methods.dhondt.DhondtResult` as a parliament.

    Args:
        result: the output of :func:`tribute.dhondt_seats` (anything with ``seats`` and
            ``list_seats`` mappings).
        by: ``"feature"`` (one colour per feature) or ``"alliance"`` (alliances pooled),
            default="feature".
        ax: axes to draw on, default=a new figure.
        title: figure title, default="DhondtXAI parliament (N seats)".
        figsize: size of a new figure in inches, default=(7.0, 4.2).
    """
    if by not in ("feature", "alliance"):
        raise InputError(f"parliament: by={by!r} must be 'feature' or 'alliance'.")
    seats = getattr(result, "seats" if by == "feature" else "list_seats", None)
    if not isinstance(seats, dict):
        raise InputError(f"parliament: expected a DhondtResult (from tribute.dhondt_seats); got {type(result).__name__}.")
    parties = [(str(k), int(v)) for k, v in seats.items() if int(v) > 0]
    parties.sort(key=lambda kv: -kv[1])
    n = sum(v for _, v in parties)
    fig, ax = _figure_and_axes(ax, figsize)
    pos = hemicycle_positions(n)
    start = 0
    size = max(12.0, 2400.0 / max(n, 1))
    for i, (name, k) in enumerate(parties):
        colour = _party_colour(i)  # grey for every party past the 8th hid their wedges
        p = pos[start : start + k]
        ax.scatter(p[:, 0], p[:, 1], s=size, color=colour, label=f"{_plain(name)} ({k})", edgecolors="white", linewidths=0.5)
        start += k
    ax.set_aspect("equal")
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-0.1, 1.1)
    ax.axis("off")
    if parties:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    else:
        ax.text(0.0, 0.5, "no seats allocated", ha="center", va="center", color=NEUTRAL_COLOR)
    ax.set_title(title if title is not None else f"DhondtXAI parliament ({n} seats)")
    return fig
