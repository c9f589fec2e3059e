"""Dataset-level views of one attribution over many rows: :func:`importance`,
:func:`dependence`, :func:`interaction_heatmap` (with :func:`beeswarm` and :func:`waterfall`
from :mod:`._tabular`, the views SHAP users know).

Global importance is the mean absolute credit per feature with a 95% interval over rows
(Student's t widened for skew; a percentile bootstrap on request); dependence plots put a feature's value against its
credit, coloured by the feature it interacts with most (from interaction values when given,
otherwise the feature whose value best explains the credit's residual spread, as in
Lundberg et al. 2020).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure

from ._common import (
    FEATURE_VALUE_CMAP,
    MAGNITUDE_COLOR,
    NEUTRAL_COLOR,
    _as_array,
    _check_finite,
    _figure_and_axes,
    _method_name,
    _plain,
    _resolve_names,
    _to_numpy,
)

__all__ = ["dependence", "importance", "interaction_heatmap", "strongest_interaction"]


def _matrix(values: Any, func: str) -> np.ndarray:
    arr = _as_array(values, "values")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{func}: values must have shape (n_samples, n_features); got {arr.shape}")
    return _check_finite(arr, "values")


def importance_table(values: Any, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                     interval: str = "t") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean |credit| per feature and an interval of it over rows.

    ``interval="t"`` (default): Student's t, widened where the rows are skewed, each feature on
    its own (:func:`tribute.methods.mean_interval`), clipped at 0. ``"bootstrap"``: the
    percentile bootstrap of ``n_boot`` resamples (``seed``), which covers too rarely on few
    rows: 0.47 at 2 rows and 0.82 at 5 (half-normal credits), 0.72 at 5 and 0.81 at 10
    (lognormal), against 0.92-0.98 and 0.85-0.95 for the default from 2 to 200 rows. Both are
    NaN below 2 rows (one row shows no spread; the interval was ``[mean, mean]``, a claim of
    exactness).

    Returns:
        ``(mean, low, high)``, each ``n_features``.
    """
    if interval not in ("t", "bootstrap"):
        raise ValueError(f"importance: interval must be 't' or 'bootstrap'; got {interval!r}")
    arr = np.abs(_matrix(values, "importance"))
    mean = arr.mean(0)
    n = arr.shape[0]
    if n < 2:
        return mean, np.full_like(mean, np.nan), np.full_like(mean, np.nan)
    if interval == "t":
        import torch

        from ..methods import mean_interval

        lo_t, hi_t = mean_interval(torch.from_numpy(arr), level)
        return mean, np.maximum(lo_t.numpy(), 0.0), hi_t.numpy()
    rng = np.random.default_rng(seed)
    boots = np.empty((n_boot, arr.shape[1]))
    for s in range(0, n_boot, 100):
        idx = rng.integers(0, n, size=(min(100, n_boot - s), n))
        boots[s : s + idx.shape[0]] = arr[idx].mean(1)
    a = (1 - level) / 2
    return mean, np.quantile(boots, a, axis=0), np.quantile(boots, 1 - a, axis=0)


def importance(values: Any, names: Any = None, *, max_display: int = 20, n_boot: int = 1000,
               seed: int = 0, title: str | None = None, ax: Axes | None = None,
               interval: str = "t") -> Figure:
    """Global importance: mean |credit| per feature over rows, with 95% intervals
    (:func:`importance_table`: Student's t widened for skew by default, or ``"bootstrap"``).

    Args:
        values: credits ``(n_samples, n_features)`` (array, tensor or attribution-like).
        names: one name per feature, default ``values.player_names`` or ``feature i``.
        max_display: most features shown (largest first), default=20.
        n_boot: bootstrap resamples of the rows (``interval="bootstrap"``), default=1000.
        seed: bootstrap seed (``interval="bootstrap"``), default=0.
        title, ax: as elsewhere in :mod:`tribute.plot`.
    """
    if max_display < 1:
        raise ValueError(f"importance: max_display must be >= 1; got {max_display}")
    arr = _matrix(values, "importance")
    labels = _resolve_names(names, values, arr.shape[1], "importance")
    mean, lo, hi = importance_table(arr, n_boot=n_boot, seed=seed, interval=interval)
    order = np.argsort(-mean)[:max_display]
    k = len(order)
    fig, ax = _figure_and_axes(ax, (6.0, 0.35 * k + 1.2))
    y = np.arange(k)[::-1]
    ax.barh(y, mean[order], color=MAGNITUDE_COLOR, height=0.6)
    if np.isfinite(lo).all():  # one row has no interval: no error bars
        ax.errorbar(mean[order], y, xerr=[mean[order] - lo[order], hi[order] - mean[order]],
                    fmt="none", ecolor="black", elinewidth=1, capsize=2)
    ax.set_yticks(y)
    ax.set_yticklabels([_plain(labels[i]) for i in order])
    what = "bootstrap interval" if interval == "bootstrap" else "interval"
    ax.set_xlabel(f"mean |credit| over {arr.shape[0]} rows (95% {what})" if np.isfinite(lo).all()
                  else f"mean |credit| over {arr.shape[0]} row (no interval from one row)")
    ax.set_title(title if title is not None else (_method_name(values) or "global importance"))
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    return fig


