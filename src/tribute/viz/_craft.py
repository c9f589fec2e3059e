"""CRAFT figure: top crops per concept, concept importances and a concept map overlay.

One row per concept (most important first): its importance bar (total Sobol index with its
standard error) and its ``n_top`` crops; a last panel overlays the concept maps on one image
(each pixel coloured by its dominant concept, opacity by that concept's coefficient).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from ..errors import InputError
from ._common import MAGNITUDE_COLOR, PALETTE, _new_figure

__all__ = ["concept_overlay", "craft_plot"]


def _show(img: np.ndarray) -> np.ndarray:
    """``C x H x W`` -> displayable ``H x W`` (grey) or ``H x W x 3`` in [0, 1]."""
    a = np.asarray(img, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1)


def concept_overlay(maps: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """RGBA ``H x W x 4`` overlay of ``concepts x H x W`` maps: colour = dominant concept
    (palette by rank in ``order``; concepts missing from a partial ``order`` follow it in index
    order), alpha = its coefficient relative to the image's maximum."""
    m = np.asarray(maps, dtype=np.float64)
    k = m.shape[0]
    first = np.arange(k) if order is None else np.asarray(order, dtype=np.int64).reshape(-1)
    if first.size and (first.min() < 0 or first.max() >= k or np.unique(first).size != first.size):
        raise InputError(f"concept_overlay: order={first.tolist()} must list distinct concepts in 0..{k - 1}.")
    ranked = np.concatenate([first, np.setdiff1d(np.arange(k), first)])
    rank = np.empty(k, dtype=np.int64)
    rank[ranked] = np.arange(k)
    top = m.argmax(axis=0)
    val = m.max(axis=0)
    hi = float(val.max())
    colours = np.array([to_rgb(PALETTE[int(rank[c]) % len(PALETTE)]) for c in range(k)])
    rgba = np.zeros((*top.shape, 4))
    rgba[..., :3] = colours[top]
    rgba[..., 3] = 0.75 * (val / hi if hi > 0 else val)
    return rgba


def craft_plot(result: Any, image: int = 0, *, max_concepts: int = 8, n_top: int | None = None,
               title: str | None = None) -> Figure:
    """Top crops per concept, importance bars and the concept map overlay of one image.

    Args:
        result: a :class:`~tribute.CRAFTResult`.
        image: index into ``result.images`` for the overlay, default=0.
        max_concepts: concepts shown (most important first), default=8.
        n_top: crops per concept shown, default=all stored (``result.top_crops.shape[1]``).
        title: figure title, default names the layer and class.
    """
    n_img = result.images.shape[0]
    if isinstance(image, bool) or not isinstance(image, (int, np.integer)) or not 0 <= image < n_img:
        raise InputError(f"craft_plot: image={image!r} must index result.images (0..{n_img - 1}).")
    order = result.order()[: max(1, int(max_concepts))]
    k = len(order)
    n_crops = result.top_crops.shape[1] if n_top is None else max(1, min(int(n_top), result.top_crops.shape[1]))
    fig = _new_figure((2.2 + 1.1 * n_crops + 3.2, 0.3 + 1.1 * k))
    grid = fig.add_gridspec(k, n_crops + 2, width_ratios=[2.0] + [1.0] * n_crops + [3.0])
    for row, c in enumerate(order):
        ax = fig.add_subplot(grid[row, 0])
        colour = PALETTE[row % len(PALETTE)]
        ax.barh([0], [result.importances[c]], xerr=[result.stderr[c]], color=colour, ecolor=MAGNITUDE_COLOR)
        ax.set_xlim(0, max(1e-9, float(np.max(result.importances + result.stderr))) * 1.05)
        ax.set_yticks([0], [f"concept {c}"])
        if row < k - 1:
            ax.set_xticks([])
        else:
            ax.set_xlabel("Sobol total index")
        for j in range(n_crops):
            cax = fig.add_subplot(grid[row, 1 + j])
            crop = result.crops[result.top_crops[c, j]]
            shown = _show(crop)
            cax.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
            cax.set_xticks([])
            cax.set_yticks([])
            for spine in cax.spines.values():
                spine.set_color(colour)
                spine.set_linewidth(2)
    oax = fig.add_subplot(grid[:, -1])
    shown = _show(result.images[image])
    oax.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
    oax.imshow(concept_overlay(result.concept_maps[image], result.order()))
    oax.set_xticks([])
    oax.set_yticks([])
    oax.set_title(f"concept map, image {image}", fontsize=9)
    fig.suptitle(title or f"CRAFT concepts at {result.layer!r}, class {result.target}", fontsize=10)
    return fig
