"""Bar chart of feature responsiveness scores (recourse), unresponsive features labelled."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import InputError
from ._common import MAGNITUDE_COLOR, NEUTRAL_COLOR, _figure_and_axes, _plain

__all__ = ["responsiveness_bars"]


def responsiveness_bars(
    result: Any,
    i: int = 0,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (7.0, 3.6),
) -> Figure:
    """Draw input ``i``'s responsiveness scores as horizontal bars (with ±1.96 stderr).

    Features that cannot give recourse get a grey marker and their reason as text.

    Args:
        result: a :class:`~tribute.methods.responsiveness.ResponsivenessResult`.
        i: which input, default=0.
        ax: axes to draw on, default=a new figure.
        title: figure title, default names the input and its current/target classes.
        figsize: size of a new figure in inches.
    """
    scores = getattr(result, "scores", None)
    if scores is None or not hasattr(result, "reasons"):
        raise InputError(f"responsiveness_bars: expected a ResponsivenessResult; got {type(result).__name__}.")
    if not 0 <= i < scores.shape[0]:
        raise InputError(f"responsiveness_bars: i={i} is out of range for {scores.shape[0]} inputs.")
    names = list(result.feature_names)
    s = np.nan_to_num(np.asarray(scores[i], dtype=np.float64), nan=0.0)
    err = 1.96 * np.nan_to_num(np.asarray(result.stderr[i], dtype=np.float64), nan=0.0)
    order = np.argsort(-s, kind="stable")[::-1]  # largest at the top
    fig, ax = _figure_and_axes(ax, figsize)
    y = np.arange(len(names))
    ok = np.array([result.reasons[i][j] == "responsive" for j in order])
    ax.barh(y, s[order], xerr=np.where(err[order] > 0, err[order], 0.0),
            color=np.where(ok, MAGNITUDE_COLOR, NEUTRAL_COLOR), ecolor="black", capsize=2)
    for row, j in enumerate(order):
        if not ok[row]:
            ax.text(0.01, row, result.reasons[i][j], va="center", fontsize=7, color="black")
    ax.set_yticks(y, [_plain(names[j]) for j in order])
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("responsiveness: P(random allowed action attains the target)")
    cur, tgt = int(result.current[i]), int(result.target[i])
    ax.set_title(title if title is not None else f"Recourse for input {i} (class {cur} -> {tgt})")
    return fig
