"""Swarm and halo plots of feature interaction scores over a Rashomon set (Li et al. 2024).

* **Swarm**: one row per feature pair, one dot per model of the set at its FIS
  (``phi_ij - phi_i - phi_j``), dots spread vertically where they crowd (a beeswarm), and a
  bar for the pair's range (min..max) over the set; the zero line is "no interaction".
* **Halo**: one panel per pair; each model is a point at (sum of main effects ``phi_i +
  phi_j``, joint reliance ``phi_ij``); the diagonal is "no interaction" and the vertical
  distance to it is the FIS. The cloud of points is the pair's halo across the set.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import InputError
from ._common import NEUTRAL_COLOR, PALETTE, _figure_and_axes, _new_figure, _plain

__all__ = ["rashomon_halo", "rashomon_swarm"]


def _check(result: Any, func: str) -> None:
    for attr in ("fis", "pairs", "main", "joint"):
        if not hasattr(result, attr):
            raise InputError(f"{func}: expected a RashomonResult (from tribute.rashomon_interactions); "
                             f"got {type(result).__name__}.")


def _swarm_offsets(values: np.ndarray, width: float, spread: float = 0.35) -> np.ndarray:
    """Vertical offsets that keep dots closer than ``width`` (in x) from overlapping."""
    order = np.argsort(values, kind="stable")
    off = np.zeros(len(values))
    placed: list[tuple[float, float]] = []
    step = spread / max(4, int(math.sqrt(len(values)) * 2))
    for idx in order:
        x = float(values[idx])
        near = [o for (px, o) in placed if abs(px - x) < width]
        k = 0
        while True:
            cand = (k + 1) // 2 * step * (1 if k % 2 else -1)
            if all(abs(cand - o) > step * 0.9 for o in near) or abs(cand) >= spread:
                break
            k += 1
        off[idx] = max(-spread, min(spread, cand))
        placed.append((x, off[idx]))
    return off


def rashomon_swarm(result: Any, *, ax: Axes | None = None, title: str | None = None,
                   figsize: tuple[float, float] | None = None, max_pairs: int = 20) -> Figure:
    """Swarm plot: each pair's FIS across the models of the Rashomon set.

    Args:
        result: a :class:`~tribute.methods.rashomon.RashomonResult`.
        ax: axes to draw on, default=a new figure.
        title: default="Feature interaction scores over the Rashomon set (M models)".
        figsize: size of a new figure, default=(7, 0.5 per pair + 1.2).
        max_pairs: pairs shown (largest mean ``|FIS|`` first). default=20.
    """
    _check(result, "rashomon_swarm")
    fis = np.asarray(result.fis, dtype=np.float64)
    names = result.pair_names()
    order = np.argsort(-np.abs(fis).mean(0), kind="stable")[:max_pairs] if fis.size else np.arange(0)
    rows = len(order)
    fig, ax = _figure_and_axes(ax, figsize or (7.0, 0.5 * max(rows, 1) + 1.2))
    span = float(np.ptp(fis)) if fis.size else 1.0
    for r, q in enumerate(order):
        y0 = rows - 1 - r
        vals = fis[:, q]
        colour = PALETTE[r % len(PALETTE)]
        ax.hlines(y0, vals.min(), vals.max(), color=colour, alpha=0.35, linewidth=6)
        ax.scatter(vals, y0 + _swarm_offsets(vals, 0.015 * max(span, 1e-12)), s=18, color=colour,
                   edgecolors="white", linewidths=0.4, zorder=3)
    ax.axvline(0.0, color=NEUTRAL_COLOR, linewidth=0.8, linestyle="--")
    ax.set_yticks(range(rows))
    ax.set_yticklabels([_plain(names[q]) for q in order][::-1])
    ax.set_ylim(-0.7, rows - 0.3)
    ax.set_xlabel("FIS = joint reliance - sum of main reliances (loss units)")
    ax.set_title(title if title is not None else
                 f"Feature interaction scores over the Rashomon set ({result.n_models} models)")
    if fis.shape[0] == 0:
        ax.text(0.5, 0.5, "empty Rashomon set", transform=ax.transAxes, ha="center", color=NEUTRAL_COLOR)
    return fig


def rashomon_halo(result: Any, *, pairs: list[tuple[int, int]] | None = None,
                  title: str | None = None, figsize: tuple[float, float] | None = None,
                  max_pairs: int = 6) -> Figure:
    """Halo plot: per pair, joint reliance vs the sum of main reliances, one point per model.

    Args:
        result: a :class:`~tribute.methods.rashomon.RashomonResult`.
        pairs: pairs to draw. default=None (the ``max_pairs`` with the largest mean ``|FIS|``).
        title: figure title. default="Halo plot: joint vs additive reliance (M models)".
        figsize: default=(3.2 per panel, 3.4).
        max_pairs: panels when ``pairs`` is None. default=6.
    """
    _check(result, "rashomon_halo")
    fis = np.asarray(result.fis, dtype=np.float64)
    if pairs is None:
        cols = list(np.argsort(-np.abs(fis).mean(0), kind="stable")[:max_pairs]) if fis.size else []
    else:
        cols = [result._col(p) for p in pairs]
    k = max(1, len(cols))
    fig = _new_figure(figsize or (3.2 * k, 3.4))
    axes = [fig.add_subplot(1, k, i + 1) for i in range(k)]
    main = np.asarray(result.main, dtype=np.float64)
    joint = np.asarray(result.joint, dtype=np.float64)
    for a, q in zip(axes, cols):
        i, j = result.pairs[q]
        add = main[:, i] + main[:, j]
        jt = joint[:, q]
        lo = float(min(add.min(), jt.min(), 0.0)) if add.size else 0.0
        hi = float(max(add.max(), jt.max(), 1e-12)) if add.size else 1.0
        pad = 0.08 * (hi - lo or 1.0)
        a.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color=NEUTRAL_COLOR, linestyle="--",
               linewidth=0.8, label="no interaction")
        colour = PALETTE[0]
        a.scatter(add, jt, s=20, color=colour, alpha=0.8, edgecolors="white", linewidths=0.4,
                  label="models")
        if add.size > 2:  # the halo: a ring around the cloud's centre through its farthest model
            cx, cy = float(add.mean()), float(jt.mean())
            rad = float(np.sqrt(((add - cx) ** 2 + (jt - cy) ** 2).max()))
            t = np.linspace(0, 2 * np.pi, 100)
            a.plot(cx + rad * np.cos(t), cy + rad * np.sin(t), color=colour, alpha=0.35)
        a.set_xlim(lo - pad, hi + pad)
        a.set_ylim(lo - pad, hi + pad)
        a.set_aspect("equal", adjustable="box")
        a.set_title(_plain(result.pair_names()[q]), fontsize=9)
        a.set_xlabel("phi_i + phi_j", fontsize=8)
        a.set_ylabel("phi_ij (joint)", fontsize=8)
    if not cols:
        axes[0].text(0.5, 0.5, "no pairs / empty set", transform=axes[0].transAxes, ha="center")
    else:
        axes[0].legend(fontsize=7, frameon=False, loc="upper left")
    fig.suptitle(title if title is not None else
                 f"Halo plot: joint vs additive reliance ({result.n_models} models)", fontsize=10)
    return fig