def strongest_interaction(values: np.ndarray, feature_values: np.ndarray, feature: int,
                          interactions: np.ndarray | None = None) -> int | None:
    """The feature that interacts most with ``feature``.

    From interaction values (``n x f x f``) when given: the largest mean |phi_ij|. Otherwise
    the feature whose value best explains the spread of ``feature``'s credit at equal values of
    ``feature``: the rows are sorted by ``feature`` into ``min(10, n // 10)`` bins (at least
    one) and each candidate scores the sum over bins of ``|corr(credit, candidate value)|``
    (bins under 3 rows or without spread count 0), after SHAP's ``approximate_interactions``
    (which uses bins of ``min(n // 10, 50)`` rows). With no signal at all the first candidate
    is returned.
    """
    n_f = values.shape[1]
    if n_f < 2:
        return None
    if interactions is not None:
        inter = np.abs(np.asarray(interactions, dtype=np.float64)).mean(0)[feature].copy()
        inter[feature] = -np.inf
        return int(np.argmax(inter))
    x = feature_values[:, feature]
    y = values[:, feature]
    order = np.argsort(x, kind="stable")
    n_bins = max(1, min(10, len(x) // 10))
    bins = np.array_split(order, n_bins)
    best, best_score = None, -np.inf
    for j in range(n_f):
        if j == feature:
            continue
        score = 0.0
        for b in bins:
            if len(b) < 3:
                continue
            xj, yb = feature_values[b, j], y[b]
            if np.nanstd(xj) == 0 or np.std(yb) == 0:
                continue
            ok = np.isfinite(xj)
            if ok.sum() < 3:
                continue
            c = np.corrcoef(xj[ok], yb[ok])[0, 1]
            score += abs(c) if np.isfinite(c) else 0.0
        if score > best_score:
            best, best_score = j, score
    return best


def _interactions(obj: Any, n_features: int | None, func: str, target: int | None = None) -> np.ndarray:
    """``n x f x f`` interaction values from an array or an attribution's ``extra``.

    An attribution's ``extra["shap_interaction_values"]`` (shap convention: diagonal = main
    effects, rows sum to the credits; ``shapley_interactions``, ``integrated_hessians``) is
    preferred over ``extra["interactions"]`` (``tree_shap``'s is in that convention already).
    A ``batch x targets x f x f`` array (every method that keeps the target axis) gives the
    ``target`` column; with one target that is the only one.
    """
    src = obj
    extra = getattr(obj, "extra", None)
    if not isinstance(obj, np.ndarray) and isinstance(extra, dict):
        for key in ("shap_interaction_values", "interactions"):
            if key in extra:
                src = extra[key]
                break
    arr = np.asarray(_to_numpy(src, "interactions"), dtype=np.float64)
    if arr.ndim == 2 and n_features is None:  # one row's matrix
        arr = arr[None]
    if arr.ndim == 4:
        n_t = arr.shape[1]
        if target is None and n_t != 1:
            raise ValueError(
                f"{func}: interactions has shape {arr.shape} (batch x targets x f x f) with "
                f"{n_t} targets; pass target=<0..{n_t - 1}>"
            )
        t = 0 if target is None else int(target)
        if not 0 <= t < n_t:
            raise ValueError(f"{func}: target={target} is out of range for {n_t} target(s)")
        arr = arr[:, t]
    elif target not in (None, 0):
        raise ValueError(f"{func}: target={target} given but interactions has no target axis "
                         f"(shape {arr.shape})")
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2] or (
        n_features is not None and arr.shape[1] != n_features
    ):
        want = "(n, f, f)" if n_features is None else f"(n, {n_features}, {n_features})"
        raise ValueError(f"{func}: interactions has shape {arr.shape}; expected {want} "
                         "(or batch x targets x f x f)")
    return arr


def dependence(values: Any, feature_values: Any, feature: int | str, names: Any = None, *,
               color_by: int | str | None = "auto", interactions: Any = None,
               title: str | None = None, ax: Axes | None = None,
               target: int | None = None) -> Figure:
    """Dependence plot: a feature's value (x) against its credit (y), one point per row.

    Points are coloured by the value of ``color_by``: ``"auto"`` picks the feature that
    interacts most with ``feature`` (:func:`strongest_interaction`); ``None`` uses one colour.
    Rows whose colour value is missing (NaN) are drawn in gray.

    Args:
        values: credits ``(n_samples, n_features)`` (array, tensor or attribution-like; an
            attribution's ``extra["interactions"]`` is used when present).
        feature_values: the rows' feature values, same shape.
        feature: column index or name.
        names: feature names, default ``values.player_names``.
        color_by: ``"auto"``, a column index or name, or None. default="auto".
        interactions: ``n x f x f`` (or ``n x targets x f x f``) interaction values, default
            from the attribution (its ``extra["shap_interaction_values"]`` or
            ``extra["interactions"]``).
        target: which target column of ``batch x targets x f x f`` interactions, default=None
            (the only one; required with several).
    """
    arr = _matrix(values, "dependence")
    fv = np.asarray(_to_numpy(feature_values, "feature_values"), dtype=np.float64)
    if fv.shape != arr.shape:
        raise ValueError(
            f"dependence: feature_values has shape {fv.shape} but values has {arr.shape}; pass "
            "the rows that were explained."
        )
    labels = _resolve_names(names, values, arr.shape[1], "dependence")

    def col(f: int | str, what: str) -> int:
        if isinstance(f, str):
            if f not in labels:
                raise ValueError(f"dependence: {what}={f!r} is not a feature name; names: {labels[:10]}")
            return labels.index(f)
        if not 0 <= int(f) < arr.shape[1]:
            raise ValueError(f"dependence: {what}={f} is out of range 0..{arr.shape[1] - 1}")
        return int(f)

    j = col(feature, "feature")
    if interactions is None:
        extra = getattr(values, "extra", None)
        if isinstance(extra, dict) and ("interactions" in extra or "shap_interaction_values" in extra):
            interactions = values
    inter = None if interactions is None else _interactions(interactions, arr.shape[1], "dependence",
                                                            target)
    if inter is not None and inter.shape[0] != arr.shape[0]:
        raise ValueError(f"dependence: interactions has {inter.shape[0]} rows but values has "
                         f"{arr.shape[0]}; pass the rows that were explained.")
    k: int | None
    if color_by == "auto":
        k = strongest_interaction(arr, fv, j, inter)
    elif color_by is None:
        k = None
    else:
        k = col(color_by, "color_by")
    fig, ax = _figure_and_axes(ax, (6.0, 4.2))
    if k is None:
        ax.scatter(fv[:, j], arr[:, j], s=12, color=MAGNITUDE_COLOR)
    else:
        c = fv[:, k]
        lo, hi = np.nanpercentile(c, [5, 95]) if np.isfinite(c).any() else (0.0, 1.0)
        norm = Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1.0)
        cmap = colormaps[FEATURE_VALUE_CMAP]
        known = np.isfinite(c)  # a missing colour value is gray, not the low end of the scale
        ax.scatter(fv[known, j], arr[known, j], s=12, c=c[known], cmap=cmap, norm=norm)
        if not known.all():
            ax.scatter(fv[~known, j], arr[~known, j], s=12, color=NEUTRAL_COLOR,
                       label=f"{_plain(labels[k])} missing")
            ax.legend(fontsize=8, frameon=False)
        cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax)
        cb.set_label(_plain(labels[k]))
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel(_plain(labels[j]))
    ax.set_ylabel(f"credit of {_plain(labels[j])}")
    ax.set_title(title if title is not None else (_method_name(values) or "dependence"))
    return fig


