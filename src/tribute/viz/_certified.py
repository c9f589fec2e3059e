"""Plot of a certified smoothed attribution: the smoothed map, its certified top-k, the radius."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import InputError
from ._common import DIVERGING_CMAP, NEG_COLOR, NEUTRAL_COLOR, POS_COLOR, _figure_and_axes

__all__ = ["certified_map"]


def certified_map(
    result: Any,
    i: int = 0,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (7.0, 3.6),
) -> Figure:
    """Draw input ``i``'s smoothed attribution with its certified top-k set and radius.

    Image-shaped players (``H x W`` or ``C x H x W`` with one player per element) are drawn as a
    heat map (channels summed) with the top-k elements outlined; other players as bars, the
    top-k set in colour and the rest grey. The title states the radius, norm and confidence.

    Args:
        result: a :class:`~tribute.methods.certified.CertifiedResult`.
        i: which input, default=0.
        ax: axes to draw on, default=a new figure.
        title: figure title, default states the radius.
        figsize: size of a new figure in inches.
    """
    if not hasattr(result, "smoothed") or not hasattr(result, "radius"):
        raise InputError(f"certified_map: expected a CertifiedResult; got {type(result).__name__}.")
    n = result.smoothed.shape[0]
    if not 0 <= i < n:
        raise InputError(f"certified_map: i={i} is out of range for {n} inputs.")
    vals = np.asarray(result.smoothed[i], dtype=np.float64)
    top = set(int(t) for t in result.topk[i])
    fig, ax = _figure_and_axes(ax, figsize)
    shape = tuple(result.input_shape)
    image = len(shape) in (2, 3) and int(np.prod(shape)) == vals.size and min(shape[-2:]) > 1
    if image:
        grid = vals.reshape(shape)
        mask = np.zeros(vals.size, dtype=bool)
        mask[list(top)] = True
        mask2d = mask.reshape(shape)
        if grid.ndim == 3:
            grid, mask2d = grid.sum(0), np.asarray(mask2d.any(0))
        lim = float(np.abs(grid).max()) or 1.0
        im = ax.imshow(grid, cmap=DIVERGING_CMAP, vmin=-lim, vmax=lim)
        ys, xs = np.nonzero(mask2d)
        ax.scatter(xs, ys, s=30, facecolors="none", edgecolors="black", linewidths=1.0, label="certified top-k")
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        names = list(result.feature_names)
        colours = [(POS_COLOR if v >= 0 else NEG_COLOR) if j in top else NEUTRAL_COLOR for j, v in enumerate(vals)]
        y = np.arange(len(names))[::-1]
        ax.barh(y, vals, color=colours)
        ax.set_yticks(y, names)
        ax.axvline(0.0, color="black", linewidth=0.5)
        ax.set_xlabel(f"smoothed {result.method} (coloured: certified top-{result.k})")
    r = float(result.radius[i])
    cert = f"radius {r:.3g} ({result.norm})" if r > 0 else "not certified (radius 0)"
    ax.set_title(title if title is not None else
                 f"Input {i}: top-{result.k} {cert}, confidence {result.confidence:.0%}")
    return fig
