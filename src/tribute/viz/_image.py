"""Heat maps of dense (pixel) attributions: :func:`image` and :func:`image_grid`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure

from ..models.layout import map_channel_axis as _map_channel_axis
from ._common import (
    DIVERGING_CMAP,
    SEQUENTIAL_CMAP,
    SIGNED_LABEL,
    UNSIGNED_LABEL,
    _as_array,
    _check_finite,
    _figure_and_axes,
    _meta,
    _method_name,
    _new_figure,
    _plain,
    _to_numpy,
)

__all__ = ["image", "image_grid"]

_CHANNEL_SIZES = (1, 2, 3, 4)
_LUMA = np.array([0.299, 0.587, 0.114])


def _axis_from_underlay(a: np.ndarray, image: Any) -> int | None:
    """The channel axis of a map ``a`` that reads both ways (:func:`_map_channel_axis`) where
    the underlay ``image`` tells: the one reading whose (H, W) has the underlay's aspect ratio
    (the map may be coarser, e.g. Grad-CAM's). None where the map reads one way only, or the
    underlay tells neither reading apart (then the map is refused as without one)."""
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3 or a.shape[0] not in _CHANNEL_SIZES or a.shape[-1] not in _CHANNEL_SIZES:
        return None
    try:
        raw = np.shape(_as_array(image, "image"))
        under = _display_image(image, "image")
    except ValueError:
        return None  # the underlay's own error is raised where it is read
    if len(raw) == 4 and raw[0] == 1:
        raw = raw[1:]
    if len(raw) == 3 and raw[0] in _CHANNEL_SIZES and raw[-1] in _CHANNEL_SIZES:
        # the underlay reads two ways too and tells nothing: a torch CNN's (3, 4, 4) map over
        # its (3, 4, 4) input was drawn as a 3x4 map summed over the image's columns (the
        # underlay read channels last); a (2, 4, 4) one likewise (review rev50v)
        return None
    hw = under.shape[:2]
    fits = [axis for axis, mhw in ((0, a.shape[1:]), (-1, a.shape[:2])) if _same_aspect(mhw, hw)]
    return fits[0] if len(fits) == 1 else None


def _check_channel_axis(channel_axis: Any, func: str) -> int | None:
    if channel_axis is None:
        return None
    if isinstance(channel_axis, bool) or channel_axis not in (0, -1, 2):
        raise ValueError(
            f"{func}: channel_axis must be None (read it from the shape), 0 (C, H, W) or -1 "
            f"(H, W, C; 2 means the same); got {channel_axis!r}"
        )
    return 0 if channel_axis == 0 else -1


def _recorded_axis(obj: Any) -> int | None:
    """The channel axis an ``Attribution`` recorded from its model (``layout.channel_axis``:
    a torch CNN's first ``Conv2d``), None for anything else."""
    axis = getattr(_meta(obj, "layout"), "channel_axis", None)
    return axis if axis in (0, -1) and not isinstance(axis, bool) else None


def _common_recorded_axis(maps: Any) -> int | None:
    """The channel axis every map of ``image_grid``'s ``maps`` recorded (Attributions of models
    that say their layout, all alike); None where any map is an array or they differ."""
    if isinstance(maps, dict):
        items: list[Any] = list(maps.values())
    elif isinstance(maps, (list, tuple)):
        items = [m for row in maps for m in (row if isinstance(row, (list, tuple)) else [row])]
    else:
        items = [maps]
    axes = {_recorded_axis(m) if m is not None else "none" for m in items}
    axes.discard("none")
    if len(axes) != 1:
        return None
    axis = axes.pop()
    return axis if isinstance(axis, int) else None


def _per_pixel_groups(vals: np.ndarray, ids: np.ndarray, channel_axis: int | None = None,
                      name: str = "attr") -> np.ndarray:
    """Grouped credits spread over their elements (``vals`` ``(N, [T,] C, H, W)``: every element
    holds its group's credit; ``ids`` ``(N, C, H, W)``: its group) such that summing a pixel's
    channels counts each group at that pixel once: a superpixel spanning the 3 channels is drawn
    with its credit, not 3 times it. Each element is divided by how many elements of its pixel
    (channels-last ``(H, W, C)`` read as :func:`_reduce_map` reads it) share its group."""
    axis = 1 + _map_channel_axis(ids.shape[1:], channel_axis, name) % 3
    ids_c = np.moveaxis(ids, axis, -1)
    count = np.moveaxis((ids_c[..., :, None] == ids_c[..., None, :]).sum(-1), -1, axis)
    out: np.ndarray = vals / (count[:, None] if vals.ndim == ids.ndim + 1 else count)
    return out


def _reduce_map(arr: np.ndarray, name: str, signed: bool, channel_axis: int | None = None
                ) -> np.ndarray:
    """One ``(H, W)`` map from ``(H, W)``, ``(C, H, W)`` (or ``(H, W, C)``, ``(1, C, H, W)``).

    Signed maps sum the channels (credit is additive over a pixel's channels); unsigned
    maps sum their absolute values, so opposite-signed channels do not cancel.
    """
    a = _check_finite(arr, name)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3:
        axis = _map_channel_axis(a.shape, channel_axis, name)
        return np.asarray(a.sum(axis=axis) if signed else np.abs(a).sum(axis=axis))
    if a.ndim == 2:
        return a if signed else np.abs(a)
    raise ValueError(
        f"{name} must have shape (H, W) or (C, H, W) for one image; got shape {arr.shape}. "
        f"For a batch use image_grid, or plot one sample ({name}[i])"
    )


def _attribution_maps(obj: Any, name: str, channel_axis: int | None = None) -> np.ndarray | None:
    """The maps of a tribute ``Attribution`` (it has a ``.layout``) as ``(N, *input_shape)``.

    Its first axis is always the batch and, with several targets, the second the targets, so
    neither is guessed from the shape: a batch of grayscale maps ``(N, H, W)`` is not read as
    ``N`` channels of one image, and a target axis is never summed like channels. Grouped
    players (superpixels) are spread over their elements (``to_input_shape``). None for
    plain arrays, tensors and other attribution-like objects.
    """
    layout = _meta(obj, "layout")
    if layout is None or not hasattr(layout, "dense") or not hasattr(layout, "multi_target"):
        return None
    if layout.dense:
        vals = obj.values
    elif getattr(obj, "groups", None) is not None:
        vals = obj.to_input_shape()
        shapes: tuple[tuple[int, ...], ...] = tuple(getattr(layout, "input_shapes", ()))
        shape = shapes[0] if len(shapes) == 1 else ()
        if len(shape) == 4 and shape[0] == 1:  # (1, C, H, W): _reduce_map drops the 1 (was drawn C x)
            shape = shape[1:]
            vals = np.reshape(_to_numpy(vals, f"{name}.values"), (*np.shape(vals)[:-4], *shape))
        if not isinstance(vals, tuple) and len(shape) == 3:
            g = np.asarray(obj.groups)
            ids = np.broadcast_to(g.reshape(-1, *shape), (np.shape(vals)[0], *shape))
            vals = _per_pixel_groups(_to_numpy(vals, f"{name}.values"), ids, channel_axis, name)
    else:
        kind = getattr(obj, "player_kind", "feature")
        raise ValueError(
            f"{name}: its players are {kind}s without a map to input elements (values shape "
            f"{tuple(np.shape(obj.values))}), not pixels; plot them with bar (attr.plot(kind='bar'))"
        )
    arr = _to_numpy(vals, f"{name}.values")
    if layout.multi_target:
        if arr.ndim < 2 or arr.shape[1] != 1:
            n_t = arr.shape[1] if arr.ndim >= 2 else 0
            raise ValueError(
                f"{name} explains {n_t} targets (values shape {arr.shape}: batch x targets x "
                f"...); plot one target, e.g. attr.plot(index=0, target=t) or "
                f"{name}.values[:, t] (summing the targets' maps would be no one's credit)"
            )
        arr = arr[:, 0]
    return arr


def _one_map(obj: Any, name: str, func: str, channel_axis: int | None = None) -> np.ndarray:
    """One sample's map: an Attribution must hold exactly one sample, anything else is read
    as a map (``(H, W)``, ``(C, H, W)``, ...) as it is."""
    maps = _attribution_maps(obj, name, channel_axis)
    if maps is None:
        return _as_array(obj, name)
    if maps.shape[0] != 1:
        raise ValueError(
            f"{func}: {name} holds {maps.shape[0]} samples (maps of shape {maps.shape}); plot "
            f"one with attr.plot(index=i), or all of them with image_grid"
        )
    return np.asarray(maps[0])


def _same_aspect(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return abs(a[0] * b[1] - a[1] * b[0]) <= 0.01 * a[0] * b[1]


def _display_image(img: Any, name: str, hw: tuple[int, ...] | None = None) -> np.ndarray:
    """An underlay as ``(H, W)`` or ``(H, W, 3)`` floats in [0, 1].

    Accepts ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` with C in 1, 3, 4 (alpha dropped).
    When both readings are possible (``(3, 4, 4)``: 3 channels of 4x4, or 3x4 with 4
    channels) the one whose spatial shape fits the map's ``hw`` is taken.
    Values in [0, 1] are kept, values in [0, 255] are divided by 255, anything else
    (e.g. mean/std-normalised inputs) is min-max scaled.
    """
    a = _check_finite(_as_array(img, name), name)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3:
        first, last = a.shape[0] in (1, 3, 4), a.shape[-1] in (1, 3, 4)
        if first and last and hw is not None:  # ambiguous: the reading that fits the map
            last = _same_aspect(a.shape[:2], hw) or not _same_aspect(a.shape[1:], hw)
        if first and not last:
            a = np.moveaxis(a, 0, -1)
        if a.shape[-1] not in (1, 3, 4):
            raise ValueError(
                f"{name} must have shape (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4; "
                f"got shape {a.shape}"
            )
        a = a[..., 0] if a.shape[-1] == 1 else a[..., :3]
    elif a.ndim != 2:
        raise ValueError(
            f"{name} must have shape (H, W), (H, W, C) or (C, H, W); got shape {a.shape}"
        )
    lo, hi = float(a.min()), float(a.max())
    if lo >= 0.0 and hi <= 1.0:
        return a
    if lo >= 0.0 and hi <= 255.0:
        return a / 255.0
    if hi > lo:
        return (a - lo) / (hi - lo)
    return np.full_like(a, 0.5)  # constant image outside [0, 255]: mid-gray


def _gray(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else img @ _LUMA


def _check_aspect(img: np.ndarray, hw: tuple[int, ...], img_name: str, map_name: str) -> None:
    """The underlay may be larger (e.g. a 7x7 Grad-CAM map on a 224x224 image) but must
    have the same aspect ratio, which catches transposed or mis-laid-out inputs."""
    ih, iw = img.shape[:2]
    mh, mw = hw
    if (ih, iw) != (mh, mw) and abs(ih * mw - iw * mh) > 0.01 * ih * mw:
        raise ValueError(
            f"{img_name} has spatial shape {(ih, iw)} but {map_name} has {(mh, mw)}; they "
            f"must match (or have the same aspect ratio, the map is then stretched)"
        )


def _limits(maps: list[np.ndarray], signed: bool, percentile: float) -> tuple[float, float]:
    """Colour limits: symmetric ``(-v, v)`` for signed maps, ``(0, v)`` otherwise, with ``v``
    the given percentile of |values| so a few outliers do not wash out the map."""
    absval = np.concatenate([np.abs(m).ravel() for m in maps])
    v = float(np.percentile(absval, percentile))
    if v <= 0.0:  # sparse map: most entries are exactly zero
        v = float(absval.max())
    if v <= 0.0:  # all-zero map: flat colour at the middle of the scale
        v = 1.0
    return (-v, v) if signed else (0.0, v)


def _check_params(alpha: float, percentile: float, func: str) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"{func}: alpha must be in [0, 1]; got {alpha}")
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"{func}: percentile must be in (0, 100]; got {percentile}")


def _draw_panel(
    ax: Axes,
    m: np.ndarray,
    underlay: np.ndarray | None,
    limits: tuple[float, float],
    cmap: str | Colormap,
    alpha: float,
) -> None:
    vmin, vmax = limits
    if underlay is not None:
        h, w = underlay.shape[:2]
        extent = (-0.5, w - 0.5, h - 0.5, -0.5)
        ax.imshow(_gray(underlay), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.imshow(
            m, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha, extent=extent, interpolation="nearest"
        )
    else:
        ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _colorbar(
    fig: Figure,
    axes: Axes | list[Axes],
    limits: tuple[float, float],
    cmap: str | Colormap,
    signed: bool,
    clipped: bool,
    shrink: float = 1.0,
    label: str | None = None,
) -> None:
    """A colour bar for ``limits``; arrows at the ends when values were clipped."""
    sm = ScalarMappable(norm=Normalize(*limits), cmap=cmap)
    extend: Literal["neither", "both", "max"] = (
        ("both" if signed else "max") if clipped else "neither"
    )
    cbar = fig.colorbar(sm, ax=axes, extend=extend, shrink=shrink, fraction=0.05, pad=0.02)
    if label is None:
        label = SIGNED_LABEL if signed else UNSIGNED_LABEL
    cbar.set_label(_plain(label), fontsize=9)
    cbar.ax.tick_params(labelsize=9)


def image(
    attr: Any,
    image: Any = None,
    *,
    signed: bool = True,
    cmap: str | Colormap | None = None,
    alpha: float = 0.5,
    title: str | None = None,
    ax: Axes | None = None,
    percentile: float = 99.5,
    channel_axis: int | None = None,
) -> Figure:
    """Heat map of one attribution map, optionally over the input image.

    Args:
        attr: credits, shape ``(H, W)`` or ``(C, H, W)`` (channels summed; ``(H, W, C)``
            and a leading batch of 1 are accepted too). A numpy array, a torch tensor or
            an attribution-like object (``.values``; ``.method`` gives the default title).
        image: optional underlay, shape ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``, shown in
            grayscale under the heat map. It may be larger than the map if the aspect ratio
            matches (the map is stretched over it, e.g. Grad-CAM). default=None.
        signed: diverging colour map centred at 0 with symmetric limits (red = positive
            credit, i.e. the feature raises the output); False plots ``|credit|`` with a
            sequential map from 0. default=True.
        cmap: matplotlib colour map, default ``"RdBu_r"`` (signed) or ``"Reds"`` (unsigned).
        alpha: opacity of the heat map over ``image``, default=0.5.
        title: axes title, default the attribution's method name if known.
        ax: axes to draw into, default a new figure.
        percentile: colour limits are this percentile of |values| (outliers saturate,
            shown by arrows on the colour bar), default=99.5.
        channel_axis: the channel axis of a 3-D map: ``0`` (``(C, H, W)``) or ``-1``
            (``(H, W, C)``). default=None: channels first unless only the last axis is 1-4
            long (or is the one of length 1: ``(4, 4, 1)``); a map whose first and last
            axes are both 2-4 long (``(3, 4, 4)``), or both 1, reads both ways and is refused
            without it, unless the underlay ``image``'s aspect ratio fits one reading only.

    Returns:
        The matplotlib figure (Agg canvas, not registered with pyplot).
    """
    _check_params(alpha, percentile, "image")
    channel_axis = _check_channel_axis(channel_axis, "image")
    if channel_axis is None:  # the layout an Attribution's model reads (aud51v)
        channel_axis = _recorded_axis(attr)
    if channel_axis is None and image is not None:
        channel_axis = _axis_from_underlay(_one_map(attr, "attr", "image", 0), image)
    m = _reduce_map(_one_map(attr, "attr", "image", channel_axis), "attr", signed, channel_axis)
    underlay = None
    if image is not None:
        underlay = _display_image(image, "image", m.shape)
        _check_aspect(underlay, m.shape, "image", "attr")
    limits = _limits([m], signed, percentile)
    cmap = cmap if cmap is not None else (DIVERGING_CMAP if signed else SEQUENTIAL_CMAP)
    fig, ax = _figure_and_axes(ax, figsize=(4.8, 4.0))
    _draw_panel(ax, m, underlay, limits, cmap, alpha)
    _colorbar(fig, ax, limits, cmap, signed, clipped=bool(np.abs(m).max() > limits[1]))
    title = title if title is not None else _method_name(attr)
    if title:
        ax.set_title(title, fontsize=11)
    return fig


# ---------------------------------------------------------------------------- grid


def _batch(obj: Any, name: str, channel_axis: int | None = None) -> list[np.ndarray]:
    """A batch of maps: ``(N, H, W)`` or ``(N, C, H, W)``; a single ``(H, W)`` is N=1."""
    maps = _attribution_maps(obj, name, channel_axis)
    if maps is not None:  # the batch axis is known: never a single map
        return list(maps)
    a = _as_array(obj, name)
    if a.ndim == 2:
        return [a]
    if a.ndim in (3, 4):
        return list(a)
    raise ValueError(
        f"{name} must have shape (N, H, W) or (N, C, H, W) (a batch of maps); got {a.shape}"
    )


def _images_per_cell(
    images: Any, n: int, what: str, hw: tuple[int, ...] | None = None
) -> list[np.ndarray | None]:
    """``n`` underlays from a list, a batch array, or one image shared by all."""
    if images is None:
        return [None] * n
    if isinstance(images, (list, tuple)):
        if len(images) != n:
            raise ValueError(
                f"image_grid: images has {len(images)} entries but there are {n} {what}"
            )
        return [
            None if im is None else _display_image(im, f"images[{i}]", hw)
            for i, im in enumerate(images)
        ]
    a = _as_array(images, "images")
    batched = a.ndim == 4 or (a.ndim == 3 and a.shape[0] == n and a.shape[-1] not in (3, 4))
    if batched:
        if a.shape[0] != n:
            raise ValueError(
                f"image_grid: images has {a.shape[0]} entries but there are {n} {what}"
            )
        return [_display_image(im, f"images[{i}]", hw) for i, im in enumerate(a)]
    one = _display_image(a, "images", hw)
    return [one] * n


def _parse_maps(
    maps: Any, titles: list[str] | None, ncols: int | None, channel_axis: int | None = None
) -> tuple[list[list[Any]], list[str] | None, list[str] | None, bool]:
    """The grid of raw maps, column titles, per-panel titles, and whether it is a flat list."""
    col_titles: list[str] | None = None
    panel_titles: list[str] | None = None
    nested = isinstance(maps, (list, tuple)) and bool(maps) and isinstance(maps[0], (list, tuple))
    if isinstance(maps, Mapping) or nested:
        if ncols is not None:
            raise ValueError(
                "image_grid: ncols applies to a flat list of maps; with a mapping or a list "
                "of rows the columns are the methods"
            )
        if not maps:
            raise ValueError("image_grid: maps is empty")
        grid: list[list[Any]]
        if isinstance(maps, Mapping):
            batches = {str(k): _batch(v, f"maps[{k!r}]", channel_axis) for k, v in maps.items()}
            sizes = {k: len(b) for k, b in batches.items()}
            if len(set(sizes.values())) != 1:
                raise ValueError(
                    f"image_grid: every method needs the same number of samples; got {sizes}"
                )
            n = next(iter(sizes.values()))
            grid = [[batches[k][i] for k in batches] for i in range(n)]
            col_titles = list(batches)
        else:
            lens = [len(r) for r in maps]
            if len(set(lens)) != 1 or lens[0] == 0:
                raise ValueError(f"image_grid: every row needs the same number of maps; got {lens}")
            grid = [
                [_one_map(m, f"maps[{i}][{j}]", "image_grid", channel_axis) for j, m in enumerate(row)]
                for i, row in enumerate(maps)
            ]
        if titles is not None:
            if len(titles) != len(grid[0]):
                raise ValueError(
                    f"image_grid: titles has {len(titles)} entries but there are "
                    f"{len(grid[0])} columns"
                )
            col_titles = [str(t) for t in titles]
        return grid, col_titles, None, False

    if isinstance(maps, (list, tuple)):
        flat = [_one_map(m, f"maps[{i}]", "image_grid", channel_axis) for i, m in enumerate(maps)]
    else:
        flat = _batch(maps, "maps", channel_axis)
        name = _method_name(maps)
        if name and titles is None:
            panel_titles = [name] * len(flat)
    if not flat:
        raise ValueError("image_grid: maps is empty")
    k = len(flat)
    ncols = min(k, 4) if ncols is None else ncols
    if ncols < 1:
        raise ValueError(f"image_grid: ncols must be >= 1; got {ncols}")
    nrows = -(-k // ncols)
    cells: list[Any] = [*flat, *([None] * (nrows * ncols - k))]
    if titles is not None:
        if len(titles) != k:
            raise ValueError(f"image_grid: titles has {len(titles)} entries but maps has {k}")
        panel_titles = [str(t) for t in titles]
    return [cells[r * ncols : (r + 1) * ncols] for r in range(nrows)], None, panel_titles, True


def image_grid(
    maps: Any,
    images: Any = None,
    titles: list[str] | None = None,
    ncols: int | None = None,
    *,
    signed: bool = True,
    cmap: str | Colormap | None = None,
    alpha: float = 0.5,
    percentile: float = 99.5,
    share: Literal["row", "all", "none"] | None = None,
    title: str | None = None,
    label: str | None = None,
    channel_axis: int | None = None,
) -> Figure:
    """A gallery of attribution maps: rows = samples, columns = methods.

    Args:
        maps: one of
            - a mapping ``{method: batch}`` with each batch ``(N, H, W)``, ``(N, C, H, W)``
              or an attribution-like object holding one: N rows, one column per method;
            - a list of rows, each a list of maps ``(H, W)`` / ``(C, H, W)``;
            - a flat list of maps or an array ``(K, H, W)`` / ``(K, C, H, W)``: K panels
              wrapped into ``ncols`` columns.
        images: underlays, one per row (one per panel for a flat list), as a list or a
            batch array, or one image shared by all. A 3-D array whose first axis equals the
            number of rows (panels) is read as a batch of grayscale images, so share one
            colour image channels-last ``(H, W, 3)`` or as a list ``[img] * n``. With a mapping or list of rows the
            input is also shown in colour in a first "input" column. default=None.
        titles: column titles (default the mapping's keys), or one per panel for a flat
            list. default=None.
        ncols: columns for a flat list, default=min(K, 4). Not allowed with a mapping or a
            list of rows, whose columns are the methods.
        signed: diverging map centred at 0 (True) or ``|credit|`` from 0, default=True.
        cmap: colour map, default ``"RdBu_r"`` / ``"Reds"``.
        alpha: heat-map opacity over an underlay, default=0.5.
        percentile: colour limits at this percentile of |values|, default=99.5.
        share: colour scale shared per grid row (``"row"``: methods compared on one
            sample), over the whole grid (``"all"``) or per panel (``"none"``). default=None:
            ``"row"`` for a mapping or a list of rows, ``"all"`` for a flat list (its
            wrapping into rows is arbitrary).
        title: figure title, default=None.
        label: colour bar label, default ``"credit: + raises output"`` (signed) or
            ``"|credit|"``; say what the numbers are when the maps were rescaled.
        channel_axis: the channel axis of each 3-D map, ``0`` (``(C, H, W)``) or ``-1``
            (``(H, W, C)``), as in :func:`image`. default=None (read from the shape; refused
            where both readings are possible).

    Returns:
        The matplotlib figure.
    """
    _check_params(alpha, percentile, "image_grid")
    channel_axis = _check_channel_axis(channel_axis, "image_grid")
    if channel_axis is None:  # the layout the Attributions' models read, where all say one
        channel_axis = _common_recorded_axis(maps)
    if share is not None and share not in ("row", "all", "none"):
        raise ValueError(f"image_grid: share must be 'row', 'all' or 'none'; got {share!r}")
    cmap = cmap if cmap is not None else (DIVERGING_CMAP if signed else SEQUENTIAL_CMAP)

    grid, col_titles, panel_titles, flat = _parse_maps(maps, titles, ncols, channel_axis)
    nrows, nmaps = len(grid), len(grid[0])
    input_column = images is not None and not flat
    if share is None:
        share = "all" if flat else "row"

    reduced: list[list[np.ndarray | None]] = [
        [
            None if m is None else _reduce_map(m, f"maps (row {i}, column {j})", signed,
                                           channel_axis)
            for j, m in enumerate(row)
        ]
        for i, row in enumerate(grid)
    ]
    under_grid: list[list[np.ndarray | None]]
    hw = next((m.shape for row in reduced for m in row if m is not None), None)
    if flat:  # one underlay per panel, in reading order
        n_cells = sum(m is not None for row in reduced for m in row)
        unders = _images_per_cell(images, n_cells, "maps", hw)
        unders += [None] * (nrows * nmaps - n_cells)
        under_grid = [unders[i * nmaps : (i + 1) * nmaps] for i in range(nrows)]
    else:  # one underlay per row (sample)
        unders = _images_per_cell(images, nrows, "rows", hw)
        under_grid = [[unders[i]] * nmaps for i in range(nrows)]
    for i, row in enumerate(reduced):
        for j, m in enumerate(row):
            u = under_grid[i][j]
            if m is not None and u is not None:
                _check_aspect(u, m.shape, "images", f"maps (row {i}, column {j})")

    # colour limits
    present = [m for row in reduced for m in row if m is not None]
    global_lim = _limits(present, signed, percentile)
    total_cols = nmaps + (1 if input_column else 0)
    fig = _new_figure((2.3 * total_cols + 1.0, 2.3 * nrows + (0.5 if title else 0.25)))
    axes = fig.subplots(nrows, total_cols, squeeze=False)
    for i, row in enumerate(reduced):
        row_maps = [m for m in row if m is not None]
        row_lim = _limits(row_maps, signed, percentile) if share == "row" else global_lim
        if input_column:
            ax0 = axes[i][0]
            u = under_grid[i][0]
            assert u is not None
            if u.ndim == 2:
                ax0.imshow(u, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax0.imshow(u, interpolation="nearest")
            ax0.set_axis_off()
            if i == 0:
                ax0.set_title("input", fontsize=10)
        map_axes: list[Axes] = []
        for j, m in enumerate(row):
            ax = axes[i][j + (1 if input_column else 0)]
            if m is None:
                ax.set_axis_off()
                continue
            lim = _limits([m], signed, percentile) if share == "none" else row_lim
            _draw_panel(ax, m, under_grid[i][j], lim, cmap, alpha)
            map_axes.append(ax)
            if panel_titles is not None:
                ax.set_title(_plain(panel_titles[i * nmaps + j]), fontsize=10)
            elif col_titles is not None and i == 0:
                ax.set_title(_plain(col_titles[j]), fontsize=10)
            if share == "none":
                _colorbar(fig, ax, lim, cmap, signed, bool(np.abs(m).max() > lim[1]), shrink=0.8,
                          label=label)
        if share == "row" and map_axes:  # whole row, so bars line up at the right edge
            clipped = any(np.abs(m).max() > row_lim[1] for m in row_maps)
            _colorbar(fig, list(axes[i]), row_lim, cmap, signed, clipped, label=label)
    if share == "all":
        clipped = any(np.abs(m).max() > global_lim[1] for m in present)
        _colorbar(fig, [a for r in axes for a in r], global_lim, cmap, signed, clipped,
                  label=label)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig
