"""Per-feature credit charts in the style of SHAP: :func:`bar`, :func:`waterfall`,
:func:`beeswarm`."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from ._common import (
    FEATURE_VALUE_CMAP,
    MAGNITUDE_COLOR,
    NEG_COLOR,
    NEUTRAL_COLOR,
    POS_COLOR,
    _as_array,
    _as_vector,
    _check_finite,
    _figure_and_axes,
    _fmt,
    _method_name,
    _plain,
    _resolve_names,
    _resolve_stderr,
    _to_numpy,
)

__all__ = ["bar", "beeswarm", "waterfall"]


def _check_max_display(max_display: int, func: str) -> None:
    if max_display < 1:
        raise ValueError(f"{func}: max_display must be >= 1; got {max_display}")


def _top_and_rest(order: np.ndarray, max_display: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices shown on their own and indices folded into a "sum of N other features" row.

    With ``n <= max_display`` every feature is shown; otherwise ``max_display - 1`` are
    shown and the rest share the last row, so the chart keeps ``max_display`` rows.
    """
    if len(order) <= max_display:
        return order, order[:0]
    return order[: max_display - 1], order[max_display - 1 :]


def _others_label(n: int) -> str:
    return f"sum of {n} other feature{'s' if n != 1 else ''}"


def _style_axes(ax: Axes) -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.tick_params(labelsize=9)