def interaction_heatmap(interactions: Any, names: Any = None, *, max_display: int = 20,
                        title: str | None = None, ax: Axes | None = None,
                        target: int | None = None) -> Figure:
    """Mean interaction values over rows as a signed heat map (diagonal = main effects).

    Args:
        interactions: ``n x f x f`` (or ``n x targets x f x f``) interaction values, or an
            attribution holding them (``tree_shap(interactions=True)``,
            ``shapley_interactions``, ``integrated_hessians``: its
            ``extra["shap_interaction_values"]``, else ``extra["interactions"]``).
        names: feature names.
        target: which target column of ``n x targets x f x f`` interactions, default=None
            (the only one; required with several).
        max_display: the features with the largest mean |interaction| row sums, default=20.
    """
    arr = _check_finite(_interactions(interactions, None, "interaction_heatmap", target), "interactions")
    f = arr.shape[1]
    labels = _resolve_names(names, interactions, f, "interaction_heatmap")
    mean = arr.mean(0)
    order = np.argsort(-np.abs(mean).sum(1))[:max_display]
    m = mean[np.ix_(order, order)]
    lim = float(np.abs(m).max()) or 1.0
    fig, ax = _figure_and_axes(ax, (0.45 * len(order) + 2.5, 0.45 * len(order) + 1.5))
    im = ax.imshow(m, cmap=colormaps["RdBu_r"], norm=TwoSlopeNorm(0.0, -lim, lim))
    ax.set_xticks(range(len(order)))
    ax.set_yticks(range(len(order)))
    ax.set_xticklabels([_plain(labels[i]) for i in order], rotation=60, ha="right", fontsize=8)
    ax.set_yticklabels([_plain(labels[i]) for i in order], fontsize=8)
    fig.colorbar(im, ax=ax, label="mean interaction value")
    ax.set_title(title if title is not None else "interactions (diagonal: main effects)")
    return fig
