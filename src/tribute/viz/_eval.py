"""Charts for evaluating attributions: :func:`curves` and :func:`leaderboard`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._common import (
    LINESTYLES,
    NEUTRAL_COLOR,
    PALETTE,
    _check_finite,
    _figure_and_axes,
    _new_figure,
    _plain,
    _to_numpy,
)

__all__ = ["curves", "leaderboard"]

_BEST_COLOR = "#D55E00"
_OTHER_COLOR = "#9fb7cc"


def _trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def _parse_curve(spec: Any, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(fractions, mean, band)`` from one curve specification (see :func:`curves`)."""
    if isinstance(spec, tuple):
        if len(spec) not in (2, 3):
            raise ValueError(
                f"curves: {name} must be scores, (fractions, scores) or "
                f"(fractions, mean, std); got a tuple of {len(spec)}"
            )
        x = _check_finite(_to_numpy(spec[0], f"{name}[0]"), f"{name} fractions")
        y = _check_finite(_to_numpy(spec[1], f"{name}[1]"), f"{name} scores")
        band = None
        if len(spec) == 3 and spec[2] is not None:
            band = _check_finite(_to_numpy(spec[2], f"{name}[2]"), f"{name} std")
        if y.ndim == 2:
            if band is not None:
                raise ValueError(f"curves: {name} gives both per-sample scores and a std")
            y, band = _mean_band(y)
    else:
        y = _check_finite(_to_numpy(spec, name), name)
        band = None
        if y.ndim == 2:
            y, band = _mean_band(y)
        x = np.linspace(0.0, 1.0, y.shape[-1]) if y.ndim == 1 else y
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise ValueError(
            f"curves: {name} needs 1-D fractions and scores of the same length; got "
            f"fractions {x.shape} and scores {y.shape}"
        )
    if x.size < 2:
        raise ValueError(f"curves: {name} needs at least 2 points; got {x.size}")
    if (np.diff(x) < 0).any():  # the trapezoid AUC of a reversed or shuffled x is wrong
        bad = int(np.argmax(np.diff(x) < 0))
        raise ValueError(
            f"curves: {name} fractions must be non-decreasing (0 -> 1, in step order); "
            f"fractions[{bad}]={x[bad]:g} > fractions[{bad + 1}]={x[bad + 1]:g}. Sort the "
            f"points by fraction (e.g. order = np.argsort(fractions))"
        )
    if band is not None:
        if band.shape != y.shape:
            raise ValueError(f"curves: {name} std has shape {band.shape} but scores {y.shape}")
        if (band < 0).any():
            raise ValueError(f"curves: {name} std must be non-negative")
    return x, y, band


