"""Shared helpers: input coercion, validation, figure creation and PNG export.

Figures are plain :class:`matplotlib.figure.Figure` objects with an Agg canvas attached.
Nothing here imports ``matplotlib.pyplot`` or changes the global backend or ``rcParams``,
so plotting works headless and figures are never registered with pyplot's figure manager
(they are garbage-collected like any other object).
"""

from __future__ import annotations

import base64
import io
import sys
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure, SubFigure

__all__ = ["to_data_uri", "to_png_bytes"]

# Sign convention (DESIGN.md): positive credit = including the player raises v.
# ColorBrewer RdBu ends: colour-blind safe, and red = positive matches "RdBu_r".
POS_COLOR = "#ca0020"
NEG_COLOR = "#0571b0"
NEUTRAL_COLOR = "#8c8c8c"
MAGNITUDE_COLOR = "#4d6a85"  # unsigned importances (mean |credit|): no sign colour
DIVERGING_CMAP = "RdBu_r"
SEQUENTIAL_CMAP = "Reds"
FEATURE_VALUE_CMAP = "viridis"
# Okabe-Ito palette (colour-blind safe), yellow last: it is hard to see on white.
PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#F0E442",
)
LINESTYLES = ("-", "--", "-.", ":")
SIGNED_LABEL = "credit: + raises output"
UNSIGNED_LABEL = "|credit|"


# ---------------------------------------------------------------------------- inputs


def _is_attribution_like(obj: Any) -> bool:
    """True for objects carrying credits in a ``.values`` attribute (not a method like dict)."""
    if isinstance(obj, np.ndarray) or hasattr(obj, "detach"):
        return False
    vals = getattr(obj, "values", None)
    return vals is not None and not callable(vals)


def _meta(obj: Any, attr: str) -> Any:
    """An optional attribute of an attribution-like object (None for plain arrays)."""
    if not _is_attribution_like(obj):
        return None
    return getattr(obj, attr, None)


def _method_name(obj: Any) -> str | None:
    """The estimator's name of an attribution-like object, for default titles."""
    m = _meta(obj, "method")
    if m is None:
        return None
    if isinstance(m, str):
        return m or None
    if isinstance(m, dict) and "name" in m:
        return str(m["name"])
    name = getattr(m, "name", None)
    return str(name) if name is not None else None


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """numpy float64 from an array, list or torch tensor (torch is never imported here)."""
    if isinstance(x, tuple) and x and all(hasattr(p, "shape") for p in x):
        raise ValueError(
            f"{name} is a tuple of {len(x)} arrays (one per model input); "
            f"plot one of them, e.g. {name}[0]"
        )
    if hasattr(x, "detach"):  # torch tensor: leave the graph, move to host
        t = x.detach().cpu()
        if str(getattr(t, "dtype", "")) == "torch.bfloat16":  # numpy has no bfloat16
            t = t.float()
        x = t
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be a numpy array, a torch tensor or an object with a .values "
            f"array (e.g. tribute.Attribution); got {type(x).__name__}"
        ) from exc


def _as_array(obj: Any, name: str = "values") -> np.ndarray:
    """Credits as a float64 array from an array, a tensor or an attribution-like object."""
    if _is_attribution_like(obj):
        if hasattr(obj, "generated_tokens") and hasattr(obj, "total") and hasattr(obj, "matrix"):
            # a GenerationAttribution's .values stack the generated tokens' rows AND the total
            # row: read as samples, the total would be averaged in with the tokens
            raise ValueError(
                f"{name}: a GenerationAttribution's .values hold {len(obj.generated_tokens)} generated "
                "tokens' rows and the whole continuation's total row last; they are not samples. Pass "
                f"{name}.total (the continuation), {name}.matrix[i] (generated token i) or "
                f"{name}.matrix (one row per token), or draw tribute.viz.generation_heatmap({name}).")
        return _to_numpy(obj.values, f"{name}.values")
    return _to_numpy(obj, name)


def _check_finite(arr: np.ndarray, name: str) -> np.ndarray:
    """Raise a ValueError naming ``name`` and the indices of NaN/inf entries."""
    bad = ~np.isfinite(arr)
    if not bad.any():
        return arr
    idx = np.argwhere(bad)
    n_nan = int(np.isnan(arr).sum())
    kind = "NaN" if n_nan == len(idx) else ("infinite" if n_nan == 0 else "NaN/infinite")
    if arr.ndim == 1:
        where = ", ".join(str(int(r[0])) for r in idx[:5])
    else:
        where = ", ".join(str(tuple(int(i) for i in r)) for r in idx[:5])
    more = f" and {len(idx) - 5} more" if len(idx) > 5 else ""
    raise ValueError(
        f"{name} contains {len(idx)} {kind} value(s) at index {where}{more} "
        f"(shape {arr.shape}); plots need finite credits: check the method's output "
        f"or drop/replace those entries"
    )