def bar(
    values: Any,
    names: Any = None,
    *,
    max_display: int = 20,
    stderr: Any = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Horizontal bar chart of credits, largest |credit| on top (like SHAP's bar plot).

    Args:
        values: credits ``(n_features,)`` for one sample, or ``(n_samples, n_features)`` to
            plot the mean |credit| over samples (global importance). An array, tensor or
            attribution-like object (``.values``, ``.player_names``, ``.stderr``, ``.method``).
        names: one name per feature, default ``values.player_names`` or ``feature i``.
        max_display: most rows; beyond it the smallest features are summed into one
            "sum of N other features" row (without error bar), default=20.
        stderr: standard errors ``(n_features,)`` drawn as error bars, default the
            attribution's ``.stderr``. With ``(n_samples, n_features)`` values the error
            bars are the standard error of the mean |credit| over samples instead.
        title: axes title, default the attribution's method name if known.
        ax: axes to draw into, default a new figure.

    Returns:
        The matplotlib figure; one bar patch per displayed row.
    """
    _check_max_display(max_display, "bar")
    arr = _as_array(values, "values")
    if arr.ndim == 2 and arr.shape[0] > 1:
        arr = _check_finite(arr, "values")
        n_samples = arr.shape[0]
        vals = np.abs(arr).mean(axis=0)
        err: np.ndarray | None
        if stderr is not None:
            err = _resolve_stderr(stderr, None, vals.shape, "bar")
        else:
            err = np.abs(arr).std(axis=0, ddof=1) / np.sqrt(n_samples)
        xlabel = f"mean |credit| over {n_samples} samples"
        magnitude = True
    else:
        vals = _as_vector(arr, "values", "bar")
        err = _resolve_stderr(stderr, values, vals.shape, "bar")
        xlabel = "credit (+ raises output)"
        magnitude = False
    n = vals.size
    labels = _resolve_names(names, values, n, "bar")
    order = np.argsort(-np.abs(vals), kind="stable")
    shown, rest = _top_and_rest(order, max_display)
    row_vals = vals[shown]
    row_err = err[shown] if err is not None else None
    row_labels = [labels[i] for i in shown]
    if rest.size:
        row_vals = np.append(row_vals, vals[rest].sum())
        row_labels.append(_others_label(rest.size))
        if row_err is not None:  # no honest joint error without the covariance: no bar
            row_err = np.append(row_err, np.nan)
    k = row_vals.size
    y = np.arange(k)[::-1]  # first row at the top
    if magnitude:  # unsigned importances: red/blue would wrongly suggest a sign
        colors = [MAGNITUDE_COLOR] * k
    else:
        colors = [POS_COLOR if v >= 0 else NEG_COLOR for v in row_vals]
    if rest.size:
        colors[-1] = NEUTRAL_COLOR
    fig, ax = _figure_and_axes(ax, figsize=(6.4, 0.9 + 0.32 * k))
    ax.barh(y, row_vals, height=0.7, color=colors)
    if row_err is not None:
        has = ~np.isnan(row_err)
        ax.errorbar(
            row_vals[has],
            y[has],
            xerr=row_err[has],
            fmt="none",
            ecolor="#333333",
            elinewidth=1.0,
            capsize=2.5,
        )
    ax.axvline(0.0, color="#555555", linewidth=0.8)
    e = np.zeros(k) if row_err is None else np.nan_to_num(row_err)
    lo, hi = min(0.0, float((row_vals - e).min())), max(0.0, float((row_vals + e).max()))
    # the axis follows the credits whatever their scale (an absolute floor such as 1e-12
    # squeezed credits of 1e-15 into an invisible sliver); all zero: a unit axis
    span = hi - lo if hi > lo else 1.0
    for yi, v, ei in zip(y, row_vals, e):
        x = v + ei + 0.02 * span if v >= 0 else v - ei - 0.02 * span
        ax.text(
            x,
            yi,
            f"{v:.3g}" if magnitude else _fmt(v),
            va="center",
            ha="left" if v >= 0 else "right",
            fontsize=9,
            color="#333333",
        )
    pad = 0.18 * span
    # a zero credit's label sits right of 0: room for it even when no bar goes right
    right = pad if hi > 0 or bool((row_vals >= 0).any()) else 0.02 * pad
    ax.set_xlim(lo - (pad if lo < 0 else 0.02 * pad), hi + right)
    ax.set_yticks(y, [_plain(s) for s in row_labels], fontsize=9)
    ax.set_ylim(-0.6, k - 0.4)
    if row_err is not None:  # say what the whiskers are (not a 95% interval)
        xlabel += "; error bars ±1 standard error"
    ax.set_xlabel(xlabel, fontsize=10)
    _style_axes(ax)
    title = title if title is not None else _method_name(values)
    if title:
        ax.set_title(title, fontsize=11)
    return fig


def _arrow(x0: float, width: float, y: float, height: float, tip: float) -> np.ndarray:
    """Vertices of a bar from ``x0`` to ``x0 + width`` whose far end is an arrow head."""
    x1 = x0 + width
    t = min(tip, abs(width)) * (1.0 if width >= 0 else -1.0)
    h = height / 2
    return np.array([(x0, y - h), (x1 - t, y - h), (x1, y), (x1 - t, y + h), (x0, y + h)])


def waterfall(
    values: Any,
    names: Any = None,
    *,
    base_value: float | np.ndarray,
    feature_values: Any = None,
    max_display: int = 10,
    title: str | None = None,
    ax: Axes | None = None,
    full_value: float | None = None,
) -> Figure:
    """SHAP-style waterfall from ``base_value`` to ``base_value + sum(values)``.

    Rows are stacked from the bottom, starting at ``base_value`` (E[f(X)], or v(∅)); each
    feature moves the running total by its credit (red arrows up, blue down), largest
    |credit| at the top, ending at f(x) = ``base_value + sum(values)``. Small features
    are folded into one "sum of N other features" row at the bottom.

    Args:
        values: credits ``(n_features,)`` for one sample (array, tensor or attribution-like).
        names: one name per feature, default ``values.player_names`` or ``feature i``.
        base_value: where the walk starts: the expected output E[f(X)] or v(∅) (a number or
            a one-element array such as a sample's ``Attribution.base_values``).
        feature_values: the sample's feature values ``(n_features,)``, shown in the
            labels as ``name = value``, default=None.
        max_display: most rows (the last one summing the rest), default=10.
        title: axes title, default the attribution's method name if known.
        ax: axes to draw into, default a new figure.
        full_value: the model's actual output f(x) = v(all players), default=None. When given
            and the credits do not sum to ``full_value - base_value`` (a method without the
            efficiency property), the difference is drawn as a grey "not attributed" row at
            the bottom, so the walk still ends at f(x).

    Returns:
        The matplotlib figure; one arrow patch per row, the top one ending at f(x).
    """
    _check_max_display(max_display, "waterfall")
    vals = _as_vector(values, "values", "waterfall")
    base_arr = _check_finite(_to_numpy(base_value, "base_value").ravel(), "base_value")
    if base_arr.size != 1:
        raise ValueError(
            f"waterfall: base_value must be one number; got shape {np.shape(base_value)}"
        )
    base = float(base_arr[0])
    n = vals.size
    labels = _resolve_names(names, values, n, "waterfall")
    if feature_values is not None:
        fv = _as_array(feature_values, "feature_values").ravel()
        if fv.size != n:
            raise ValueError(
                f"waterfall: feature_values has {fv.size} entries but values has {n} features"
            )
        labels = [f"{lab} = {v:.4g}" for lab, v in zip(labels, fv)]
    order = np.argsort(-np.abs(vals), kind="stable")
    shown, rest = _top_and_rest(order, max_display)
    # bottom-to-top drawing order: "others" first, then increasing |credit|
    rows: list[tuple[str, float, bool]] = []
    if rest.size:
        rows.append((_others_label(rest.size), float(vals[rest].sum()), True))
    rows += [(labels[i], float(vals[i]), False) for i in shown[::-1]]
    final = base + float(vals.sum())
    residual = False
    if full_value is not None:
        full = float(_check_finite(_to_numpy(full_value, "full_value").ravel(), "full_value")[0])
        gap = full - final
        if abs(gap) > 1e-6 * max(1.0, abs(full), abs(base)):
            rows.insert(0, ("not attributed", gap, True))
            residual = True
            final = full
    k = len(rows)
    starts = base + np.concatenate([[0.0], np.cumsum([r[1] for r in rows])[:-1]])
    ends = starts + np.array([r[1] for r in rows])
    lo = float(min(base, final, starts.min(), ends.min()))
    hi = float(max(base, final, starts.max(), ends.max()))
    # relative floor only: credits of 1e-15 around a base of 0 keep their own scale
    span = max(hi - lo, 1e-12 * max(abs(lo), abs(hi)))
    if not span > 0:  # every credit zero and a zero base: a unit axis
        span = 1.0

    fig, ax = _figure_and_axes(ax, figsize=(6.8, 1.3 + 0.42 * k))
    for y, ((_, v, other), x0) in enumerate(zip(rows, starts)):
        color = POS_COLOR if v >= 0 else NEG_COLOR
        if residual and y == 0:
            color = "#999999"
        ax.add_patch(
            Polygon(
                _arrow(x0, v, y, 0.62, 0.03 * span),
                closed=True,
                facecolor=color,
                edgecolor=color,
                alpha=0.75 if other else 1.0,
            )
        )
        if y + 1 < k:  # connector to the next row's start
            ax.plot([x0 + v, x0 + v], [y + 0.31, y + 0.69], color="#999999", linewidth=0.8)
        xt = x0 + v
        ax.text(
            xt + (0.01 if v >= 0 else -0.01) * span,
            y,
            _fmt(v),
            va="center",
            ha="left" if v >= 0 else "right",
            fontsize=9,
            color=color,
        )
    ax.axvline(base, color="#777777", linestyle="--", linewidth=0.8, zorder=0)
    ax.axvline(final, color="#777777", linestyle="--", linewidth=0.8, zorder=0)
    ax.set_yticks(range(k), [_plain(r[0]) for r in rows], fontsize=9)
    ax.set_ylim(-1.1, k + 0.1)
    pad = 0.14 * span
    ax.set_xlim(lo - pad, hi + pad)
    ax.text(
        base,
        -0.75,
        f"E[f(X)] = {base:.4g}",
        ha="center",
        va="center",
        fontsize=9,
        color="#333333",
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0},
    )
    ax.text(
        final,
        k - 0.3,
        f"f(x) = {final:.4g}",
        ha="center",
        va="bottom",
        fontsize=10,
        fontweight="bold",
        color="#111111",
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0},
    )
    ax.set_xlabel("model output", fontsize=10)
    _style_axes(ax)
    ax.spines["left"].set_visible(False)
    ax.tick_params(axis="y", length=0)
    title = title if title is not None else _method_name(values)
    if title:
        ax.set_title(title, fontsize=11, pad=16)
    return fig


def _swarm_offsets(x: np.ndarray, nbins: int = 100) -> np.ndarray:
    """Deterministic vertical offsets in [-0.4, 0.4] that grow with local density.

    Points are binned along x; within a bin they are stacked outwards 0, +1, -1, +2, ...
    (in a fixed pseudo-random order so colours mix), then scaled to the row height.
    """
    n = x.size
    if n == 1:
        return np.zeros(1)
    span = float(x.max() - x.min())
    bins = (
        np.zeros(n, dtype=np.int64)
        if span == 0
        else np.floor((nbins - 1) * (x - x.min()) / span + 0.5).astype(np.int64)
    )
    shuffle = np.random.default_rng(0).permutation(n)  # local generator, fixed seed
    order = shuffle[np.argsort(bins[shuffle], kind="stable")]
    sorted_bins = bins[order]
    first = np.searchsorted(sorted_bins, sorted_bins, side="left")
    rank = np.arange(n) - first
    layer = (rank + 1) // 2 * np.where(rank % 2 == 1, 1, -1)
    out = np.empty(n)
    out[order] = layer
    peak = np.abs(out).max()
    return out * (0.4 / peak) if peak > 0 else out


def _value_colors(f: np.ndarray, cmap: Colormap) -> np.ndarray:
    """RGBA per sample: the feature value scaled between its 5th and 95th percentiles
    (robust to outliers), gray where the value is missing (NaN)."""
    missing = np.isnan(f)
    colors = np.tile([0.55, 0.55, 0.55, 0.8], (f.size, 1))
    if missing.all():
        return colors
    lo, hi = (float(q) for q in np.nanpercentile(f, [5, 95]))
    if hi <= lo:
        lo, hi = float(np.nanmin(f)), float(np.nanmax(f))
    scaled = np.clip((f - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.full(f.size, 0.5)
    rgba = cmap(np.where(missing, 0.0, scaled))
    rgba[:, 3] = 0.85
    colors[~missing] = rgba[~missing]
    return colors


def beeswarm(
    values: Any,
    feature_values: Any = None,
    names: Any = None,
    *,
    max_display: int = 20,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """SHAP-style summary plot: one row of points per feature, one point per sample.

    Rows are ordered by mean |credit| (largest on top); x is the credit; points are
    spread vertically where they are dense and coloured by the feature's value (low to
    high, scaled per feature between its 5th and 95th percentiles). Missing (NaN)
    feature values are drawn in gray. Beyond ``max_display`` rows the remaining features
    are summed per sample into one gray "sum of N other features" row.

    Args:
        values: credits ``(n_samples, n_features)`` (array, tensor or attribution-like).
        feature_values: the samples' feature values, same shape, default=None (one colour).
        names: one name per feature, default ``values.player_names`` or ``feature i``.
        max_display: most rows, default=20.
        title: axes title, default the attribution's method name if known.
        ax: axes to draw into, default a new figure.

    Returns:
        The matplotlib figure; one scatter collection per row.
    """
    _check_max_display(max_display, "beeswarm")
    arr = _as_array(values, "values")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(
            f"beeswarm: values must have shape (n_samples, n_features); got {arr.shape}"
        )
    arr = _check_finite(arr, "values")
    n_samples, n = arr.shape
    labels = _resolve_names(names, values, n, "beeswarm")
    fv: np.ndarray | None = None
    if feature_values is not None:
        fv = _as_array(feature_values, "feature_values")
        if fv.ndim == 1 and n_samples == 1:
            fv = fv[None, :]
        if fv.shape != arr.shape:
            raise ValueError(
                f"beeswarm: feature_values has shape {fv.shape} but values has {arr.shape}"
            )
        if np.isinf(fv).any():
            _check_finite(np.where(np.isnan(fv), 0.0, fv), "feature_values")
    order = np.argsort(-np.abs(arr).mean(axis=0), kind="stable")
    shown, rest = _top_and_rest(order, max_display)
    rows: list[tuple[str, np.ndarray, np.ndarray | None]] = [
        (labels[i], arr[:, i], None if fv is None else fv[:, i]) for i in shown
    ]
    if rest.size:
        rows.append((_others_label(rest.size), arr[:, rest].sum(axis=1), None))
    k = len(rows)
    fig, ax = _figure_and_axes(ax, figsize=(7.0, 1.0 + 0.38 * k))
    cmap = colormaps[FEATURE_VALUE_CMAP]
    size = float(np.clip(200.0 / np.sqrt(n_samples), 4.0, 24.0))
    for r, (_, x, f) in enumerate(rows):
        y = (k - 1 - r) + _swarm_offsets(x)
        if f is None:  # no feature values, or the "other features" row
            color = NEUTRAL_COLOR if fv is not None or (rest.size and r == k - 1) else "#0072B2"
            ax.scatter(x, y, s=size, color=color, linewidths=0, alpha=0.8, rasterized=True)
            continue
        ax.scatter(x, y, s=size, c=_value_colors(f, cmap), linewidths=0, rasterized=True)
    ax.axvline(0.0, color="#555555", linewidth=0.8, zorder=0)
    ax.set_yticks(range(k), [_plain(r[0]) for r in rows][::-1], fontsize=9)
    ax.set_ylim(-0.6, k - 0.4)
    ax.set_xlabel("credit (+ raises output)", fontsize=10)
    _style_axes(ax)
    ax.spines["left"].set_visible(False)
    ax.tick_params(axis="y", length=0)
    if fv is not None:
        sm = ScalarMappable(norm=Normalize(0.0, 1.0), cmap=cmap)
        cbar = fig.colorbar(sm, ax=ax, ticks=[0.0, 1.0], aspect=40, pad=0.02)
        cbar.ax.set_yticklabels(["low", "high"], fontsize=9)
        cbar.set_label("feature value", fontsize=10)
        cbar.outline.set_visible(False)
    title = title if title is not None else _method_name(values)
    if title:
        ax.set_title(title, fontsize=11)
    return fig
