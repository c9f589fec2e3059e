"""TCAV plots (Kim et al. 2018, Fig. 4-style bars): a concept's scores next to the null.

:func:`tcav_plot` draws one :class:`~tribute.methods.tcav.TCAVResult`: the concept's TCAV scores
over its ``n_random`` runs (bar = mean, whisker = standard deviation, dots = runs), the
random-vs-random scores (the paper's null) and, when computed, the permutation null of the mean
score, with the p-value and a star (significant) or "n.s.". :func:`tcav_bars` draws several
results (concepts x layers) as grouped bars with Bonferroni-adjusted stars, as in the paper's
figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import InputError
from ._common import MAGNITUDE_COLOR, NEUTRAL_COLOR, PALETTE, _figure_and_axes, _plain

__all__ = ["tcav_bars", "tcav_plot"]


def _check(result: Any, func: str) -> None:
    for attr in ("score", "scores", "random_scores", "p_value"):
        if not hasattr(result, attr):
            raise InputError(f"{func}: expected a TCAVResult (from tribute.tcav); got {type(result).__name__} "
                             f"without .{attr}.")


def _p_text(p: float) -> str:
    return f"p={p:.2g}" if p >= 1e-3 else f"p={p:.1e}"


def tcav_plot(
    result: Any,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (5.5, 3.8),
) -> Figure:
    """Draw a TCAV result next to its null distribution(s).

    Args:
        result: a :class:`~tribute.methods.tcav.TCAVResult`.
        ax: axes to draw on, default=a new figure.
        title: default="TCAV: <concept> at <layer>, class <target>".
        figsize: size of a new figure in inches, default=(5.5, 3.8).
    """
    _check(result, "tcav_plot")
    fig, ax = _figure_and_axes(ax, figsize)
    rng = np.random.default_rng(0)  # jitter only
    columns: list[tuple[str, np.ndarray, str]] = [
        (_plain(getattr(result, "concept", "concept")), np.asarray(result.scores, dtype=np.float64), MAGNITUDE_COLOR),
        ("random vs random", np.asarray(result.random_scores, dtype=np.float64), NEUTRAL_COLOR)]
    null = np.asarray(getattr(result, "null_scores", np.zeros(0)), dtype=np.float64)
    for j, (_label, vals, colour) in enumerate(columns):
        ax.bar(j, vals.mean(), width=0.6, color=colour, alpha=0.75, yerr=vals.std(), capsize=4)
        ax.scatter(j + rng.uniform(-0.18, 0.18, vals.size), vals, s=10, color="black", zorder=3)
    labels = [c[0] for c in columns]
    if null.size:
        parts = ax.violinplot([null], positions=[len(columns)], widths=0.6, showmeans=True)
        for body in parts["bodies"]:  # type: ignore[attr-defined]
            body.set_facecolor(NEUTRAL_COLOR)
        ax.axhline(result.score, xmin=0.0, xmax=1.0, color=MAGNITUDE_COLOR, lw=0.8, ls=":",
                   label="observed mean score")
        labels.append("permutation null\n(mean score)")
    ax.axhline(0.5, color="black", lw=0.8, ls="--", label="0.5 (no direction)")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylim(0.0, 1.15)
    ax.set_ylabel("TCAV score")
    sig = bool(getattr(result, "significant", result.p_value < getattr(result, "alpha", 0.05)))
    mark = "*" if sig else "n.s."
    test = getattr(result, "test", "welch")
    top = min(1.05, float(columns[0][1].mean() + columns[0][1].std()) + 0.03)
    ax.text(0, top, mark, ha="center", va="bottom", fontsize=14 if sig else 9)
    ax.text(0.99, 0.02, f"{test} test: {_p_text(result.p_value)}, alpha={getattr(result, 'alpha', 0.05):g} -> "
            f"{'significant' if sig else 'not significant'}", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=8)
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    ax.set_title(title if title is not None else
                 f"TCAV: {getattr(result, 'concept', 'concept')} at {getattr(result, 'layer', '?')}, "
                 f"class {getattr(result, 'target', '?')}", fontsize=10)
    return fig


def tcav_bars(
    results: Sequence[Any],
    *,
    alpha: float = 0.05,
    bonferroni: bool = True,
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Grouped bars of several TCAV results (one group per layer, one colour per concept).

    A star marks a significant concept: ``p < alpha / k`` over the ``k`` results with
    ``bonferroni=True`` (Kim et al. recommend the correction when testing many concepts),
    ``p < alpha`` otherwise; others are hatched and labelled "n.s.".

    Args:
        results: :class:`~tribute.methods.tcav.TCAVResult` objects (any concepts, layers and
            classes; with several classes each concept has one bar per class), each concept,
            layer and class once.
        alpha: family-wise level, default=0.05.
        bonferroni: divide ``alpha`` by the number of results, default=True.
        ax: axes to draw on, default=a new figure.
        title: default names the class and the threshold used.
        figsize: size of a new figure, default grows with the number of bars.
    """
    results = list(results)
    if not results:
        raise InputError("tcav_bars: results is empty; pass one or more TCAVResult objects.")
    for r in results:
        _check(r, "tcav_bars")
    if not 0.0 < alpha < 1.0:
        raise InputError(f"tcav_bars: alpha={alpha!r} must be in (0, 1).")
    level = alpha / len(results) if bonferroni else alpha
    layers = list(dict.fromkeys(str(getattr(r, "layer", "?")) for r in results))
    # one bar series per concept, per concept and class when the results test several classes
    # (two classes of one concept and layer were drawn on the same spot, one hiding the other)
    by_class = len({str(getattr(r, "target", "?")) for r in results}) > 1

    def series(r: Any) -> str:
        name = str(getattr(r, "concept", "concept"))
        return f"{name} (class {getattr(r, 'target', '?')})" if by_class else name

    concepts = list(dict.fromkeys(series(r) for r in results))
    seen: dict[tuple[str, str], int] = {}
    for i, r in enumerate(results):
        key = (str(getattr(r, "layer", "?")), series(r))
        if key in seen:
            raise InputError(
                f"tcav_bars: results[{seen[key]}] and results[{i}] are both {key[1]!r} at layer "
                f"{key[0]!r}; their bars would be drawn on the same spot. Pass each concept, "
                "layer and class once.")
        seen[key] = i
    fig, ax = _figure_and_axes(ax, figsize or (max(4.0, 1.2 + 0.5 * len(results) + 0.4 * len(layers)), 3.8))
    width = 0.8 / len(concepts)
    for r in results:
        g, c = layers.index(str(getattr(r, "layer", "?"))), concepts.index(series(r))
        x = g + (c - (len(concepts) - 1) / 2) * width
        scores = np.asarray(r.scores, dtype=np.float64)
        sig = bool(r.p_value < level)
        colour = PALETTE[c % len(PALETTE)]
        ax.bar(x, r.score, width=width * 0.9, color=colour, alpha=0.85 if sig else 0.35,
               hatch=None if sig else "//", yerr=scores.std(), capsize=3, edgecolor=colour)
        top = min(1.05, r.score + scores.std() + 0.02)
        ax.text(x, top, "*" if sig else "n.s.", ha="center", va="bottom", fontsize=12 if sig else 7)
    for c, name in enumerate(concepts):
        ax.bar(np.nan, np.nan, color=PALETTE[c % len(PALETTE)], label=_plain(name))
    ax.axhline(0.5, color="black", lw=0.8, ls="--")
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels([_plain(s) for s in layers])
    ax.set_xlabel("layer")
    ax.set_ylim(0.0, 1.15)
    ax.set_ylabel("TCAV score")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    targets = sorted({str(getattr(r, "target", "?")) for r in results})
    rule = f"Bonferroni: p < {alpha:g}/{len(results)}" if bonferroni else f"p < {alpha:g}"
    ax.set_title(title if title is not None else f"TCAV, class {', '.join(targets)} (* = {rule})", fontsize=10)
    return fig
