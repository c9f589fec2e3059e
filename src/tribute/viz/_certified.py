"""Plots of a certified smoothed attribution: the map with its certified top-k; the certified cosine."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import InputError
from ..models.layout import map_channel_axis as _map_channel_axis
from ._common import (
    DIVERGING_CMAP,
    NEG_COLOR,
    NEUTRAL_COLOR,
    POS_COLOR,
    _figure_and_axes,
    _new_figure,
    _plain,
)
from ._image import _check_channel_axis

__all__ = ["certified_cosine", "certified_map"]


def certified_map(
    result: Any,
    i: int = 0,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (7.0, 3.6),
    channel_axis: int | None = None,
) -> Figure:
    """Draw input ``i``'s smoothed attribution with its certified top-k set and radius.

    Image-shaped players (``H x W``, ``C x H x W`` or ``H x W x C`` with one player per element)
    are drawn as a heat map (channels summed) with the top-k elements outlined; other players as bars, the
    top-k set in colour and the rest grey. The title states the radius, norm and confidence.

    Args:
        result: a :class:`~tribute.methods.certified.CertifiedResult`.
        i: which input, default=0.
        ax: axes to draw on, default=a new figure.
        title: figure title, default states the radius.
        figsize: size of a new figure in inches.
        channel_axis: the channel axis of a 3-D input, ``0`` (``C x H x W``) or ``-1``
            (``H x W x C``). default=None: the one the model reads (``result.channel_axis``,
            from a torch model's first ``Conv2d``), else the shape's where it reads one way only;
            a shape that reads two ways (``(4, 6, 3)``) is refused without it.
    """
    channel_axis = _check_channel_axis(channel_axis, "certified_map")
    if not hasattr(result, "smoothed") or not hasattr(result, "radius"):
        raise InputError(f"certified_map: expected a CertifiedResult; got {type(result).__name__}.")
    n = result.smoothed.shape[0]
    if not 0 <= i < n:
        raise InputError(f"certified_map: i={i} is out of range for {n} inputs.")
    vals = np.asarray(result.smoothed[i], dtype=np.float64)
    top = set(int(t) for t in result.topk[i])
    fig, ax = _figure_and_axes(ax, figsize)
    shape = tuple(int(d) for d in result.input_shape)
    # a 3-D input's channels: told, or as the model reads them, else by the shape where it reads
    # one way only, as tribute.viz.image reads a map. The old tie-break (channels first) drew a
    # channels-last (4, 6, 3) input as a 6x3 map summed over its rows, the top-k circles with
    # it (aud51v)
    told = channel_axis if channel_axis is not None else getattr(result, "channel_axis", None)
    channel = None
    if len(shape) == 3 and int(np.prod(shape)) == vals.size:
        channel = _map_channel_axis(shape, told, "certified_map: the input") % 3
    hw = [d for a, d in enumerate(shape) if a != channel]
    image = len(shape) in (2, 3) and int(np.prod(shape)) == vals.size and min(hw) > 1
    if image:
        grid = vals.reshape(shape)
        mask = np.zeros(vals.size, dtype=bool)
        mask[list(top)] = True
        mask2d = mask.reshape(shape)
        if channel is not None:
            grid, mask2d = grid.sum(channel), np.asarray(mask2d.any(channel))
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
        ax.set_yticks(y, [_plain(s) for s in names])
        ax.axvline(0.0, color="black", linewidth=0.5)
        ax.set_xlabel(f"smoothed {result.method} (coloured: certified top-{result.k})")
    r = float(result.radius[i])
    cert = f"radius {r:.3g} ({result.norm})" if r > 0 else "not certified (radius 0)"
    ax.set_title(title if title is not None else
                 f"Input {i}: top-{result.k} {cert}, confidence {result.confidence:.0%}")
    return fig


def certified_cosine(
    result: Any,
    i: int = 0,
    *,
    max_eps: float | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (9.0, 3.6),
) -> Figure:
    """Wang & Kong's certificate: the certified cosine bound against ``eps``, and the radius per input.

    Left: the certified lower bound on ``cos(g(x), g(x + delta))`` for ``||delta|| <= eps``, for
    input ``i`` (bold) and every other input (faint), with the target ``min_cosine`` and input
    ``i``'s cosine radius marked. Right: the cosine radius of every input (input ``i`` in colour).

    Args:
        result: a :class:`~tribute.methods.certified.CertifiedResult`.
        i: which input to highlight, default=0.
        max_eps: right end of the ``eps`` axis, default=1.25 x the largest ``eps`` at which any
            input's bound is still positive (twice the noise radius if none is).
        title: figure title, default states input ``i``'s radius.
        figsize: size of the figure in inches.
    """
    if not hasattr(result, "cosine_bound") or not hasattr(result, "cosine_radius"):
        raise InputError(f"certified_cosine: expected a CertifiedResult; got {type(result).__name__}.")
    n = result.cosine_radius.shape[0]
    if not 0 <= i < n:
        raise InputError(f"certified_cosine: i={i} is out of range for {n} inputs.")
    if max_eps is None:  # a little past the largest eps with a positive bound (the curve's drop to -1)
        reach = float(np.max(result.radius_at(0.0), initial=0.0))
        top = 1.25 * reach if reach > 0 else 2.0 * float(result.noise)
    else:
        top = float(max_eps)
    if not (np.isfinite(top) and top > 0):
        raise InputError(f"certified_cosine: max_eps={max_eps!r} must be a number > 0.")
    fig = _new_figure(figsize)
    left, right = fig.subplots(1, 2)
    eps = np.linspace(0.0, top, 200)
    curves = result.cosine_bound(eps)
    for j in range(n):
        if j != i:
            left.plot(eps, curves[j], color=NEUTRAL_COLOR, linewidth=0.6, alpha=0.5)
    left.plot(eps, curves[i], color=POS_COLOR, linewidth=2.0, label=f"input {i}")
    left.axhline(result.min_cosine, color="black", linestyle="--", linewidth=0.8,
                 label=f"min_cosine {result.min_cosine:g}")
    r = float(result.cosine_radius[i])
    if r > 0:
        left.axvline(r, color=POS_COLOR, linestyle=":", linewidth=1.0, label=f"radius {r:.3g}")
    left.set_ylim(-1.05, 1.05)
    left.set_xlabel(f"perturbation size eps ({result.norm})")
    left.set_ylabel("certified cos(g(x), g(x+delta)) >=")
    left.legend(loc="lower left", fontsize="small")
    colours = [POS_COLOR if j == i else NEUTRAL_COLOR for j in range(n)]
    right.bar(np.arange(n), result.cosine_radius, color=colours)
    right.set_xlabel("input")
    right.set_ylabel(f"cosine radius ({result.norm}, cos >= {result.min_cosine:g})")
    cert = f"radius {r:.3g} ({result.norm})" if r > 0 else "not certified (radius 0)"
    fig.suptitle(title if title is not None else
                 f"Input {i}: cosine >= {result.min_cosine:g} {cert}, confidence {result.confidence:.0%}")
    return fig