def _as_vector(obj: Any, name: str, func: str) -> np.ndarray:
    """A finite 1-D credit vector ``(n_features,)``; a leading batch of 1 is dropped."""
    arr = _as_array(obj, name)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise ValueError(
            f"{func}: {name} must have shape (n_features,) for one sample; got shape "
            f"{arr.shape}. For a batch, plot one row (e.g. {name}[i]); for a (samples, targets, "
            f"features) attribution, one sample and target ({name}[i, t], or attr.plot(i, target=t))"
        )
    if arr.size == 0:
        raise ValueError(f"{func}: {name} is empty; nothing to plot")
    return _check_finite(arr, name)


def _resolve_names(names: Any, obj: Any, n: int, func: str) -> list[str]:
    """Feature names: ``names``, else the attribution's ``player_names``, else ``feature i``."""
    source = "names"
    if names is None:
        names = _meta(obj, "player_names")
        source = "values.player_names"
        if names is not None and len(names) == 0:
            names = None
    if names is None:
        return [f"feature {i}" for i in range(n)]
    if isinstance(names, str):
        names = [names]
    out = [str(s) for s in names]
    if len(out) != n:
        raise ValueError(
            f"{func}: {source} has {len(out)} entries but values has {n} features; "
            f"pass one name per feature"
        )
    return out


def _resolve_stderr(stderr: Any, obj: Any, shape: tuple[int, ...], func: str) -> np.ndarray | None:
    """Standard errors matching ``shape``: ``stderr``, else the attribution's ``.stderr``."""
    explicit = stderr is not None
    if stderr is None:
        stderr = _meta(obj, "stderr")
    if stderr is None:
        return None
    arr = _to_numpy(stderr, "stderr")
    if arr.ndim == len(shape) + 1 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.shape != shape:
        if not explicit:  # an attribution's stderr in another layout: don't guess
            return None
        raise ValueError(f"{func}: stderr has shape {arr.shape} but values has shape {shape}")
    arr = _check_finite(arr, "stderr")
    if (arr < 0).any():
        raise ValueError(f"{func}: stderr must be non-negative; got min {arr.min():g}")
    return arr


def _plain(label: Any) -> str:
    """``str(label)`` shown as typed: its ``$`` escaped so matplotlib's mathtext never parses
    a data-derived name (``"cost $5 to $10"`` would render as math, ``"$\\x$"`` fails to draw)."""
    return str(label).replace("$", r"\$")


def _fmt(v: float) -> str:
    """Compact signed number for labels: ``+0.123``, ``-1.2e-05``."""
    return f"{v:+.3g}"


# ---------------------------------------------------------------------------- figures


def _root_figure(ax: Axes) -> Figure:
    fig: Any = ax.figure
    while isinstance(fig, SubFigure):
        fig = fig.figure
    if not isinstance(fig, Figure):
        raise ValueError("ax is not attached to a matplotlib Figure")
    return fig


def _new_figure(figsize: tuple[float, float]) -> Figure:
    """A pyplot-free figure with constrained layout and an Agg canvas."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """Draw into ``ax`` when given, else into a new single-axes figure."""
    if ax is not None:
        return _root_figure(ax), ax
    fig = _new_figure(figsize)
    return fig, fig.add_subplot()


# ---------------------------------------------------------------------------- export


def _as_figure(fig: Any, func: str) -> Figure:
    if isinstance(fig, SubFigure):
        fig = fig.figure
    if not isinstance(fig, Figure):
        raise TypeError(
            f"{func}: fig must be a matplotlib Figure (as returned by tribute.plot "
            f"functions); got {type(fig).__name__}"
        )
    return fig


def _release(fig: Figure) -> None:
    """Free a figure: unregister it from pyplot if pyplot is in use, then drop its artists."""
    pyplot = sys.modules.get("matplotlib.pyplot")  # only if the user imported it
    if pyplot is not None:
        pyplot.close(fig)
    fig.clear()


def to_png_bytes(fig: Figure, dpi: float = 100, *, close: bool = True) -> bytes:
    """Render a figure to PNG bytes.

    Args:
        fig: a matplotlib figure (any figure works, pyplot-managed or not).
        dpi: resolution in dots per inch, default=100.
        close: release the figure afterwards (remove it from pyplot if it is registered
            there and clear its artists), default=True. The figure is empty afterwards.

    Returns:
        The PNG file's bytes (starting with ``b"\\x89PNG"``).
    """
    fig = _as_figure(fig, "to_png_bytes")
    if not dpi > 0:
        raise ValueError(f"to_png_bytes: dpi must be positive; got {dpi}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    if close:
        _release(fig)
    return buf.getvalue()


def to_data_uri(fig: Figure, dpi: float = 100, *, close: bool = True) -> str:
    """Render a figure as a ``data:image/png;base64,...`` URI for self-contained HTML.

    Args:
        fig: a matplotlib figure.
        dpi: resolution in dots per inch, default=100.
        close: release the figure afterwards, default=True (see :func:`to_png_bytes`).

    Returns:
        A string usable directly as ``<img src="...">``.
    """
    png = to_png_bytes(fig, dpi=dpi, close=close)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