def _mean_band(y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean over samples (rows) and its standard error (None for a single row)."""
    if y.shape[0] < 2:
        return y[0], None
    return y.mean(axis=0), y.std(axis=0, ddof=1) / np.sqrt(y.shape[0])


def curves(
    curves: Mapping[str, Any],
    *,
    kind: Literal["deletion", "insertion"] = "deletion",
    auc: Mapping[str, float] | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Deletion or insertion curves, one line per method, with the AUC in the legend.

    Args:
        curves: ``{method: curve}``; a curve is one of
            - ``scores`` ``(n_steps,)``: fractions evenly spaced from 0 to 1;
            - ``scores`` ``(n_samples, n_steps)``: the mean is drawn with a shaded band of
              ±1 standard error of the mean;
            - ``(fractions, scores)`` with scores as above (fractions non-decreasing);
            - ``(fractions, mean, std)``: the band is ``mean ± std`` as given.
        kind: ``"deletion"`` (features removed, most credited first; a lower AUC is
            better) or ``"insertion"`` (features added; a higher AUC is better),
            default="deletion".
        auc: AUC per method to show instead of the trapezoid area under the drawn mean
            (e.g. the metric's own value), default=None.
        title: axes title, default names the curve kind and which AUC is better.
        ax: axes to draw into, default a new figure.

    Returns:
        The matplotlib figure; one line per method.
    """
    if kind not in ("deletion", "insertion"):
        raise ValueError(f"curves: kind must be 'deletion' or 'insertion'; got {kind!r}")
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves: curves must be a non-empty dict {method: curve}")
    if auc is not None:
        missing = [m for m in curves if m not in auc]
        if missing:
            raise ValueError(f"curves: auc has no entry for {missing}; give one per method")
    fig, ax = _figure_and_axes(ax, figsize=(6.0, 4.2))
    for i, (method, spec) in enumerate(curves.items()):
        x, y, band = _parse_curve(spec, f"curves[{method!r}]")
        area = float(auc[method]) if auc is not None else _trapezoid(x, y)
        color = PALETTE[i % len(PALETTE)]
        style = LINESTYLES[(i // len(PALETTE) + i) % len(LINESTYLES)]
        ax.plot(
            x, y, color=color, linestyle=style, linewidth=1.8, label=f"{_plain(method)} (AUC {area:.3g})"
        )
        if band is not None:
            ax.fill_between(x, y - band, y + band, color=color, alpha=0.18, linewidth=0)
    verb = "removed" if kind == "deletion" else "inserted"
    ax.set_xlabel(f"fraction of features {verb} (most credited first)", fontsize=10)
    ax.set_ylabel("model output", fontsize=10)
    better = "lower" if kind == "deletion" else "higher"
    ax.set_title(
        title if title is not None else f"{kind} curves ({better} AUC is better)", fontsize=11
    )
    ax.legend(fontsize=9, frameon=False)
    ax.grid(alpha=0.3, linewidth=0.6)
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.tick_params(labelsize=9)
    return fig


# ---------------------------------------------------------------------------- leaderboard

_Cell = tuple[float, float | None]


def _get(row: Any, key: str) -> Any:
    if isinstance(row, Mapping):
        return row.get(key)
    return getattr(row, key, None)


def _direction(d: Any, where: str) -> bool | None:
    """True = higher is better, False = lower is better, None = unknown."""
    if d is None:
        return None
    if isinstance(d, (bool, np.bool_)):
        return bool(d)
    s = str(d).strip().lower()
    if s.startswith(("higher", "max", "up")) or s == "true":  # "True": a CSV's bool column as text
        return True
    if s.startswith(("lower", "min", "down")) or s == "false":
        return False
    if not s:  # an empty CSV field: unknown
        return None
    raise ValueError(
        f"leaderboard: {where} must be 'higher' or 'lower' (is better), or a bool "
        f"higher_is_better; got {d!r}"
    )


def _parse_scores(
    scores: Any,
) -> tuple[dict[str, dict[str, _Cell]], dict[str, bool | None]]:
    """``{metric: {method: (mean, stderr)}}`` and directions found in the rows."""
    table: dict[str, dict[str, _Cell]] = {}
    found: dict[str, bool | None] = {}
    if hasattr(scores, "to_dict") and not isinstance(scores, Mapping):  # a DataFrame
        scores = scores.to_dict("records")
    if isinstance(scores, Mapping):
        for method, per_metric in scores.items():
            if not isinstance(per_metric, Mapping):
                raise ValueError(
                    f"leaderboard: scores[{method!r}] must be a dict {{metric: value}}; "
                    f"got {type(per_metric).__name__}"
                )
            for metric, cell in per_metric.items():
                if isinstance(cell, (tuple, list)):
                    if len(cell) != 2:
                        raise ValueError(
                            f"leaderboard: scores[{method!r}][{metric!r}] must be a number "
                            f"or (mean, stderr)"
                        )
                    mean, se = cell
                else:
                    mean, se = cell, None
                table.setdefault(str(metric), {})[str(method)] = _cell(
                    mean, se, f"scores[{method!r}][{metric!r}]"
                )
        return table, found
    try:
        rows = list(scores)
    except TypeError as exc:
        raise TypeError(
            "leaderboard: scores must be a dict {method: {metric: value}} or a list of rows "
            f"with method, metric, mean and stderr; got {type(scores).__name__}"
        ) from exc
    seen: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows):
        method, metric = _get(row, "method"), _get(row, "metric")
        mean = _get(row, "mean")
        if mean is None:
            mean = _get(row, "value")
        if method is None or metric is None or mean is None:
            raise ValueError(
                f"leaderboard: row {i} needs 'method', 'metric' and 'mean' (or 'value'); "
                f"got {row!r}"
            )
        key = (str(metric), str(method))
        if key in seen:  # a later row silently replaced the earlier one (several cases/seeds)
            j = seen[key]
            case = [_get(rows[j], "case"), _get(row, "case")]
            hint = (f" (cases {case[0]!r} and {case[1]!r}: pass one case's rows, e.g. "
                    f"df[df.case == {case[1]!r}])" if None not in case and case[0] != case[1]
                    else "; pass one row per method and metric")
            raise ValueError(
                f"leaderboard: rows {j} and {i} both score method {key[1]!r} on metric "
                f"{key[0]!r}; one bar cannot show both{hint}"
            )
        seen[key] = i
        table.setdefault(str(metric), {})[str(method)] = _cell(
            mean, _get(row, "stderr"), f"row {i}"
        )
        d = _get(row, "higher_is_better")
        if d is None:
            d = _get(row, "direction")
        if d is not None:
            found[str(metric)] = _direction(d, f"row {i} direction")
    return table, found


def _cell(mean: Any, se: Any, where: str) -> _Cell:
    # an empty field of a CSV read with the csv module (bench's leaderboard.csv leaves the mean
    # of an n/a or failed method empty; pandas reads it as NaN) is a missing result
    m = math.nan if isinstance(mean, str) and not mean.strip() else float(mean)
    s = None if se is None or (isinstance(se, str) and not se.strip()) else float(se)
    if s is not None and np.isnan(s):
        s = None
    if np.isinf(m) or (s is not None and (not np.isfinite(s) or s < 0)):
        raise ValueError(f"leaderboard: {where} has mean {m} and stderr {s}; need finite values")
    return m, s


def leaderboard(
    scores: Any,
    *,
    directions: Mapping[str, Any] | None = None,
    title: str | None = None,
    ncols: int | None = None,
) -> Figure:
    """Methods compared on each metric: one bar subplot per metric, error bars = stderr.

    Args:
        scores: either ``{method: {metric: mean or (mean, stderr)}}`` or a table: a list
            of rows (dicts or objects, or a DataFrame) with ``method``, ``metric``,
            ``mean`` (or ``value``), optional ``stderr`` and optional direction
            (``higher_is_better`` bool or ``direction`` "higher"/"lower"). A NaN mean is
            a missing result and is shown as "n/a". One row per method and metric: a table
            of several cases (bench's ``leaderboard.csv``) is refused, pass one case's rows.
        directions: ``{metric: "higher" | "lower"}`` (or a bool, True = higher is better);
            overrides directions found in the rows. The best method of a metric (every
            method tied for the best mean) is highlighted only where its direction is known; the direction is shown in the
            subplot title. default=None.
        title: figure title, default=None.
        ncols: subplots per row, default=min(n_metrics, 3).

    Returns:
        The matplotlib figure: one axes per metric, methods in the same order on each.
    """
    table, found = _parse_scores(scores)
    if not table:
        raise ValueError("leaderboard: scores is empty")
    for metric, d in (directions or {}).items():
        found[str(metric)] = _direction(d, f"directions[{metric!r}]")
    unknown = sorted(set(found) - set(table))
    if directions and unknown:
        raise ValueError(
            f"leaderboard: directions names metrics {unknown} not in scores "
            f"(metrics: {sorted(table)})"
        )
    methods: list[str] = []
    for per_method in table.values():
        methods += [m for m in per_method if m not in methods]
    metrics = list(table)
    ncols = min(len(metrics), 3) if ncols is None else ncols
    if ncols < 1:
        raise ValueError(f"leaderboard: ncols must be >= 1; got {ncols}")
    nrows = -(-len(metrics) // ncols)
    k = len(methods)
    fig = _new_figure((3.6 * ncols + 1.2, (0.95 + 0.32 * k) * nrows + (0.4 if title else 0.0)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    y = np.arange(k)[::-1]
    for idx, metric in enumerate(metrics):
        ax = axes[idx // ncols][idx % ncols]
        cells = table[metric]
        means = np.array([cells.get(m, (np.nan, None))[0] for m in methods])
        errs = np.array([cells.get(m, (np.nan, None))[1] or 0.0 for m in methods])
        ok = ~np.isnan(means)
        higher = found.get(metric)
        best = np.zeros(k, dtype=bool)  # every method tied for the best mean is highlighted
        if higher is not None and ok.any():
            top = np.max(means[ok]) if higher else np.min(means[ok])
            best = ok & (means == top)
        colors = [_BEST_COLOR if best[i] else _OTHER_COLOR for i in range(k)]
        ax.barh(
            y[ok],
            means[ok],
            height=0.68,
            color=[c for c, o in zip(colors, ok) if o],
            xerr=errs[ok],
            error_kw={"ecolor": "#333333", "elinewidth": 1.0, "capsize": 2.5},
        )
        ax.axvline(0.0, color="#555555", linewidth=0.8)
        lo = float(min(0.0, np.min((means - errs)[ok]))) if ok.any() else 0.0
        hi = float(max(0.0, np.max((means + errs)[ok]))) if ok.any() else 1.0
        if hi <= lo:  # every mean 0: a unit axis (matplotlib warned of a singular one)
            hi = lo + 1.0
        span = max(hi - lo, 1e-12)
        # values in a column right of the axes: never overlaps bars or names, any sign
        label_at = ax.get_yaxis_transform()  # x in axes fraction, y in data
        for i in range(k):
            label = "n/a"
            if ok[i]:
                label = f"{means[i]:.3g}" + (f" ± {errs[i]:.2g}" if errs[i] > 0 else "")
            ax.text(
                1.03,
                y[i],
                label,
                transform=label_at,
                va="center",
                ha="left",
                fontsize=9,
                fontweight="bold" if best[i] else "normal",
                color="#222222" if ok[i] else NEUTRAL_COLOR,
            )
        ax.set_xlim(lo - (0.05 * span if lo < 0 else 0.0), hi + (0.05 * span if hi > 0 else 0.0))
        ax.set_yticks(y, [_plain(m) for m in methods], fontsize=9)
        ax.set_ylim(-0.6, k - 0.4)
        if idx % ncols:  # method names only on the first column
            ax.tick_params(axis="y", labelleft=False)
        note = (
            "" if higher is None else ("\n(higher is better)" if higher else "\n(lower is better)")
        )
        ax.set_title(f"{_plain(metric)}{note}", fontsize=10)
        ax.spines["top"].set_visible(False)
        ax.spines["right"].set_visible(False)
        ax.tick_params(labelsize=9)
    for idx in range(len(metrics), nrows * ncols):
        axes[idx // ncols][idx % ncols].set_axis_off()
    if title:
        fig.suptitle(title, fontsize=12)
    return fig
