"""Feature games: players are input elements or groups of them.

The value of a coalition ``S`` for input ``x`` is the model's explained output on the composed
input ``x(m) = b + m * (x - b)``, where ``m`` spreads each player's mask value over its
elements and ``b`` is the baseline. With a background set ``{b_1..b_M}`` the value is the mean
over the set (interventional SHAP, Janzing et al. 2020). Integer inputs (token ids) take
``where(m, x, b)`` and allow binary masks only.

The relaxation ``x(m)`` makes the game differentiable: the gradient w.r.t. ``m`` at ``m = 1``
is input x gradient, and integrating it from 0 to 1 is integrated gradients.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import math
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..attribution import Layout
from ..engine import Engine, Rows, row_signature
from ..engine.core import FirstPassRefusal
from ..engine.progress import active_progress
from ..errors import InputError, ModelOutputError, UnsupportedModelError, user_stacklevel
from ..models import ModelAdapter, NumpyModel, TorchModel
from ..models.adapters import is_multilabel
from ..params import check_unique_names
from ..targets import Target, TargetLike, resolve_target
from ._rows import PeriodicRows, SampleIds, repeat_rows
from .base import Game, is_call_error, model_failure_note, one_dimensional_note

__all__ = ["DEFAULT_BASELINE", "Background", "FeatureGame", "Patches", "PerSample", "ProbeChunk", "column_groups",
           "is_column_groups", "is_position_groups", "patches"]


_ONCE_DIFFERENTIABLE_CODE = torch.autograd.function.once_differentiable(lambda ctx, *g: g).__code__


def _marks_once_differentiable(back: Any) -> bool:
    """Whether ``back`` is ``@once_differentiable``'s wrapper, or a ``functools.wraps``
    decorator over it: ``@custom_bwd`` above ``@once_differentiable`` (deformable convolution,
    multi-scale deformable attention, ROIAlign) hid it, and integrated_hessians gave the
    dropped-Hessian credits again with no error (0.50 off; rev50i)."""
    for _ in range(16):  # a chain of wrappers; a bound on a self-referencing __wrapped__
        if back is None:
            return False
        if getattr(back, "__code__", None) is _ONCE_DIFFERENTIABLE_CODE:
            return True
        back = getattr(back, "__wrapped__", None)
    return False


def _refuse_once_differentiable(out: torch.Tensor, leaf: torch.Tensor, *,
                                who: str = "integrated_hessians",
                                instead: str = "integrated_gradients, shapley_interactions") -> bool:
    """Refuse second derivatives through a custom ``autograd.Function`` marked
    ``@once_differentiable``.

    Its backward runs under ``no_grad``; when the incoming gradient does not require grad (the
    first backward of a Hessian pass), torch returns its result with no graph instead of
    raising, so the second derivative through it is silently zero. On ``l(x * x)`` written as
    such a Function, integrated_hessians gave half the true credits (0.41 for 0.82) with no
    error (aud50i). The marker is also found under ``functools.wraps`` decorators such as
    ``@custom_bwd`` (rev50i). A ``torch.compile``'d graph, whose double backward torch refuses
    with an error about ``create_graph`` the user never set, is refused by name. Only nodes
    on a path from ``out`` to ``leaf`` count: the derivatives w.r.t. ``leaf`` never run the
    others (a Function on a tensor the mask does not reach was refused although its credits
    were exact; rev50i). Walks the graph of ``out`` once per call (its nodes are per
    operation, not per row); the visited nodes are kept alive, so no id is reused. Returns
    whether ``out`` depends on ``leaf`` at all (a pass that does not checked nothing).
    ``who`` (the method that needs second derivatives) and ``instead`` (first-order
    methods to name) word the refusal; data games' Hessians use it too (aud51d)."""
    nodes: dict[int, Any] = {}  # id -> node: holds every visited node
    reaches: dict[int, bool] = {}
    stack: list[tuple[Any, bool]] = [(out.grad_fn, False)]
    while stack:
        node, done = stack.pop()
        if node is None:
            continue
        children = [nxt for nxt, _ in getattr(node, "next_functions", ()) if nxt is not None]
        if not done:
            if id(node) in nodes:
                continue
            nodes[id(node)] = node
            stack.append((node, True))  # finished after its children (a DAG: no cycles)
            stack.extend((nxt, False) for nxt in children if id(nxt) not in nodes)
            continue
        reaches[id(node)] = (getattr(node, "variable", None) is leaf
                             or any(reaches.get(id(nxt), False) for nxt in children))
        if not reaches[id(node)]:
            continue
        fwd = getattr(node, "_forward_cls", None)
        if _marks_once_differentiable(getattr(fwd, "backward", None)):
            raise UnsupportedModelError(
                f"{who} needs second derivatives, but the model calls the custom "
                f"autograd.Function {getattr(fwd, '__qualname__', fwd)!r}, whose backward is "
                "marked @once_differentiable: torch would drop the second derivative through it "
                "silently (credits wrong, no error). Give it a differentiable backward, or use a "
                f"first-order method ({instead})."
            )
        if (getattr(fwd, "__name__", "") == "CompiledFunction"
                and str(getattr(fwd, "__module__", "")).startswith("torch._functorch")):
            # torch's own error was raw and misleading ("keep backward(create_graph=False)",
            # which the user does not call; rev50i)
            raise UnsupportedModelError(
                f"{who} needs second derivatives, but the model runs a "
                "torch.compile'd graph, which has no double backward (torch refuses it). Pass "
                "the module before torch.compile (a compiled module keeps it as ._orig_mod), "
                f"or use a first-order method ({instead})."
            )
    return reaches.get(id(out.grad_fn), False) if out.grad_fn is not None else False


class _DefaultBaseline(float):
    """The default baseline 0.0, marked as "not given by the user".

    It is a float equal to 0.0 everywhere; only :class:`FeatureGame` looks at its type, to warn
    when zeros are an unlikely removal value (tabular numpy/DataFrame inputs).
    """

    def __repr__(self) -> str:
        return "0.0"


#: Default of ``baseline=``: 0.0, distinguishable from an explicit ``baseline=0.0``.
DEFAULT_BASELINE: float = _DefaultBaseline(0.0)


class _UnreadBaseline(float):
    """0.0 standing for a baseline the computation never reads (a method or metric that needs
    no removal value): no out-of-distribution warning, and a table with categorical columns
    takes it (a number read as a removal value there is refused)."""

    removal_unread = True  # read by tribute.models.tabular.prepare_categorical

    def __repr__(self) -> str:
        return "0.0"


#: The baseline of a game whose removal value is never read (see :class:`_UnreadBaseline`).
UNREAD_BASELINE: float = _UnreadBaseline(0.0)

#: Element masks (coalitions x elements) kept for a whole ``value`` call when at most this big.
_ELEMENT_CACHE_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class Background:
    """Marks a baseline as a background *set*: the value function averages over its rows.

    Use it when the set has as many rows as the batch (otherwise a baseline with a different
    leading size is taken as a background set anyway). A large set can be summarised first,
    as SHAP users know it: :meth:`kmeans` (weighted k-means centres) or :meth:`sample` (a
    random subset); the result states the summary in ``attr.params["background"]``.

    Args:
        data: ``M x *input_shape`` array/tensor (a tuple for several inputs).
        weights: ``M`` non-negative weights of the rows (normalised to sum to 1); ``None``
            weighs them equally. Every method averages over the rows with these weights.
        note: how the set was made (reported in the result).
    """

    data: Any
    weights: Any = None
    note: str | None = None

    @classmethod
    def kmeans(cls, data: Any, k: int, *, seed: int = 0, max_iter: int = 300) -> Background:
        """``k`` k-means centres of ``data`` (rows flattened), weighted by their cluster sizes.

        The value function then averages over the centres: a cheaper stand-in for the whole
        set (the summary of ``shap.kmeans``; Lundberg & Lee 2017). scikit-learn's ``KMeans``
        (k-means++ initialisation, seeded) on numeric rows; DataFrames keep their columns.
        """
        return _summarise(cls, data, k, "kmeans", seed, max_iter)

    @classmethod
    def sample(cls, data: Any, k: int, *, seed: int = 0) -> Background:
        """``k`` rows of ``data`` drawn uniformly without replacement (seeded), equally weighted."""
        return _summarise(cls, data, k, "sample", seed, 0)


@dataclass(frozen=True)
class PerSample:
    """Marks a baseline as one row per sample: sample ``i`` is explained against row ``i``.

    A plain array with as many rows as the batch is read this way too. For tables (numpy or
    DataFrame inputs of shape ``batch x features``) that reading cannot be told from a
    background set that happens to have as many rows as the batch (``X_test[:100]`` explained
    against ``X_train[:100]``), so tribute warns there unless the baseline says which it is:
    ``PerSample(rows)`` or :class:`Background` ``(rows)``.

    Rows are matched to samples by position. A DataFrame whose index holds the inputs' own row
    labels in another order is refused (pass ``rows.reindex(inputs.index)``), as a target
    Series is, and so is one that shares most of the inputs' labels and lines up with them only
    in part (a row dropped on one side); any other index is read by position.

    Args:
        data: ``batch x *input_shape`` array/tensor/DataFrame (a tuple for several inputs).
    """

    data: Any


def per_sample_table_warning(rows: int, what: str) -> str:
    """The warning for a plain table baseline with one row per row of ``what`` (the inputs, the
    data of a job): read per sample, though it may be a background set of that size."""
    return (f"baseline has {rows} rows, as many as the {what}, so each row is explained against "
            "its own baseline row (one baseline per sample). If the rows are a background set "
            "(the value averages over all of them, as SHAP's background data), pass "
            "tribute.Background(baseline); to keep one baseline per sample and silence this "
            "warning, pass tribute.PerSample(baseline).")


def _summarise(cls: type[Background], data: Any, k: int, how: str, seed: int,
               max_iter: int) -> Background:
    if isinstance(data, (tuple, list)):
        raise InputError(f"Background.{how}: summarise one input table, not {len(data)} inputs.")
    from ..models.tabular import from_polars

    data = from_polars(data)
    frame = data if _is_pandas(data) else None
    arr = np.asarray(frame.to_numpy() if frame is not None else
                     (data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else data))
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise InputError(f"Background.{how}: data has shape {arr.shape}; expected (M, features) "
                         "with M >= 1 rows.")
    m = int(arr.shape[0])
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise InputError(f"Background.{how}: k={k!r} must be a positive int.")
    if k >= m:
        return cls(data, note=f"all {m:,} rows (k={k} >= rows)")
    rng = np.random.default_rng(seed)
    if how == "sample":
        idx = np.sort(rng.choice(m, size=int(k), replace=False))
        rows: Any = frame.iloc[idx] if frame is not None else data[idx]
        return cls(rows, note=f"random sample of {k:,} of {m:,} rows (seed {seed})")
    flat = arr.reshape(m, -1)
    if not np.issubdtype(flat.dtype, np.number):
        raise InputError("Background.kmeans: k-means needs numeric columns; use "
                         "Background.sample(...) for tables with categorical columns.")
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=int(k), n_init=4, max_iter=max_iter, random_state=seed)
    labels = km.fit_predict(flat.astype(np.float64))
    centres = km.cluster_centers_.reshape((int(k), *arr.shape[1:])).astype(
        arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float64)
    weights = np.bincount(labels, minlength=int(k)).astype(np.float64)
    out: Any = centres
    if frame is not None:
        import pandas as pd

        out = pd.DataFrame(centres, columns=frame.columns)
    elif isinstance(data, torch.Tensor):
        out = torch.as_tensor(centres, dtype=data.dtype)
    return cls(out, weights=weights / weights.sum(),
               note=f"k-means summary: {k:,} weighted centres of {m:,} rows (seed {seed})")


@dataclass
class ProbeChunk:
    """One chunk of rows of :meth:`FeatureGame.probe` (all tensors float64 on the CPU).

    Attributes:
        sample: ``R`` sample ids of the rows.
        point: ``R`` point ids of the rows.
        values: ``R x targets`` explained outputs.
        grads: per leaf, ``R' x targets x *leaf_shape`` gradients (``grad="inputs"``: one per
            model input, ``R' = rows_per_point * R``; ``grad="modules"``: one per module, in
            call order); empty without gradients.
        activations: module path -> its output on the chunk's model rows.
    """

    sample: torch.Tensor
    point: torch.Tensor
    values: torch.Tensor
    grads: list[torch.Tensor] = field(default_factory=list)
    activations: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Patches:
    """Group image pixels into a grid of square patches (all channels of a patch together).

    ``channel_axis``: where a 3-D sample holds its channels, ``0`` (``(C, H, W)``: the last two
    axes are tiled) or ``-1`` (``(H, W, C)``: the first two); None: as the model's first
    ``Conv2d`` reads the image, else the last two axes of a sample (refused where the shape
    reads as a channels-last image too, aud51c)."""

    size: tuple[int, int]
    channel_axis: int | None = None


def patches(size: int | tuple[int, int], channel_axis: int | None = None) -> Patches:
    """A patch-grid grouping for images, e.g. ``groups=tribute.patches(4)`` for 4x4 superpixels
    (``channel_axis``: see :class:`Patches`; ``-1`` for channels-last ``(H, W, C)`` samples
    where the model does not say it)."""
    s = (size, size) if isinstance(size, int) else tuple(size)
    if len(s) != 2 or min(s) < 1:
        raise InputError(f"patches({size!r}): give a positive int or a (height, width) pair.")
    if channel_axis is not None and (isinstance(channel_axis, (bool, np.bool_))
                                     or not isinstance(channel_axis, (int, np.integer))
                                     or int(channel_axis) not in (0, -1)):
        raise InputError(f"patches(channel_axis={channel_axis!r}): give 0 for (C, H, W) samples, -1 "
                         "for (H, W, C) samples, or None (as the model reads them).")
    return Patches((int(s[0]), int(s[1])), None if channel_axis is None else int(channel_axis))


# ----------------------------------------------------------------------- helpers
def _is_pandas(x: Any, kind: str = "DataFrame") -> bool:
    """``x`` is a pandas ``DataFrame`` (or ``Series``), checked without importing pandas."""
    return type(x).__module__.startswith("pandas") and type(x).__name__ == kind


def _frame_to_numpy(x: Any, name: str) -> np.ndarray:
    """Numeric DataFrame/Series -> float64 array (bool and nullable columns included)."""
    import pandas as pd  # x is a pandas object, so pandas is installed
    if _is_pandas(x, "Series") and pd.api.types.is_object_dtype(x.dtype):
        # a row of a frame with bool and float columns is an object Series: its values, not
        # its dtype, say whether it is numeric
        bad_rows = [str(k) for k, v in x.items()
                    if not isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating))]
        if bad_rows:
            raise InputError(
                f"{name} has non-numeric value(s) at {bad_rows[:8]}; encode categorical columns "
                "as numbers (ordinal or one-hot) before explaining, or drop them."
            )
        return np.array(x.to_numpy(dtype=np.float64, na_value=np.nan))
    dtypes = x.dtypes if _is_pandas(x) else {x.name: x.dtype}
    bad = [str(c) for c, dt in dict(dtypes).items()
           if not (pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt))]
    if bad:
        raise InputError(
            f"{name} has non-numeric column(s) {bad[:8]}; encode categorical columns as numbers "
            "(ordinal or one-hot) before explaining, or drop them."
        )
    return np.array(x.to_numpy(dtype=np.float64, na_value=np.nan))  # writable copy


def check_input_container(x: Any, name: str) -> None:
    """Refuse input containers that are not arrays, naming the fix (small44).

    A ``PackedSequence`` is a named tuple ``(data, batch_sizes, ...)``: it was read as that
    many separate inputs ("inputs[1] has 4 samples but inputs[0] has 6"). A scipy sparse
    matrix became a 0-d object array ("non-numeric dtype object ... encode categorical
    columns"); a torch sparse tensor passed the dtype check.
    """
    if isinstance(x, torch.nn.utils.rnn.PackedSequence):
        raise InputError(
            f"{name} is a torch PackedSequence (a packed batch of variable-length sequences, "
            f"data {tuple(x.data.shape)}, {len(x.batch_sizes)} steps); tribute needs a tensor "
            "with the batch axis first: pad it (torch.nn.utils.rnn.pad_packed_sequence(x, "
            "batch_first=True)[0]) and let the model's forward pack it (pack_padded_sequence "
            "with the lengths, e.g. passed in forward_kwargs), or explain one sequence at a time.")
    sparse = sys.modules.get("scipy.sparse")  # a scipy matrix implies scipy is imported
    if sparse is not None and sparse.issparse(x):
        raise InputError(
            f"{name} is a scipy sparse {type(x).__name__} of shape {tuple(x.shape)}; tribute "
            f"perturbs dense arrays: pass {name}.toarray() (a dense numpy array; models fitted "
            "on sparse data, e.g. scikit-learn's, take dense rows too).")
    if isinstance(x, torch.Tensor) and x.layout != torch.strided:
        raise InputError(
            f"{name} is a torch tensor with layout {x.layout} (shape {tuple(x.shape)}); tribute "
            f"perturbs dense tensors: pass {name}.to_dense().")


def _as_tensor(x: Any, name: str) -> tuple[torch.Tensor, str, np.dtype[Any] | None]:
    """Convert a user array to a tensor; returns (tensor, framework, numpy dtype)."""
    check_input_container(x, name)
    if _is_pandas(x) or _is_pandas(x, "Series"):
        x = _frame_to_numpy(x, name)
    if isinstance(x, torch.Tensor):
        if not (x.dtype.is_floating_point or x.dtype in _INT_TYPES or x.dtype == torch.bool):
            raise InputError(f"{name} has dtype {x.dtype}; tribute needs real numbers or integer ids.")
        return x.detach(), "torch", None
    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float64)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(
            f"{name} has non-numeric dtype {arr.dtype} (e.g. strings or objects); encode "
            "categorical columns as numbers (ordinal or one-hot) before explaining."
        )
    return torch.from_numpy(np.ascontiguousarray(arr)), "numpy", arr.dtype


_INT_TYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _check_finite(x: torch.Tensor, name: str, allow_nan: bool = False) -> None:
    """Refuse NaN/Inf values (NaN is allowed for methods that read missing values as the
    model does, e.g. ``tree_shap``: the trees route them)."""
    if not x.dtype.is_floating_point:
        return
    if x.numel() == 0 or math.isfinite(float(x.sum())):
        return  # one reduction: a NaN/Inf anywhere makes the sum non-finite (an overflowing
        # sum of finite values is told apart by the full check below)
    ok = torch.isfinite(x) | torch.isnan(x) if allow_nan else torch.isfinite(x)
    if not bool(ok.all()):
        bad = (~ok).reshape(x.shape[0], -1).any(dim=1).nonzero().flatten()
        kind = "NaN" if bool(torch.isnan(x[~ok]).any()) else "Inf"
        why = ("the model's output there is undefined" if kind == "Inf" else
               "a removed player is composed as x * m + b * (1 - m), which a missing value turns "
               "into NaN in every coalition, even where a pipeline would impute it")
        raise InputError(
            f"{name} contains {kind} values in sample(s) {bad[:10].tolist()}; impute or drop "
            f"them before explaining ({why}; e.g. explain the imputed X with the pipeline's "
            "later steps)"
            + ("." if allow_nan or kind == "Inf" else
               "; tree models that route missing values can be explained with "
               "method='tree_shap', which reads NaN as the model does.")
        )


@dataclass
class _Input:
    """One attributed input tensor, flattened: ``x`` is ``batch x D``."""

    x: torch.Tensor
    shape: tuple[int, ...]
    base: torch.Tensor  # (1 | batch | M) x D
    base_mode: str  # "single" | "per_sample" | "background"
    groups: torch.Tensor | None  # (D,) or (batch, D) long; None = dense slice
    offset: int  # first player id (dense only)
    is_int: bool
    size: int = field(init=False)  # elements per sample (x's second axis)

    def __post_init__(self) -> None:
        self.size = int(self.x.shape[1])


class FeatureGame(Game):
    """Players are input features (elements, or groups given by an integer mask).

    Args:
        model: adapted model (see :func:`tribute.models.as_model`).
        inputs: tensor/array with the batch first, or a tuple of them.
        target: see :mod:`tribute.targets`.
        baseline: scalar, array broadcast to one sample, one per sample, or a background set
            (``M x *shape``; wrap in :class:`Background` when ``M`` equals the batch).
        groups: None (every element a player), an integer mask of player ids ``0..n-1``
            (one per sample shape, or ``batch x *shape``), a tuple of masks for several inputs
            (ids shared across inputs), or :func:`patches`.
        output: output transform, ``raw``/``logit``/``prob``/``log_prob``.
        forward_args: extra positional model arguments (tensors with the batch first are
            indexed per row; anything else is passed as it is).
        forward_kwargs: extra keyword model arguments (same rule).
        feature_names: one name per player.
        engine: the engine; a default one is built otherwise.
    """

    kind = "feature"
    player_kind = "feature"
    distinct_coalitions = True  # v(S) is a function of S: a coalition asked for twice runs once

    def __init__(
        self,
        model: ModelAdapter,
        inputs: Any,
        *,
        target: TargetLike = None,
        baseline: Any = DEFAULT_BASELINE,
        groups: Any = None,
        output: str = "raw",
        forward_args: Sequence[Any] | None = None,
        forward_kwargs: dict[str, Any] | None = None,
        feature_names: Sequence[str] | None = None,
        batch_size: int | None = None,
        progress: bool | None = None,
        allow_missing: bool = False,
    ) -> None:
        check_input_container(inputs, "inputs")  # a PackedSequence is a tuple
        multi = isinstance(inputs, (tuple, list))
        raw_inputs = list(inputs) if multi else [inputs]
        frame = raw_inputs[0] if not multi and _is_pandas(raw_inputs[0]) else None
        columns = [str(c) for c in frame.columns] if frame is not None else None
        if columns is not None:
            check_unique_names(columns, "the inputs DataFrame's columns",
                               " (rename the columns: a repeated label selects several columns)")
            _check_frame_columns(model, columns, baseline)
            _check_per_sample_rows(frame, baseline)
            if feature_names is None and groups is None:
                feature_names = columns
        elif multi:
            _check_per_sample_tuple(raw_inputs, baseline)
        elif not multi:
            columns = _fitted_columns(model, raw_inputs[0])
            if columns is not None and feature_names is None and groups is None:
                feature_names = columns  # the names the model was fitted with, not x0, x1, ...
        if not multi and (is_column_groups(groups)
                          or is_position_groups(groups, tuple(getattr(raw_inputs[0], "shape", ())))):
            if columns is None and len(np.shape(raw_inputs[0])) != 2:
                raise InputError(
                    f"groups as lists of columns need table inputs (batch x columns); inputs have "
                    f"shape {tuple(np.shape(raw_inputs[0]))}: give an integer mask of group ids."
                )
            n_cols = len(columns) if columns is not None else int(np.shape(raw_inputs[0])[-1])
            groups, group_names = column_groups(groups, columns, n_cols)
            if feature_names is None:
                feature_names = group_names
        if multi and not raw_inputs:
            raise InputError("inputs is an empty tuple; pass at least one tensor or array.")
        tensors, frameworks, np_dtypes = [], [], []
        for i, x in enumerate(raw_inputs):
            name = f"inputs[{i}]" if multi else "inputs"
            t, fw, npd = _as_tensor(x, name)
            if t.ndim == 0:
                raise InputError(f"{name} is a scalar; inputs need a batch axis first (shape (batch, ...)).")
            if t.shape[0] == 0:
                raise InputError(f"{name} is an empty batch (shape {tuple(t.shape)}); pass at least one sample.")
            _check_finite(t, name, allow_nan=allow_missing)
            tensors.append(t)
            frameworks.append(fw)
            np_dtypes.append(npd)
        batch = int(tensors[0].shape[0])
        for i, t in enumerate(tensors[1:], 1):
            if t.shape[0] != batch:
                raise InputError(
                    f"inputs[{i}] has {t.shape[0]} samples but inputs[0] has {batch}; every input "
                    "needs the same batch size."
                )
        framework = frameworks[0]
        if isinstance(baseline, _DefaultBaseline) and framework == "numpy" and all(
            t.ndim == 2 and t.dtype.is_floating_point for t in tensors
        ):
            warnings.warn(
                "baseline was not given, so removed features are set to 0.0; for tabular "
                "features that are not standardised, 0.0 is usually far outside the data and "
                "the credits then explain f(x) - f(0). Pass baseline=X_train.mean(0) or a "
                "background set tribute.Background(X_train[:100]) (or baseline=0.0 to keep "
                "zeros and silence this warning).",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        if isinstance(model, NumpyModel):
            model.np_dtypes = tuple(
                npd if npd is not None else t.numpy().dtype for npd, t in zip(np_dtypes, tensors)
            )
        if isinstance(model, TorchModel):
            model.adopt_device(tensors[0].device)
        self.model = model
        device = model.device
        user_dtype = next((t.dtype for t in tensors if t.dtype.is_floating_point), torch.float32)
        self.compute_dtype = model.compute_dtype(user_dtype)
        self.input_device = tensors[0].device

        # ----------------------------------------------------------- inputs & baselines
        bases = self._split_per_input(baseline, len(tensors), "baseline")
        if isinstance(groups, Patches):
            group_list: list[Any] = [groups] * len(tensors)
        else:
            group_list = self._split_per_input(groups, len(tensors), "groups")
        self.inputs: list[_Input] = []
        self._axis_taken: dict[str, int] = {}  # see _ConvProbe
        self._conv_axis: int | None = None  # the channel axis the first pass showed (_ConvProbe)
        promoted: list[int] = []
        fills: list[tuple[torch.Tensor, int, float] | None] = []  # see _digest_key
        for i, t in enumerate(tensors):
            name = f"[{i}]" if multi else ""
            is_int = not t.dtype.is_floating_point
            xt = t.to(device)
            if not is_int:
                xt = xt.to(self.compute_dtype)
            shape = tuple(int(s) for s in t.shape[1:])
            # integer inputs: the baseline is parsed in float64 first, so that a fractional one
            # is seen instead of truncated (see _integral_baseline)
            base, mode = _parse_baseline(bases[i], xt.double() if is_int else xt, shape, batch,
                                         f"baseline{name}", allow_missing)
            if is_int and not _integral_baseline(base, isinstance(model, NumpyModel),
                                                 f"baseline{name}", t.dtype):
                # numeric integer features (counts, ages) of a numpy model: composed in float64,
                # as a DataFrame's integer columns are
                is_int, xt = False, xt.to(torch.float64)
                promoted.append(i)
            told = patch_channel_axis(shape, model) if isinstance(group_list[i], Patches) else None
            g = _parse_groups(group_list[i], shape, batch, f"groups{name}", told)
            if isinstance(group_list[i], Patches) and group_list[i].channel_axis is None and len(shape) == 3:
                # the axis the patches were tiled around, checked on the first pass (aud52v)
                ph, pw = group_list[i].size
                self._axis_taken[f"groups=tribute.patches({ph if ph == pw else (ph, pw)}"] = \
                    -1 if told == -1 else 0
            self.inputs.append(
                _Input(x=xt.reshape(batch, -1), shape=shape, base=base.to(device=device, dtype=xt.dtype),
                       base_mode=mode, groups=None if g is None else g.to(device),
                       offset=0, is_int=is_int)
            )
            fills.append(None if is_int else _scalar_fill(bases[i], self.inputs[-1].base))
        if framework == "numpy" and batch > 1 and all(
                t.ndim == 2 and t.dtype.is_floating_point for t in tensors) and any(
                inp.base_mode == "per_sample" and not isinstance(b, PerSample)
                for inp, b in zip(self.inputs, bases)):
            warnings.warn(per_sample_table_warning(batch, "inputs"), UserWarning,
                          stacklevel=user_stacklevel())
        if promoted and isinstance(model, NumpyModel) and model.np_dtypes is not None:
            model.np_dtypes = tuple(np.dtype(np.float64) if i in promoted else d
                                    for i, d in enumerate(model.np_dtypes))
        modes = {inp.base_mode for inp in self.inputs}
        sizes = {int(inp.base.shape[0]) for inp in self.inputs if inp.base_mode == "background"}
        if len(sizes) > 1:
            raise InputError(f"baseline: background sets of different sizes {sorted(sizes)} for different inputs; give every input the same number of background rows.")
        self.n_background = sizes.pop() if sizes else 1
        self._base_fills = tuple(fills)
        del modes
        self.background_note = baseline.note if isinstance(baseline, Background) else None
        self._bg_weights = _background_weights(
            baseline.weights if isinstance(baseline, Background) else None, self.n_background)

        # ----------------------------------------------------------- players
        dense = all(inp.groups is None for inp in self.inputs)
        if not dense and any(inp.groups is None for inp in self.inputs):
            raise InputError("groups: give a group mask for every input (or for none), so players are well defined.")
        if dense:
            off = 0
            for inp in self.inputs:
                inp.offset = off
                off += inp.size
            n_players = off
        else:
            n_players = _check_group_ids([inp.groups for inp in self.inputs if inp.groups is not None], multi)
        names = self._player_names(n_players, dense, feature_names, multi)

        # ----------------------------------------------------------- extras
        self.forward_args = tuple(forward_args or ())
        self.forward_kwargs = dict(forward_kwargs or {})

        def per_sample(v: Any) -> bool:  # indexed per row by _rows_extra
            return isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim > 0 and v.shape[0] == batch

        #: which forward arguments are per sample (positions, keys): read by a numpy model that
        #: splits a batch into frames (NumpyModel.row_arguments), so that it splits those only
        self._row_arguments = (tuple(per_sample(a) for a in self.forward_args),
                               frozenset(k for k, v in self.forward_kwargs.items() if per_sample(v)))
        self.row_bytes = sum(inp.size for inp in self.inputs) * torch.finfo(self.compute_dtype).bits // 8

        engine = Engine(model, None, batch_size=batch_size, progress=progress)
        engine.tune_key = row_signature(
            [inp.x.reshape(batch, *inp.shape) for inp in self.inputs]
            + [*self.forward_args, *self.forward_kwargs.values()], batch)
        layout = Layout(
            input_shapes=tuple(inp.shape for inp in self.inputs),
            dense=dense,
            multi_target=False,
            framework=framework,
            device=str(self.input_device),
            # integer inputs only (token ids): float32, or the model's wider dtype (a float64
            # model's credits were rounded to float32, 3.7e-8 off; rev49x); a half-precision
            # model keeps float32 credits
            dtype=str(user_dtype if any(not inp.is_int for inp in self.inputs)
                      else torch.promote_types(torch.float32, self.compute_dtype)).replace("torch.", ""),
            multi_input=multi,
            channel_axis=_model_channel_axis([inp.shape for inp in self.inputs], model),
        )
        if framework == "numpy":
            npd0 = next((d for d in np_dtypes if d is not None and np.issubdtype(d, np.floating)), None)
            layout = Layout(**{**layout.__dict__, "dtype": str(npd0) if npd0 is not None else "float64"})
        self.differentiable = bool(model.differentiable) and not any(inp.is_int for inp in self.inputs)
        if not multi and len(self.inputs[0].shape) == 3 and isinstance(model, TorchModel) \
                and model.module is not None:
            convs = [m for m in model.module.modules() if isinstance(m, torch.nn.Conv2d)]
            if convs:
                engine.first_pass = _ConvProbe(self, convs)

        # ----------------------------------------------------------- reference pass
        self.n_samples = batch
        if self._defers(model, target, output):
            # v(N) is counted now and its rows run later (reference_pending): when the target
            # or v(N) is first read, or with the first coalitions of value(..., fold_full=True).
            # The target's width is known without them (one column), so a method's checks and
            # cost estimate need no model row: a refusal spends none (issue #9)
            super().__init__(engine, None, layout, names, batch)  # type: ignore[arg-type]
            self._pending = (target, output)
            self.sample_index = list(frame.index) if frame is not None else None
            self._diff_cache = {}
            self.count_evals(1)
            self._full_counted = True
            return
        if (target is None or (isinstance(target, str) and target == "predicted")) \
                and isinstance(model, NumpyModel) \
                and model.kind in ("predict_proba", "decision_function", "booster") \
                and is_multilabel(model.estimator):
            # aud50t: the arg-max over the labels' columns was explained, one label per sample,
            # silently (a sample with labels 0 and 2 credited for label 2 alone)
            raise InputError(
                f"target={target!r}: {type(model.estimator).__name__} is a multi-label classifier, "
                f"whose {'predict' if model.kind == 'booster' else model.kind} columns are one "
                "label each (independent scores), "
                "so it has no one predicted class: the arg-max would explain the most probable "
                "label of each sample and none of its others. Pass target=k to explain label k, "
                "or a list of labels (target=[0, 1, 2]) to explain each.")
        ref = self._reference_outputs(engine, batch)
        predicted = None
        if (target is None or (isinstance(target, str) and target == "predicted")) \
                and isinstance(model, NumpyModel) and not (self.forward_args or self.forward_kwargs):
            predicted = model.predicted_classes(
                tuple(inp.x.reshape(batch, *inp.shape) for inp in self.inputs))
            if predicted is not None:
                engine.n_rows += batch  # the model's predict saw every sample once more
        tgt = resolve_target(target, output, ref, batch, model.output_kind,
                             assumed=model.output_assumed, predicted=predicted)
        engine.target = tgt
        layout = self._conv_layout(Layout(**{**layout.__dict__, "multi_target": tgt.multi}))
        super().__init__(engine, tgt, layout, names, batch)
        self.sample_index = list(frame.index) if frame is not None else None
        self.reference_output = ref
        self._diff_cache = {}  # x - baseline per input (fast path)
        self._set_reference(tgt.select(ref, torch.arange(batch, device=ref.device)).detach().double().cpu())

    # ------------------------------------------------------- deferred reference pass
    #: ``(target, output)`` while the reference rows are still to run (see :meth:`_defers`)
    _pending: tuple[TargetLike, str] | None = None
    _diff_cache: dict[int, torch.Tensor]  # x - baseline per input (fast path)
    _target: Target
    _full_value: torch.Tensor | None = None
    _reference: torch.Tensor | None = None

    def _defers(self, model: ModelAdapter, target: TargetLike, output: str) -> bool:
        """Whether the reference pass can wait: the target has one column whatever the model
        returns (None, ``"predicted"``, an int), the model is a torch one (no ``predict`` of
        its own), and the rows are the shared-mask fast path's (no per-row arguments, no
        background set, real inputs, one group mask per input)."""
        if type(self) is not FeatureGame or not isinstance(model, TorchModel) or output == "kl" \
                or self.forward_args or self.forward_kwargs or self.n_background != 1:
            return False
        if any(inp.is_int or (inp.groups is not None and inp.groups.ndim != 1)
               or inp.base_mode not in ("single", "per_sample") for inp in self.inputs):
            return False
        if target is None or (isinstance(target, str) and target == "predicted"):
            return True
        return isinstance(target, (int, np.integer)) and not isinstance(target, (bool, np.bool_))

    def reference_pending(self) -> bool:
        return self._pending is not None

    def _resolve_reference(self) -> None:
        """Run a pending reference pass on its own (today's construction-time pass)."""
        if self._pending is not None:
            self._finish_reference(self._reference_outputs(self.engine, self.n_samples))

    def _finish_reference(self, ref: torch.Tensor) -> None:
        """Resolve the target from the reference outputs ``ref`` and store ``v(N)``, as the
        construction-time pass does (the same operations on the same outputs)."""
        assert self._pending is not None
        target, output = self._pending
        batch = self.n_samples
        tgt = resolve_target(target, output, ref, batch, self.model.output_kind,
                             assumed=self.model.output_assumed, predicted=None)
        self._pending = None
        self.engine.target = tgt
        self._target = tgt
        if tgt.multi != self.layout.multi_target:
            self.layout = Layout(**{**self.layout.__dict__, "multi_target": tgt.multi})
        self._reference = ref
        self._set_reference(tgt.select(ref, torch.arange(batch, device=ref.device)).detach().double().cpu())

    @property
    def target(self) -> Target:
        if self._pending is not None:
            self._resolve_reference()
        return self._target

    @target.setter
    def target(self, value: Target) -> None:
        self._target = value

    @property
    def _full(self) -> torch.Tensor | None:
        if self._pending is not None:
            self._resolve_reference()
        return self._full_value

    @_full.setter
    def _full(self, value: torch.Tensor | None) -> None:
        self._full_value = value

    @property
    def reference_output(self) -> torch.Tensor:
        """The model's raw output on the unperturbed inputs (the reference pass)."""
        if self._pending is not None:
            self._resolve_reference()
        assert self._reference is not None
        return self._reference

    @reference_output.setter
    def reference_output(self, value: torch.Tensor) -> None:
        self._reference = value

    @property
    def n_targets(self) -> int:
        return 1 if self._pending is not None else self._target.n_targets

    # ------------------------------------------------------------------ parsing
    @staticmethod
    def _split_per_input(value: Any, n: int, name: str) -> list[Any]:
        if n == 1:
            if isinstance(value, tuple) and len(value) == 1:
                return [value[0]]
            return [value]
        if isinstance(value, Background):
            data = value.data
            if not isinstance(data, (tuple, list)) or len(data) != n:
                raise InputError(f"{name}: Background for {n} inputs needs a tuple of {n} arrays.")
            return [Background(d) for d in data]
        if isinstance(value, PerSample):
            data = value.data
            if not isinstance(data, (tuple, list)) or len(data) != n:
                raise InputError(f"{name}: PerSample for {n} inputs needs a tuple of {n} arrays.")
            return [PerSample(d) for d in data]
        if isinstance(value, (tuple, list)):
            if len(value) != n:
                raise InputError(f"{name} is a tuple of {len(value)} but there are {n} inputs; give one per input.")
            return list(value)
        return [value] * n

    def _player_names(self, n: int, dense: bool, feature_names: Sequence[str] | None,
                      multi: bool) -> list[str]:
        if feature_names is not None:
            names = [str(s) for s in feature_names]
            if len(names) != n:
                raise InputError(
                    f"feature_names has {len(names)} names but there are {n} players; give one "
                    "name per feature (or per group when groups are used)."
                )
            return names
        if not dense:
            return [f"group {i}" for i in range(n)]
        out: list[str] = []
        for i, inp in enumerate(self.inputs):
            prefix = f"input{i}" if multi else "x"
            if len(inp.shape) == 1:
                out.extend((f"{prefix}[{j}]" if multi else f"{prefix}{j}") for j in range(inp.size))
            else:
                fmt = prefix + "[" + ",".join(["{}"] * len(inp.shape)) + "]"
                out.extend(fmt.format(*r) for r in itertools.product(*map(range, inp.shape)))
        return out

    def groups_array(self) -> np.ndarray | None:
        if self.layout.dense:
            return None
        gs = [inp.groups for inp in self.inputs]
        assert all(g is not None for g in gs)
        per_sample = any(g.ndim == 2 for g in gs if g is not None)
        parts = []
        for inp in self.inputs:
            g = inp.groups
            assert g is not None
            if per_sample and g.ndim == 1:
                g = g[None].expand(self.n_samples, -1)
            parts.append(g.cpu())
        return torch.cat(parts, dim=-1).numpy()

    # ------------------------------------------------------------------ rows
    def _rows_extra(self, b: torch.Tensor) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if isinstance(self.model, NumpyModel):
            # (set per chunk: an adapter reused by another game holds that game's arguments)
            self.model.row_arguments = self._row_arguments
        def pick(v: Any) -> Any:
            if isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] == self.n_samples:
                return v.to(self.model.device)[b.to(self.model.device)]
            if isinstance(v, np.ndarray) and v.ndim > 0 and v.shape[0] == self.n_samples:
                return v[b.cpu().numpy()]
            return v

        return tuple(pick(a) for a in self.forward_args), {k: pick(v) for k, v in self.forward_kwargs.items()}

    def _reference_outputs(self, engine: Engine, batch: int) -> torch.Tensor:
        store: list[torch.Tensor] = []
        device = self.model.device

        per_row = bool(self.forward_args or self.forward_kwargs)

        def build(start: int, stop: int) -> Rows:
            b = torch.arange(start, stop, device=device)
            # rows start..stop-1 are samples start..stop-1: a fresh copy of the slice (no index
            # gather; a copy as before, since a view at an offset can meet other kernels)
            xs = tuple(inp.x[start:stop].reshape(stop - start, *inp.shape)
                       .clone(memory_format=torch.contiguous_format)
                       for inp in self.inputs)
            if not per_row:
                return Rows(inputs=xs, sample=b)
            extra, kw = self._rows_extra(b)
            return Rows(inputs=xs, sample=b, extra=extra, kwargs=kw)

        def select(out: torch.Tensor, rows: Rows) -> torch.Tensor:
            store.append(out.detach())
            return out.reshape(out.shape[0], -1).double()

        def sink(start: int, stop: int, vals: torch.Tensor, grads: Any) -> None:
            return None

        try:
            engine.run(batch, build, sink, row_bytes=self.row_bytes, select=select,
                       desc="reference", describe_row=lambda r: f"sample {r} (the unperturbed input)")
        except (ModelOutputError, FirstPassRefusal, torch.cuda.OutOfMemoryError):
            raise  # said clearly by the engine; not a shape or dtype problem
        except (RuntimeError, TypeError, ValueError, IndexError) as exc:
            shapes = ", ".join(str((batch, *inp.shape)) for inp in self.inputs)
            # aud50c: one input, batch statistics; aud51a: a call error, an out-of-range id
            note = model_failure_note(self.model, exc, [inp.x for inp in self.inputs],
                                      kwargs=self.forward_kwargs, n_args=len(self.forward_args))
            one_d = ""
            if all(len(inp.shape) == 0 for inp in self.inputs) and not is_call_error(
                    self.model, exc, self.forward_kwargs):  # aud51g: X[0] of a table
                # rev51g: both readings (a 1-feature model wants X[:, None], not X[None]), and
                # the dtype / batch-statistics advice kept (a float32 model on a float64 1-D
                # input failed on its dtype and was told only to add a batch axis); rev51a: not
                # for a missing forward argument (f(x, scale) on a 1-D input was told X[None])
                one_d = one_dimensional_note(batch) + " "
            raise InputError(
                f"the model failed on the inputs (shapes {shapes}): {exc}. {one_d}{note}") from exc
        return torch.cat(store, dim=0) if len(store) > 1 else store[0]

    def _compose(self, m: torch.Tensor, b: torch.Tensor, j: torch.Tensor,
                 take: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, ...]:
        """Rows ``x(m)`` for per-row masks ``m`` (R x players), samples ``b`` and bg rows ``j``.

        ``take(t)`` gives ``t[b]`` (the rows of a per-sample tensor) when the caller has a
        cheaper way to the same tensor (see :mod:`tribute.games._rows`)."""
        out = []
        n = m.shape[0]
        if take is None:
            def take(t: torch.Tensor) -> torch.Tensor:
                return t[b]
        for inp in self.inputs:
            if inp.groups is None:
                e = m[:, inp.offset : inp.offset + inp.size]
            elif inp.groups.ndim == 1:
                e = m[:, inp.groups]
            else:
                e = m.gather(1, take(inp.groups))
            x = take(inp.x)
            if inp.base_mode == "single":
                base = inp.base
            elif inp.base_mode == "per_sample":
                base = take(inp.base)
            else:
                base = inp.base[j]
            if inp.is_int:
                composed = torch.where(e > 0.5, x, base.expand_as(x))
            else:
                e = e.to(x.dtype)
                composed = torch.lerp(base.expand_as(x), x, e)  # exactly x where e = 1, base where e = 0
            out.append(composed.reshape(n, *inp.shape))
        return tuple(out)

    def _compose_tiled(self, m: torch.Tensor, start: int, stop: int,
                       k_count: int) -> tuple[torch.Tensor, ...]:
        """:meth:`_compose` for rows ``start..stop-1`` of a sample-major ``batch*K`` table
        (one baseline row per sample, real inputs): ``x`` and the baseline are broadcast by
        :func:`repeat_rows` instead of gathered per row; the same ``lerp`` per element as
        :meth:`_compose`, so the same rows and the same gradients w.r.t. ``m``
        (``R x players``)."""
        out = []
        n = m.shape[0]
        for inp in self.inputs:
            if inp.groups is None:
                e = m[:, inp.offset : inp.offset + inp.size]
            elif inp.groups.ndim == 1:
                e = m[:, inp.groups]
            else:
                e = m.gather(1, repeat_rows(inp.groups, start, stop, k_count))
            e = e.to(inp.x.dtype)
            xr = repeat_rows(inp.x, start, stop, k_count)
            if inp.base_mode == "per_sample":
                composed = torch.lerp(repeat_rows(inp.base, start, stop, k_count), xr, e)
            else:
                composed = torch.lerp(inp.base[:1].expand(n, -1), xr, e)
            out.append(composed.reshape(n, *inp.shape))
        return tuple(out)

    def _element_masks(self, inp: _Input, masks: torch.Tensor) -> torch.Tensor:
        """Spread ``K x players`` masks over the elements of one input: ``K x size``."""
        if inp.groups is None:
            return masks[:, inp.offset : inp.offset + inp.size]
        return masks[:, inp.groups]

    def _compose_shared(self, masks: torch.Tensor, start: int, stop: int, k_count: int,
                        cache: dict[int, torch.Tensor],
                        scratch: dict[int, torch.Tensor] | None = None) -> tuple[torch.Tensor, ...]:
        """Rows ``start..stop-1`` of the ``batch*K`` table for shared masks (no background set).

        Row ``r`` is sample ``r // K`` under coalition ``r % K``. The rows split into at most three
        blocks (the end of one sample's coalitions, whole samples, the start of another's); each
        block is ``lerp(base, x[samples, None], e[None])`` (exactly ``x`` where ``e = 1``), one
        broadcast written straight into the output, with element masks ``e`` computed once per coalition (cached
        for the whole ``value`` call when small) instead of gathered for every row. With
        ``scratch``, rows are written into a buffer per input kept there and reused by later
        calls (the caller must be done with earlier rows by then).
        """
        n_rows = stop - start
        blocks = _sample_major_blocks(start, stop, k_count)
        out = []
        for i, inp in enumerate(self.inputs):
            dtype = inp.x.dtype
            held = scratch.get(i) if scratch is not None else None
            if held is None or held.shape[0] < n_rows:
                held = torch.empty(n_rows, inp.size, dtype=dtype, device=inp.x.device)
                if scratch is not None:
                    scratch[i] = held
            rows = held[:n_rows]
            r = 0
            e_all = cache.get(i)
            if e_all is None and k_count * inp.size * inp.x.element_size() <= _ELEMENT_CACHE_BYTES:
                e_all = cache[i] = self._element_masks(inp, masks).to(dtype)
            for bs, nb, lo, hi in blocks:
                e = e_all[lo:hi] if e_all is not None else \
                    self._element_masks(inp, masks[lo:hi]).to(dtype)
                base = inp.base[bs : bs + nb, None] if inp.base_mode == "per_sample" else inp.base[:1, None]
                view = rows[r : r + nb * (hi - lo)].view(nb, hi - lo, inp.size)
                shp = (nb, hi - lo, inp.size)
                # lerp is exactly x where e = 1 (b + 1 * (x - b) can be 1 ulp off x: a tree
                # splitting at that value sent the row down the other branch)
                torch.lerp(base.expand(shp), inp.x[bs : bs + nb, None].expand(shp), e[None].expand(shp), out=view)
                r += nb * (hi - lo)
            out.append(rows.reshape(n_rows, *inp.shape))
        return tuple(out)

    @staticmethod
    def _bg_segments(start: int, stop: int, k_count: int,
                     mb: int) -> list[tuple[int, int, int, int, int, int]]:
        """Rows ``start..stop-1`` of the ``batch*K*M`` table as blocks of whole index ranges.

        Row ``r`` is sample ``r // (K*M)``, coalition ``r // M % K``, background row ``r % M``.
        Each block ``(first sample, n samples, k lo, k hi, j lo, j hi)`` holds the rows of
        samples ``b..b+nb-1`` x coalitions ``lo..hi-1`` x background rows ``jlo..jhi-1`` in that
        order: at most five blocks (the end of one (sample, coalition) pair's background rows,
        the end of one sample's coalitions, whole samples, the start of another's coalitions,
        the start of another pair's background rows), whatever the chunk's bounds.
        """
        p0, j0 = divmod(start, mb)
        p1, j1 = divmod(stop, mb)  # exclusive end: pair p1, background rows < j1
        if p0 == p1:
            b, k = divmod(p0, k_count)
            return [(b, 1, k, k + 1, j0, j1)]
        blocks: list[tuple[int, int, int, int, int, int]] = []
        if j0 > 0:
            b, k = divmod(p0, k_count)
            blocks.append((b, 1, k, k + 1, j0, mb))
            p0 += 1
        if p1 > p0:  # whole pairs p0..p1-1, split by sample as in _compose_shared
            blocks.extend((*blk, 0, mb) for blk in _sample_major_blocks(p0, p1, k_count))
        if j1 > 0:
            b, k = divmod(p1, k_count)
            blocks.append((b, 1, k, k + 1, 0, j1))
        return blocks

    def _compose_background(self, masks: torch.Tensor, start: int, stop: int, k_count: int,
                            cache: dict[int, torch.Tensor],
                            scratch: dict[int, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Rows ``start..stop-1`` of the ``batch*K*M`` table for shared masks and a background
        set of ``M > 1`` rows (real inputs, groups None or one per sample shape).

        The same rows as :meth:`_compose` (bit for bit: the same ``lerp(bg, x, e)`` per
        element, exactly ``x`` where ``e = 1`` and ``bg`` where ``e = 0``), composed per block
        of :meth:`_bg_segments` by one broadcast ``lerp`` straight into a buffer per input
        kept in ``scratch`` and reused by later calls, instead of gathering ``x[b]``, ``bg[j]``
        and the masks row by row. Element masks are made once per call (``cache``, as in
        :meth:`_compose_shared`). Inputs with one baseline (or one per sample) next to a
        background set are broadcast over ``M`` the same way.
        """
        n_rows = stop - start
        mb = self.n_background
        blocks = self._bg_segments(start, stop, k_count, mb)
        out = []
        for i, inp in enumerate(self.inputs):
            dtype = inp.x.dtype
            held = scratch.get(i)
            if held is None or held.shape[0] < n_rows:
                held = scratch[i] = torch.empty(n_rows, inp.size, dtype=dtype, device=inp.x.device)
            rows = held[:n_rows]
            e_all = cache.get(i)
            if e_all is None and k_count * inp.size * inp.x.element_size() <= _ELEMENT_CACHE_BYTES:
                e_all = cache[i] = self._element_masks(inp, masks).to(dtype)
            bg_mode = inp.base_mode == "background"
            r = 0
            for bs, nb, lo, hi, jlo, jhi in blocks:
                e = e_all[lo:hi] if e_all is not None else \
                    self._element_masks(inp, masks[lo:hi]).to(dtype)
                n = nb * (hi - lo) * (jhi - jlo)
                view = rows[r : r + n].view(nb, hi - lo, jhi - jlo, inp.size)
                shp = (nb, hi - lo, jhi - jlo, inp.size)
                if bg_mode:
                    start_rows = inp.base[None, None, jlo:jhi]
                else:
                    # one baseline (or one per sample) next to a background set: the same rows
                    # for every background row (expanded, no copy)
                    start_rows = inp.base[bs : bs + nb, None, None] if inp.base_mode == "per_sample" \
                        else inp.base[:1]
                torch.lerp(start_rows.expand(shp), inp.x[bs : bs + nb, None, None].expand(shp),
                           e[None, :, None].expand(shp), out=view)
                r += n
            out.append(rows.reshape(n_rows, *inp.shape))
        return tuple(out)

    def _sink_background(self, out: torch.Tensor, start: int, stop: int, vals: torch.Tensor,
                         w: torch.Tensor) -> None:
        """Add the background-weighted values of rows ``start..stop-1`` to their (sample,
        coalition) pairs in ``out`` (``batch*K x targets`` float64); ``w`` holds the ``M``
        float64 weights (:meth:`background_weights`).

        Each pair's sum is accumulated row by row in background order, ``((0 + v_0 w_0) +
        v_1 w_1) + ...``, continuing across chunks from what ``out`` already holds: the sums of
        a per-row ``index_add_`` bit for bit, so the result does not depend on where chunks
        start and end (the engine's batch size, which its tuner picks by timing: a grouped
        product rounded a pair split over two chunks differently, ~1e-15, and results changed
        with the machine's speed). Vectorised: the chunk's products, padded with zeros to whole
        pairs and preceded by each pair's running sum, go through one ``cumsum`` along the
        background axis (a sequential scan; adding a zero changes nothing).
        """
        mb = self.n_background
        n = stop - start
        p0, j0 = divmod(start, mb)
        p1 = -(-stop // mb)
        t_count = int(vals.shape[1])
        body = torch.zeros((p1 - p0) * mb, t_count, dtype=torch.float64)
        body[j0 : j0 + n] = vals.to("cpu", torch.float64) * w.repeat(p1 - p0)[j0 : j0 + n, None]
        # running sums first (0 for pairs that start here), then the pair's products
        rows = torch.cat([out[p0:p1, None], body.view(p1 - p0, mb, t_count)], dim=1)
        out[p0:p1] = rows.cumsum(1)[:, -1]

    def _diff(self, i: int) -> torch.Tensor:
        """``x - baseline`` of input ``i`` (``batch x size``), computed once per game."""
        if i not in self._diff_cache:
            inp = self.inputs[i]
            base = inp.base if inp.base_mode == "per_sample" else inp.base[:1]
            self._diff_cache[i] = inp.x - base
        return self._diff_cache[i]

    def _decode(self, start: int, stop: int, k_count: int) -> tuple[torch.Tensor, ...]:
        device = self.model.device
        r = torch.arange(start, stop, device=device)
        mb = self.n_background
        bk = r // mb
        return r, bk, bk // k_count, bk % k_count, r % mb

    def _row_masks(self, masks: torch.Tensor, shared: bool, bk: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        flat = masks if shared else masks.reshape(-1, masks.shape[-1])
        return flat[k if shared else bk]

    def _check_int_masks(self, masks: torch.Tensor) -> None:
        if any(inp.is_int for inp in self.inputs) and not bool(((masks == 0) | (masks == 1)).all()):
            raise InputError(
                "masks: fractional masks on integer inputs (token ids) are undefined; this "
                "method needs real-valued inputs (attribute embeddings instead of ids)."
            )

    def _evaluate(self, masks: torch.Tensor, shared: bool) -> torch.Tensor:
        self._resolve_reference()
        self._check_int_masks(masks)
        k_count = int(masks.shape[-2])
        b_total, t_count, mb = self.n_samples, self.n_targets, self.n_background
        device = self.model.device
        masks_d = masks.to(device=device, dtype=self.compute_dtype)
        # every row is written by the sink (copied for one background row, summed otherwise)
        out = (torch.empty if mb == 1 else torch.zeros)(b_total * k_count, t_count,
                                                         dtype=torch.float64)

        # Fast path (shared masks, one baseline row per sample, real inputs): compose rows by
        # broadcasting element masks over samples instead of gathering per row (see
        # _compose_shared); same rows, several times less memory traffic per row.
        # With a background set (M > 1) the same broadcast composes (sample, coalition,
        # background row) blocks (see _compose_background); on every path the sink sums whole
        # groups of M rows at once (see _sink_background).
        fast = shared and not any(
            inp.is_int or (inp.groups is not None and inp.groups.ndim != 1) for inp in self.inputs
        )
        elem_cache: dict[int, torch.Tensor] = {}
        # composed rows are written into one buffer per input, reused from chunk to chunk (the
        # sink copies the values out before the next chunk is composed)
        scratch: dict[int, torch.Tensor] = {}

        # sample ids of sample-major rows: one add to a cached pattern per block (see _rows)
        ids = SampleIds(k_count * mb, device)
        bg_w = self.background_weights() if mb > 1 else None  # (one row: the sink copies)

        def build(start: int, stop: int) -> Rows:
            if fast:
                b = ids(start, stop)
                extra, kw = self._rows_extra(b)
                if mb > 1:
                    inputs = self._compose_background(masks_d, start, stop, k_count, elem_cache,
                                                      scratch)
                else:
                    inputs = self._compose_shared(masks_d, start, stop, k_count, elem_cache,
                                                  scratch)
                return Rows(inputs=inputs, sample=b, extra=extra, kwargs=kw)
            _, bk, b, k, j = self._decode(start, stop, k_count)
            m = self._row_masks(masks_d, shared, bk, k)
            extra, kw = self._rows_extra(b)
            return Rows(inputs=self._compose(m, b, j), sample=b, extra=extra, kwargs=kw)

        def sink(start: int, stop: int, vals: torch.Tensor, grads: Any) -> None:
            if bg_w is None:
                out[start:stop].copy_(vals)  # one op: to the CPU and to float64 (exact)
                return
            self._sink_background(out, start, stop, vals, bg_w)

        # no per-row forward arguments: rows are composed, selected and stored per block of
        # chunks (the model still sees the same chunks; see Engine.run)
        blocks = not self.forward_args and not self.forward_kwargs
        self.engine.run(b_total * k_count * mb, build, sink, row_bytes=self.row_bytes,
                        select=self._select, desc="coalitions", blocks=blocks,
                        describe_row=self.describe_rows(k_count, self.n_background, "background row"))
        return out.reshape(b_total, k_count, t_count)

    def _evaluate_empty(self, masks: torch.Tensor) -> torch.Tensor:
        """``v(no player)``: the rows ``lerp(baseline, x, 0)`` sent as :meth:`_evaluate` sends
        the one empty coalition (the same engine run: chunks, selection, checks and counts),
        composed by one ``lerp`` per input instead of the shared-mask machinery (element
        masks, sample-id pattern, sample-major blocks: ~100 of the ~320 us a v(empty) of 178
        inputs cost on mlp13, issue #9). A weight of exactly 0 gives ``b + 0 * (x - b)`` in
        every ``lerp`` kernel (fused or not), so the rows, and the values, are the same bits.
        Games with a background set, integer inputs, per-sample groups or per-row forward
        arguments take :meth:`_evaluate`."""
        self._resolve_reference()
        if self.n_background != 1 or self.forward_args or self.forward_kwargs or \
                type(self)._evaluate is not FeatureGame._evaluate or any(
                    inp.is_int or (inp.groups is not None and inp.groups.ndim != 1)
                    or inp.base_mode not in ("single", "per_sample") for inp in self.inputs):
            return super()._evaluate_empty(masks)
        b_total = self.n_samples
        device = self.model.device
        out = torch.empty(b_total, self.n_targets, dtype=torch.float64)
        zeros = [torch.zeros(1, inp.size, dtype=inp.x.dtype, device=inp.x.device)
                 for inp in self.inputs]

        def build(start: int, stop: int) -> Rows:
            n = stop - start
            rows = []
            for inp, e in zip(self.inputs, zeros, strict=True):
                base = inp.base[start:stop] if inp.base_mode == "per_sample" else \
                    inp.base[:1].expand(n, -1)
                rows.append(torch.lerp(base, inp.x[start:stop], e.expand(n, -1))
                            .reshape(n, *inp.shape))
            return Rows(inputs=tuple(rows), sample=torch.arange(start, stop, device=device))

        def sink(start: int, stop: int, vals: torch.Tensor, grads: Any) -> None:
            out[start:stop].copy_(vals)

        self.engine.run(b_total, build, sink, row_bytes=self.row_bytes, select=self._select,
                        desc="coalitions", blocks=True,
                        describe_row=self.describe_rows(1, 1, "background row"))
        return out

    def _evaluate_grad(self, masks: torch.Tensor, shared: bool,
                       weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        self._resolve_reference()
        self._require_grad("gradients w.r.t. the feature mask")
        k_count = int(masks.shape[-2])
        b_total, t_count, mb, n = self.n_samples, self.n_targets, self.n_background, self.n_players
        device = self.model.device
        masks_d = masks.to(device=device, dtype=self.compute_dtype)
        vals_out = torch.zeros(b_total * k_count, t_count, dtype=torch.float64)
        if weights is None:
            grad_out = torch.zeros(b_total * k_count, t_count, n, dtype=torch.float64)
        else:
            grad_out = torch.zeros(b_total, t_count, n, dtype=torch.float64)
            w_dev = weights.to(torch.float64)

        # shared masks, one baseline row per sample: rows are sample-major (sample r // K,
        # coalition r % K) and are taken by tiling / broadcast copies instead of per-row
        # gathers (the same tensors; see games._rows)
        tiled = shared and mb == 1 and k_count > 1
        # tiled rows: the masks and the gradient weights repeat with period K, the sample ids
        # follow one pattern (made once per run, sliced or shifted per chunk)
        # (the masks' rows are a view of one tile: they are only multiplied elementwise, never
        # a model input, so where they start in memory does not matter)
        ids = SampleIds(k_count, device) if tiled else None
        ids_cpu = SampleIds(k_count, "cpu") if tiled else None
        m_rows = PeriodicRows(masks_d) if tiled else None
        w_rows = PeriodicRows(w_dev) if tiled and weights is not None else None
        # weighted sums on the tiled path (integrated gradients and the other path methods):
        # the rows x(m) = base + e(m) * d are linear in the mask, so sum_k w_k dv/dm of a sample
        # is, per element, d * sum_k w_k dv/dx, summed into players by the groups. The
        # gradient is taken w.r.t. the composed rows themselves (the model's own backward
        # pass, nothing of the composition in the graph), summed per sample with the weights
        # in float64 as chunks arrive, and multiplied by d once per sample at the end
        # (instead of, per row, the mask's backward through the composition in the compute
        # dtype, a float64 product and an index_add_: fewer roundings, less work per row).
        # The rows the model sees are the same tensors (composed by _compose_tiled).
        # Only where every element is its own player (no groups): the per-element table is then
        # the size of the result, and no more gradient leaves the device than before; with
        # groups (superpixels) it would be elements / players times larger.
        direct = w_rows is not None and all(inp.groups is None for inp in self.inputs)
        gx_out = [torch.zeros(b_total, t_count, inp.size, dtype=torch.float64)
                  for inp in self.inputs] if direct else []
        # issue #9: without per-row forward arguments the direct path composes its rows per
        # block of passes (the engine makes each pass's slice a leaf and gives the model a
        # copy, as below): one broadcast lerp per block straight into a reused buffer (as
        # the value path's _compose_shared), not a repeat of x and a lerp per pass. The same
        # lerp per element, so the same rows; the passes, and their order, are unchanged
        blocks = direct and not self.forward_args and not self.forward_kwargs
        elem_cache: dict[int, torch.Tensor] = {}
        scratch: dict[int, torch.Tensor] = {}

        def build(start: int, stop: int) -> Rows:
            if blocks:
                assert ids is not None
                return Rows(inputs=self._compose_shared(masks_d, start, stop, k_count,
                                                        elem_cache, scratch),
                            sample=ids(start, stop))
            if direct:
                assert ids is not None and m_rows is not None
                b = ids(start, stop)
                extra, kw = self._rows_extra(b)
                with torch.no_grad():
                    leaves = [x.requires_grad_(True)
                              for x in self._compose_tiled(m_rows(start, stop), start, stop, k_count)]
                # the model gets a copy in the graph, not the leaves: a model that edits its
                # input in place (an inplace ReLU first) may do so on a copy, never on a leaf
                return Rows(inputs=tuple(x.clone() for x in leaves), sample=b, extra=extra,
                            kwargs=kw, leaves=leaves)
            if tiled:
                assert ids is not None and m_rows is not None
                b = ids(start, stop)
                m = m_rows(start, stop).detach().requires_grad_(True)
                extra, kw = self._rows_extra(b)
                inputs = self._compose_tiled(m, start, stop, k_count)
                return Rows(inputs=inputs, sample=b, extra=extra, kwargs=kw, leaves=[m])
            _, bk, b, k, j = self._decode(start, stop, k_count)
            m = self._row_masks(masks_d, shared, bk, k).detach().clone().requires_grad_(True)
            extra, kw = self._rows_extra(b)
            return Rows(inputs=self._compose(m, b, j), sample=b, extra=extra, kwargs=kw, leaves=[m])

        def sink(start: int, stop: int, vals: torch.Tensor, grads: Any) -> None:
            if direct:
                vals_out[start:stop].copy_(vals)  # each row once: to the CPU and float64 (exact)
                for i, gx in enumerate(gx_out):
                    g = grads[i].to("cpu", torch.float64).reshape(stop - start, -1)
                    _weighted_sample_sums(gx.view(b_total, -1), g, w_dev, start, stop, k_count)
                return
            if w_rows is not None:  # the same sums as below, without index arithmetic
                assert ids_cpu is not None
                vals_out[start:stop] += vals.to("cpu", torch.float64)
                wk = w_rows(start, stop)  # w[(start..stop-1) % K], a view of one tile
                # float32 x float64 computes in float64 (the float32 factor widened exactly):
                # the products of .to(float64) * wk in one pass
                g = torch.mul(grads[0].to("cpu"), wk[:, None, None])
                grad_out.index_add_(0, ids_cpu(start, stop), g)
                return
            r = torch.arange(start, stop)
            bk = r // mb if mb > 1 else r
            if mb == 1:  # background weight 1: nothing to scale (x * 1.0 is x exactly)
                vals_out[start:stop] += vals.to("cpu", torch.float64)
                g = grads[0].to("cpu", torch.float64)
            else:
                wr = self._row_weights(start, stop)
                vals_out.index_add_(0, bk, vals.to("cpu", torch.float64) * wr[:, None])
                g = grads[0].to("cpu", torch.float64) * wr[:, None, None]  # R x T x n
            if weights is None:
                grad_out.index_add_(0, bk, g)
            else:
                wk = w_dev[bk % k_count]
                grad_out.index_add_(0, bk // k_count, g * wk[:, None, None])

        self.engine.run(b_total * k_count * mb, build, sink, row_bytes=self.row_bytes, grad=True,
                        select=self._select, desc="gradients", blocks=blocks,
                        describe_row=self.describe_rows(k_count, self.n_background, "background row"))
        vals = vals_out.reshape(b_total, k_count, t_count)
        for i, (inp, gx) in enumerate(zip(self.inputs, gx_out)):
            # d * sum_k w_k dv/dx per element (float64); each element is its own player
            grad_out[:, :, inp.offset : inp.offset + inp.size] += gx.mul_(
                self._diff(i).reshape(b_total, 1, inp.size).to("cpu", torch.float64))
        if weights is None:
            return vals, grad_out.reshape(b_total, k_count, t_count, n)
        return vals, grad_out

    def _require_grad(self, what: str) -> None:
        if not self.differentiable:
            reason = (
                "the inputs are integer ids" if any(inp.is_int for inp in self.inputs)
                else f"the model is a {type(self.model).__name__} (no autograd)"
            )
            raise UnsupportedModelError(
                f"{what} need a differentiable torch model, but {reason}. Use a perturbation "
                "method (kernel_shap, feature_ablation, ...) or attribute embeddings."
            )

    # ------------------------------------------------------------- second order
    def value_grad_hessian(self, masks: torch.Tensor | np.ndarray,
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values, mask gradients and mask Hessians at shared coalitions (second-order methods).

        Every coalition's Hessians are returned (``batch x K x targets x players^2`` held at
        once); a method that only needs their weighted sum over the coalitions uses
        :meth:`weighted_grad_hessian`, ``K`` times smaller.

        Each coalition ``k`` is sent once per player ``p``: that row's model output is
        differentiated twice (a gradient with ``create_graph=True``, then the gradient of its
        ``p``-th entry), which yields row ``p`` of the Hessian. All ``K x players`` rows go
        through the engine in ordinary chunks and are counted: ``K * players`` evaluations
        per input (each row is one model row, with a double backward pass).

        With ``x(m) = b + m (x - b)`` the mask Hessian is
        ``d2v/dm_i dm_j = sum_{e in i, e' in j} (x_e - b_e)(x_e' - b_e') d2f/dx_e dx_e'``
        (summed over each player's elements; averaged with the background weights when the
        game has a background set).

        Args:
            masks: ``K x players`` (shared by all samples), fractional allowed.

        Returns:
            ``(values batch x K x targets, grads batch x K x targets x players,
            hessians batch x K x targets x players x players)``, float64 CPU.
        """
        return self._hessian_pass(masks, None)

    def weighted_grad_hessian(self, masks: torch.Tensor | np.ndarray,
                              grad_weights: torch.Tensor | np.ndarray,
                              hess_weights: torch.Tensor | np.ndarray,
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`value_grad_hessian` with the gradients and Hessians summed over the coalitions.

        The same rows, passes and counts as :meth:`value_grad_hessian`; each chunk's Hessian
        rows are added into ``batch x targets x players x players`` accumulators as they come,
        so the per-coalition Hessians are never held (``K`` times less memory: Integrated
        Hessians needs only ``sum_l w_l g_l H_l``).

        Args:
            masks: ``K x players`` (shared by all samples), fractional allowed.
            grad_weights: ``K`` weights of the gradients' sum.
            hess_weights: ``K`` weights of the Hessians' sum.

        Returns:
            ``(values batch x K x targets, sum_k grad_weights[k] grads_k  batch x targets x
            players, sum_k hess_weights[k] hessians_k  batch x targets x players x players)``,
            float64 CPU.
        """
        # the masks first (rev51g: a 1-D mask of 4 players was read as "4 coalitions", and
        # per-sample masks 3 x 2 x 4 as "3 coalitions", in a refusal about the weights)
        m, shared = self.check_masks(masks)
        if not shared:
            raise InputError(
                f"weighted_grad_hessian takes shared masks (coalitions, {self.n_players}); got "
                f"shape {tuple(m.shape)}."
            )
        k_count = int(m.shape[0])
        ws = []
        for name, wv in (("grad_weights", grad_weights), ("hess_weights", hess_weights)):
            wt = torch.as_tensor(np.asarray(wv, dtype=np.float64) if not isinstance(wv, torch.Tensor)
                                 else wv.detach().to("cpu", torch.float64)).flatten()
            if wt.numel() != k_count:
                raise InputError(f"{name} has {wt.numel()} entries but masks has {k_count} "
                                 "coalitions; give one weight per coalition.")
            if not bool(torch.isfinite(wt).all()):  # rev51g: a NaN weight gave NaN sums
                raise InputError(f"{name} must be finite; got {wt.tolist()[:8]}.")
            ws.append(wt)
        return self._hessian_pass(masks, (ws[0], ws[1]))

    def _hessian_pass(self, masks: torch.Tensor | np.ndarray,
                      weights: tuple[torch.Tensor, torch.Tensor] | None,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The double-backward run of :meth:`value_grad_hessian` (``weights`` None: per
        coalition) and :meth:`weighted_grad_hessian` (``(grad_weights, hess_weights)``: the
        gradients and Hessians summed over the coalitions with those weights)."""
        self._resolve_reference()
        self._require_grad("Hessians w.r.t. the feature mask")
        m, shared = self.check_masks(masks)
        if not shared:
            raise InputError(
                f"value_grad_hessian takes shared masks (coalitions, {self.n_players}); got "
                f"shape {tuple(m.shape)}."
            )
        k_count, n = int(m.shape[0]), self.n_players
        b_total, t_count, mb = self.n_samples, self.n_targets, self.n_background
        device = self.model.device
        masks_d = m.to(device=device, dtype=self.compute_dtype)
        per_sample = k_count * n * mb  # rows per sample: coalition, direction, background row
        vals_out = torch.zeros(b_total * k_count, t_count, dtype=torch.float64)
        slots = b_total * k_count if weights is None else b_total  # per coalition, or summed
        grad_out = torch.zeros(slots, t_count, n, dtype=torch.float64)
        hess_out = torch.zeros(slots, t_count, n, n, dtype=torch.float64)
        first: dict[str, torch.Tensor] = {}

        def decode(start: int, stop: int) -> tuple[torch.Tensor, ...]:
            r = torch.arange(start, stop, device=device)
            j = r % mb
            q = r // mb
            p = q % n
            bk = q // n  # sample * K + coalition
            return bk, bk // k_count, bk % k_count, p, j

        def build(start: int, stop: int) -> Rows:
            _bk, b, k, p, j = decode(start, stop)
            leaf = masks_d[k].detach().clone().requires_grad_(True)
            extra, kw = self._rows_extra(b)
            rows = Rows(inputs=self._compose(leaf, b, j), sample=b, extra=extra, kwargs=kw,
                        leaves=[leaf])
            first["p"] = p
            return rows

        def select(out: torch.Tensor, rows: Rows) -> torch.Tensor:
            # the engine differentiates what this returns: the p-th entry of each row's
            # (graph-carrying) gradient, so its gradient is row p of the Hessian
            vals = self._select(out, rows)
            if "graph_checked" not in first and _refuse_once_differentiable(vals, rows.leaves[0]):
                first["graph_checked"] = torch.ones(())
            leaf, p = rows.leaves[0], first["p"]
            picked, grads = [], []
            for t in range(vals.shape[1]):
                (g,) = torch.autograd.grad(vals[:, t].sum(), leaf, create_graph=True)
                grads.append(g.detach())
                # (+ 0 * leaf keeps the graph connected where the Hessian is zero, e.g. linear models)
                picked.append(g.gather(1, p[:, None])[:, 0] + (leaf * 0).sum(1))
            first["vals"], first["grads"] = vals.detach(), torch.stack(grads, 1)
            rows.checked = vals  # the batch check reads the values, not their derivatives
            return torch.stack(picked, 1)

        def sink(start: int, stop: int, _: torch.Tensor, grads: Any) -> None:
            bk, b, k, p, _j = decode(start, stop)
            bk, b, k, p = bk.cpu(), b.cpu(), k.cpu(), p.cpu()
            w = self._row_weights(start, stop)
            on_first = (p == 0).to(torch.float64) * w  # values and gradients: once per row
            vals_out.index_add_(0, bk, first["vals"].to("cpu", torch.float64) * on_first[:, None])
            if weights is None:
                slot, wg, wh = bk, on_first, w
            else:  # summed over the coalitions as the rows come
                slot, wg, wh = b, on_first * weights[0][k], w * weights[1][k]
            grad_out.index_add_(0, slot, first["grads"].to("cpu", torch.float64)
                                * wg[:, None, None])
            h = grads[0].to("cpu", torch.float64) * wh[:, None, None]  # R x T x n (Hessian row p)
            tt = torch.arange(t_count)[None, :]
            hess_out.index_put_((slot[:, None], tt, p[:, None]), h, accumulate=True)

        self.count_evals(k_count * n)
        # fused attention kernels (flash / memory-efficient SDPA) have no double backward;
        # the math kernel computes the same function with differentiable ops
        with _math_attention():
            self.engine.run(b_total * per_sample, build, sink, row_bytes=self.row_bytes * 3,
                            grad=True, select=select, desc="hessians",
                            describe_row=lambda r: (f"sample {r // per_sample}, coalition "
                                                    f"{(r // (n * mb)) % k_count}, Hessian row "
                                                    f"{(r // mb) % n}"))
        if weights is not None:
            return vals_out.reshape(b_total, k_count, t_count), grad_out, hess_out
        return (vals_out.reshape(b_total, k_count, t_count),
                grad_out.reshape(b_total, k_count, t_count, n),
                hess_out.reshape(b_total, k_count, t_count, n, n))

    # ------------------------------------------------------------- input space
    def input_gradients(
        self,
        n_points: int,
        make_points: Callable[[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]],
        weights: torch.Tensor | None = None,
        powers: tuple[int, ...] = (1,),
        transform: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Gradients of the explained output w.r.t. the *input* at chosen points.

        Args:
            n_points: points per sample (``K``).
            make_points: ``(x_rows, b, k) -> points``: given each row's unperturbed inputs
                (tuple of ``R x *shape`` tensors), sample ids ``b`` and point ids ``k``, return the
                points (same shapes) at which to take gradients.
            weights: ``K`` weights of the sum over points (default: mean, ``1/K``).
            powers: accumulate ``sum_k w_k * grad^p`` for each ``p`` (1: mean gradient; 2: mean
                squared gradient, for SmoothGrad^2/VarGrad).
            transform: optional ``(grads R x targets x D, b, k) -> R x targets x D'`` applied to
                each chunk's per-row gradients (float64 CPU) before the powers are accumulated,
                e.g. ``(x - b_k) * grad`` for expected gradients or a sum into players; the
                accumulators then have ``D'`` columns. default=None (identity).

        Returns:
            ``(values batch x K x targets, {p: batch x targets x D})`` with ``D`` the number of
            input elements (all inputs concatenated; ``D'`` with a transform), float64 CPU.
        """
        self._resolve_reference()
        self._require_grad("input gradients")
        k_count, b_total, t_count = int(n_points), self.n_samples, self.n_targets
        d_total = sum(inp.size for inp in self.inputs)
        w = (torch.full((k_count,), 1.0 / k_count, dtype=torch.float64) if weights is None
             else torch.as_tensor(weights, dtype=torch.float64).flatten())
        if w.numel() != k_count:
            raise InputError(f"weights has {w.numel()} entries but n_points={k_count}.")
        vals_out = torch.zeros(b_total * k_count, t_count, dtype=torch.float64)
        acc: dict[int, torch.Tensor] = {}
        if transform is None:
            acc = {p: torch.zeros(b_total, t_count, d_total, dtype=torch.float64) for p in powers}
        device = self.model.device

        def build(start: int, stop: int) -> Rows:
            r = torch.arange(start, stop, device=device)
            b, k = r // k_count, r % k_count
            xs = tuple(inp.x[b].reshape(stop - start, *inp.shape) for inp in self.inputs)
            pts = tuple(p.detach().to(self.compute_dtype).requires_grad_(True) for p in make_points(xs, b, k))
            extra, kw = self._rows_extra(b)
            # the model gets copies in the graph, not the leaves: a model that edits its input
            # in place (``x.relu_()``, an inplace ReLU first) then runs as without tribute
            # (PyTorch refuses an in-place edit of a leaf that requires grad)
            return Rows(inputs=tuple(p.clone() for p in pts), sample=b, extra=extra, kwargs=kw,
                        leaves=list(pts))

        def sink(start: int, stop: int, vals: torch.Tensor, grads: Any) -> None:
            r = torch.arange(start, stop)
            b, k = r // k_count, r % k_count
            vals_out[start:stop] = vals.to("cpu", torch.float64)
            g = torch.cat([gi.reshape(stop - start, t_count, -1) for gi in grads], dim=-1)
            g = g.to("cpu", torch.float64)
            if transform is not None:  # per-row quantity to accumulate (accumulators made lazily)
                g = transform(g, b, k)
                for p in powers:
                    if p not in acc:
                        acc[p] = torch.zeros(b_total, t_count, g.shape[-1], dtype=torch.float64)
            wk = w[k][:, None, None]
            for p in powers:
                acc[p].index_add_(0, b, wk * (g if p == 1 else g**p))

        self.count_evals(k_count)
        self.engine.run(b_total * k_count, build, sink, row_bytes=self.row_bytes, grad=True,
                        select=self._select, desc="gradients",
                        describe_row=lambda r: f"sample {r // k_count}, point {r % k_count}")
        return vals_out.reshape(b_total, k_count, t_count), acc

    # ------------------------------------------------------------------ probe
    def probe(
        self,
        on_chunk: Callable[[ProbeChunk], None],
        *,
        n_points: int = 1,
        make_points: Callable[[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor],
                              tuple[torch.Tensor, ...]] | None = None,
        modules: Sequence[str] = (),
        check_module: Callable[[str, torch.nn.Module, Any], None] | None = None,
        grad: str | None = None,
        rows_per_point: int = 1,
        context: Callable[[], AbstractContextManager[Any]] | None = None,
        evals: int | None = None,
        row_bytes: int | None = None,
        desc: str = "probe",
    ) -> None:
        """Run the model on chosen rows with scoped hooks; the public way into model internals.

        The game builds ``batch x n_points`` rows (row ``r`` is point ``r % n_points`` of sample
        ``r // n_points``) from each sample's unperturbed inputs, lets ``make_points`` turn them
        into the rows actually fed to the model, runs them through the engine (chunked, checked,
        counted) and hands every chunk to ``on_chunk``. Hooks (``modules``, ``context``) live
        only for the run and are removed in ``finally``, also after errors.

        Args:
            on_chunk: receives a :class:`ProbeChunk` per chunk of rows.
            n_points: rows (points) per sample. default=1 (the inputs themselves).
            make_points: ``(xs, b, k) -> inputs``: given the chunk's unperturbed inputs (tuple of
                ``R x *shape``), sample ids ``b`` and point ids ``k``, the model inputs (each
                with ``rows_per_point * R`` rows). default=None (``xs`` unchanged).
            modules: module paths whose outputs are captured (``ProbeChunk.activations``);
                with ``grad="modules"`` each output is swapped for a leaf tensor, so the
                gradients are ``dS/d(activation)``. A module must run once per forward pass.
            check_module: ``(path, module, output)`` called in the hook before capture, to
                refuse outputs a method cannot use (raise there). default=None.
            grad: None (values only), ``"inputs"`` (gradients w.r.t. the model inputs) or
                ``"modules"`` (w.r.t. the captured activations). default=None.
            rows_per_point: model rows per point (e.g. 2 when each point carries its input and
                its baseline, and a hook keeps only the first half of the output); forward
                arguments are repeated accordingly and every model row is counted. default=1.
            context: a factory of a context manager entered around the run (installs and
                removes method-specific hooks). default=None.
            evals: evaluations per input charged to this game. default=None
                (``n_points * rows_per_point``). Points that are background rows of one
                evaluation pass the evaluation count; games that wrap this one and count their
                own coalitions pass 0.
            row_bytes: bytes of one point's model rows (sizes the chunks). default=None (the
                game's row size times ``rows_per_point``).
            desc: progress-bar label.
        """
        self._resolve_reference()
        if grad not in (None, "inputs", "modules"):
            raise InputError(f"grad={grad!r} must be None, 'inputs' or 'modules'.")
        if grad == "modules" and not modules:
            raise InputError("grad='modules' needs at least one module path in modules=.")
        if grad is not None:
            self._require_grad(f"{desc}: gradients")
        k_count, b_total, rpp = int(n_points), self.n_samples, int(rows_per_point)
        if k_count < 1 or rpp < 1:
            raise InputError(f"n_points={n_points!r} and rows_per_point={rows_per_point!r} must be >= 1.")
        device = self.model.device
        paths = [str(m) for m in modules]
        targets: list[torch.nn.Module] = []
        if paths:
            root = self.model.module
            if root is None:
                raise UnsupportedModelError(
                    f"{desc}: reading modules {paths} needs a torch.nn.Module; got a plain callable."
                )
            named = dict(root.named_modules())
            for pth in paths:
                if pth not in named or pth == "":
                    raise UnsupportedModelError(f"{desc}: {pth!r} is not a module of the model.")
                targets.append(named[pth])
        state: dict[str, Any] = {"rows": None, "calls": {}, "acts": {}}

        def make_hook(pth: str) -> Callable[..., Any]:
            def hook(mod: torch.nn.Module, args: Any, out: Any) -> Any:
                calls = state["calls"]
                calls[pth] = calls.get(pth, 0) + 1
                if calls[pth] > 1:
                    raise UnsupportedModelError(
                        f"{desc}: layer {pth!r} ({type(mod).__name__}) runs more than once per "
                        "forward pass; pick a layer that is called once."
                    )
                if check_module is not None:
                    check_module(pth, mod, out)
                if not isinstance(out, torch.Tensor):
                    raise UnsupportedModelError(
                        f"{desc}: layer {pth!r} ({type(mod).__name__}) returns "
                        f"{type(out).__name__}, not a tensor; pick a layer with a tensor output."
                    )
                if grad != "modules":
                    state["acts"][pth] = out.detach()
                    return None
                leaf = out.detach().requires_grad_(True)
                state["rows"].leaves.append(leaf)
                state["acts"][pth] = leaf.detach()
                # A clone, so in-place ops after the layer (ReLU(inplace=True)) never touch the leaf.
                return leaf.clone()

            return hook

        def build(start: int, stop: int) -> Rows:
            r = torch.arange(start, stop, device=device)
            b, k = r // k_count, r % k_count
            xs = tuple(inp.x[b].reshape(stop - start, *inp.shape) for inp in self.inputs)
            pts = xs if make_points is None else tuple(make_points(xs, b, k))
            if grad == "inputs":
                pts = tuple(p.detach().clone().requires_grad_(True) for p in pts)
            extra, kw = self._rows_extra(b.repeat(rpp) if rpp > 1 else b)
            # with input gradients the model gets copies of the leaves (see input_gradients):
            # an in-place edit of the input runs as without tribute, and DeepLIFT's in-place
            # activations write their value back into it as the model expects
            rows = Rows(inputs=tuple(p.clone() for p in pts) if grad == "inputs" else pts,
                        sample=b, extra=extra, kwargs=kw,
                        leaves=list(pts) if grad == "inputs" else [])
            state["rows"], state["calls"], state["acts"] = rows, {}, {}
            return rows

        def check_called() -> None:
            missing = [p for p in paths if p not in state["acts"]]
            if missing:
                raise UnsupportedModelError(
                    f"{desc}: layer {missing[0]!r} was not called during the forward pass; pick "
                    "a layer the model's forward() uses."
                )

        def select(out: torch.Tensor, rows: Rows) -> torch.Tensor:
            # before the engine's backward: a hook that never ran left no leaf to differentiate
            check_called()
            return self._select(out, rows)

        def sink(start: int, stop: int, vals: torch.Tensor, grads: Any) -> None:
            check_called()
            r = torch.arange(start, stop)
            on_chunk(ProbeChunk(
                sample=r // k_count, point=r % k_count,
                values=vals.to("cpu", torch.float64),
                grads=[g.to("cpu", torch.float64) for g in grads] if grads is not None else [],
                activations={p: state["acts"][p].to("cpu", torch.float64) for p in paths},
            ))

        handles = []
        n_before = self.engine.n_rows
        try:
            with context() if context is not None else nullcontext():
                for pth, mod in zip(paths, targets):
                    handles.append(mod.register_forward_hook(make_hook(pth)))
                self.engine.run(
                    b_total * k_count, build, sink,
                    row_bytes=row_bytes if row_bytes is not None else rpp * self.row_bytes,
                    grad=grad is not None, select=select if paths else self._select, desc=desc,
                    tune_key=None if rpp == 1 or self.engine.tune_key is None
                    else (self.engine.tune_key, rpp),
                    describe_row=lambda r: f"sample {r // k_count}, point {r % k_count}"
                    if k_count > 1 else f"sample {r}",
                )
        finally:
            for h in handles:
                h.remove()
            if rpp > 1:  # the engine counts rows handed in; the model saw rpp per point
                more = (rpp - 1) * (self.engine.n_rows - n_before)
                self.engine.n_rows += more
                bar = active_progress()
                if bar is not None:  # the progress plan counts the model's rows too
                    bar.update(more)
        self.count_evals(k_count * rpp if evals is None else int(evals))

    # ------------------------------------------------------------- derived games
    def with_inputs(self, inputs: Sequence[torch.Tensor], *, parent: torch.Tensor | None = None,
                    flat_results: bool = False) -> FeatureGame:
        """A feature game with the same model, engine and settings on new inputs.

        Sample ``i`` of the new game inherits the per-sample settings (target, baseline, groups,
        forward arguments) of sample ``parent[i]`` of this game. The new game shares this
        game's engine (rows are counted once) and reports its evaluations back: each of this
        game's samples is charged ``n`` times its number of derived samples for every ``n``
        evaluations of the new game (``parent`` must give every sample it names equally many;
        samples it leaves out make a view of a subset, which charges only the samples it names:
        this game's ``n_evals`` is then the most any of its samples spent).

        Args:
            inputs: one ``new_batch x *shape`` tensor per attributed input (same per-sample
                shapes and dtypes as this game's inputs; any device).
            parent: ``new_batch`` long tensor of this game's sample ids. default=None (the
                identity: ``new_batch`` equals this game's batch).
            flat_results: attributions of the new game hold flat float64 CPU torch values
                ``batch x targets x players`` (for wrappers reading them back losslessly with
                :meth:`Attribution.flat`). default=False (this game's layout).
        """
        self._resolve_reference()
        if len(inputs) != len(self.inputs):
            raise InputError(f"with_inputs: got {len(inputs)} inputs; this game has {len(self.inputs)}.")
        b_old = self.n_samples
        new_b = int(inputs[0].shape[0])
        par = torch.arange(b_old) if parent is None else torch.as_tensor(parent).long().cpu()
        if par.ndim != 1 or par.numel() != new_b or (new_b and (int(par.min()) < 0 or int(par.max()) >= b_old)):
            raise InputError(
                f"with_inputs: parent has shape {tuple(par.shape)}; expected ({new_b},) sample ids "
                f"in 0..{b_old - 1}."
            )
        counts = torch.bincount(par, minlength=b_old)
        used = counts[counts > 0]  # samples left out make a view of a subset (small42)
        if new_b and int(used.min()) != int(used.max()):
            raise InputError("with_inputs: parent must give every sample it names the same number of new samples.")
        device = self.model.device
        par_d = par.to(device)
        new_inputs = []
        for i, (inp, x) in enumerate(zip(self.inputs, inputs)):
            xt = torch.as_tensor(x)
            if tuple(xt.shape[1:]) != inp.shape or xt.shape[0] != new_b:
                raise InputError(
                    f"with_inputs: inputs[{i}] has shape {tuple(xt.shape)}; expected "
                    f"({new_b}, *{inp.shape})."
                )
            xt = xt.to(device=device, dtype=inp.x.dtype).reshape(new_b, inp.size)
            base = inp.base[par_d] if inp.base_mode == "per_sample" else inp.base
            groups = inp.groups
            if groups is not None and groups.ndim == 2:
                groups = groups[par_d.to(groups.device)]
            new_inputs.append(dataclasses.replace(inp, x=xt, base=base, groups=groups))
        view = copy.copy(self)
        view.inputs = new_inputs
        view.n_samples = new_b
        t = self.target
        index = None if t.index is None else t.index[par.to(t.index.device)]
        kl_ref = None if t.kl_reference is None else t.kl_reference[par.to(t.kl_reference.device)]
        view.target = dataclasses.replace(t, index=index, names=list(t.names), kl_reference=kl_ref)

        def repeat(v: Any) -> Any:
            if isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] == b_old:
                return v[par.to(v.device)]
            if isinstance(v, np.ndarray) and v.ndim > 0 and v.shape[0] == b_old:
                return v[par.numpy()]
            return v

        view.forward_args = tuple(repeat(a) for a in self.forward_args)
        view.forward_kwargs = {k: repeat(v) for k, v in self.forward_kwargs.items()}
        view.reference_output = self.reference_output[par.to(self.reference_output.device)]
        view.n_evals = 0
        view._full, view._empty, view._full_counted = None, None, False
        view._diff_cache = {}
        # a view of some samples charges only those (small42b; before, every sample of this game)
        covers = None if new_b == b_old and bool((par == torch.arange(b_old)).all()) else par.numpy().astype(np.int64)
        view._report_to = (self, int(counts.max()) if new_b else 0, covers)
        view._sample_evals = None
        index_of = getattr(self, "sample_index", None)
        view.sample_index = None if index_of is None or flat_results else [
            index_of[int(p)] for p in par]
        if flat_results:
            view.layout = dataclasses.replace(self.layout, framework="torch", device="cpu",
                                              dtype="float64", multi_target=True)
        return view

    def full(self) -> torch.Tensor:
        """``v(all players)`` per sample, ``batch x targets`` (one evaluation, cached). With a
        background set it is one row per sample, as the reference pass: with every player
        present the composed row is ``x`` whatever the background row (a view of noisy copies
        ran it once per background row: 1,024 rows for 44 with 50 background rows)."""
        if self._full is None and self.n_background > 1:
            ref = self._reference_outputs(self.engine, self.n_samples)
            self._set_reference(self.target.select(ref, torch.arange(self.n_samples, device=ref.device))
                                .detach().double().cpu())
        return super().full()

    # ------------------------------------------------------------------ rows
    def compose(self, masks: torch.Tensor, sample: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Composed model inputs ``x(m) = b + m * (x - b)`` for per-row masks.

        Args:
            masks: ``R x players`` masks (one per row).
            sample: ``R`` sample ids of the rows.

        Returns:
            One ``R x *shape`` tensor per input (with a background set, its first row is the
            baseline; token inputs take ``where(m, x, b)``).
        """
        device = self.model.device
        m = masks.to(device=device, dtype=self.compute_dtype)
        b = sample.to(device)
        return self._compose(m, b, torch.zeros_like(b))

    def element_masks(self, masks: torch.Tensor, sample: torch.Tensor) -> list[torch.Tensor]:
        """Per-row player masks spread over each input's elements: one ``R x size`` per input."""
        out = []
        b = sample.to(masks.device)
        for inp in self.inputs:
            if inp.groups is None:
                out.append(masks[:, inp.offset : inp.offset + inp.size])
            elif inp.groups.ndim == 1:
                out.append(masks[:, inp.groups.to(masks.device)])
            else:
                out.append(masks.gather(1, inp.groups.to(masks.device)[b]))
        return out

    def _select(self, out: torch.Tensor, rows: Rows) -> torch.Tensor:
        # (Target.select picks shared class columns with one index_select itself; it also counts
        # the probabilities its log clips, which a transform here skipped: small47)
        return self.target.select(out, rows.sample)

    def _shared_columns(self) -> torch.Tensor | None:
        """The class indices when every sample has the same ones (``targets`` long), else None."""
        return self.target.shared_columns()

    # ------------------------------------------------------------- helpers for methods
    def inputs_flat(self) -> torch.Tensor:
        """Unperturbed inputs, ``batch x D`` (all inputs concatenated, compute dtype)."""
        return torch.cat([inp.x.to(self.compute_dtype) for inp in self.inputs], dim=1)

    def background_weights(self) -> torch.Tensor:
        """``M`` float64 weights of the background rows (sum 1; equal unless the
        :class:`Background` was weighted, e.g. a k-means summary). Every average over the
        background uses them."""
        if self._bg_weights is not None:
            return self._bg_weights
        return torch.full((self.n_background,), 1.0 / self.n_background, dtype=torch.float64)

    def _row_weights(self, start: int, stop: int) -> torch.Tensor:
        """Background weight of each row ``start..stop-1`` (rows cycle through the set)."""
        return self.background_weights()[torch.arange(start, stop) % self.n_background]

    def baseline_digest(self) -> str | None:
        """A short fingerprint of the baselines and background weights (16 hex digits).

        ``explain`` records it in ``attr.params["baseline_digest"]``; ``evaluate``'s
        re-explaining metrics compare it with their own game's, so an attribution computed with
        ``baseline=b`` is never compared with re-explanations under another baseline, also for
        methods that report no ``base_values``.
        """
        key = self._digest_key()
        if key is not None:
            known = _SCALAR_DIGESTS.get(key)
            if known is not None:
                return known
        h = hashlib.sha256(repr(self.n_background).encode())
        for inp in self.inputs:  # each input's own table, in its own dtype (no float64 copy)
            h.update(_digest_bytes(inp.base_mode, inp.base))
        if self._bg_weights is None:  # equal weights: the bytes of background_weights()' fill
            h.update(np.full(self.n_background, 1.0 / self.n_background).tobytes())
        else:
            h.update(self._bg_weights.detach().to(torch.float64).numpy().tobytes())
        digest = h.hexdigest()[:16]
        if key is not None:
            if len(_SCALAR_DIGESTS) >= _SCALAR_DIGESTS_MAX:
                _SCALAR_DIGESTS.clear()
            _SCALAR_DIGESTS[key] = digest
        return digest

    #: ``(base, version, value)`` per input whose baseline table is one scalar's fill in the
    #: input's floating dtype (None for any other): see :meth:`_digest_key`
    _base_fills: tuple[tuple[torch.Tensor, int, float] | None, ...] = ()

    def _digest_key(self) -> tuple[Any, ...] | None:
        """What :meth:`baseline_digest` hashes, without its bytes, when every input's baseline
        table is still the fill of a finite scalar made at construction (the same tensor, never
        written since: its version counter) and the background weights are equal: the bytes
        are then a function of each table's mode, shape, dtype and that scalar, so a digest
        computed once is reused (issue #9, eng45: the hash's numpy and hashlib work cost
        ~85-130 us of a warm mlp13 call, 7 us when run hot). None otherwise (hashed in full)."""
        fills = self._base_fills
        if self._bg_weights is not None or len(fills) != len(self.inputs) or not fills:
            return None
        parts: list[Any] = [self.n_background]
        for inp, fill in zip(self.inputs, fills):
            if fill is None:
                return None
            base, version, value = fill
            if inp.base is not base or _version_of(base) != version:
                return None
            parts.append((inp.base_mode, tuple(base.shape), base.dtype, base.device.type, value))
        return tuple(parts)

    def baseline_flat(self) -> torch.Tensor:
        """Baselines ``(1 | batch | M) x D`` (background rows when a set was given)."""
        parts = []
        for inp in self.inputs:
            base = inp.base.to(self.compute_dtype)
            if inp.base_mode == "single" and self.n_background > 1:
                base = base.expand(self.n_background, -1)
            parts.append(base)
        if len({p.shape[0] for p in parts}) > 1:
            parts = [p.expand(self.n_samples, -1) if p.shape[0] == 1 else p for p in parts]
        return torch.cat(parts, dim=1)

    def elements_to_players(self, per_element: torch.Tensor,
                            sample: torch.Tensor | None = None) -> torch.Tensor:
        """Sum ``lead x ... x D`` element credits into ``lead x ... x players``.

        The leading axis holds samples (``sample=None``) or rows belonging to samples
        ``sample`` — per-sample group masks are then looked up row by row.
        """
        if self.layout.dense:
            return per_element
        lead = per_element.shape[:-1]
        out = torch.zeros(*lead, self.n_players, dtype=per_element.dtype)
        start = 0
        for inp in self.inputs:
            seg = per_element[..., start : start + inp.size]
            g = inp.groups
            assert g is not None
            g = g.cpu()
            if g.ndim == 1:
                out.index_add_(out.ndim - 1, g, seg)
            else:
                rows_g = g if sample is None else g[sample.cpu()]  # lead x D_i
                idx = rows_g.reshape(rows_g.shape[0], *([1] * (len(lead) - 1)), rows_g.shape[1])
                out.scatter_add_(out.ndim - 1, idx.expand(*lead, rows_g.shape[1]), seg)
            start += inp.size
        return out

    def input_shapes(self) -> list[tuple[int, ...]]:
        """Per-sample shape of each attributed input."""
        return [inp.shape for inp in self.inputs]

    def _conv_input_seen(self, conv_input: tuple[int, ...] | None) -> None:
        """The first pass's convolution input (:class:`_ConvProbe`): where it shows the channel
        axis, the layout records it for plots where the shape alone would draw otherwise (or
        reads two ways), and a decision taken around another axis before the pass is refused."""
        from ..models.layout import conv_input_channel_axis

        shape = self.inputs[0].shape
        axis = conv_input_channel_axis(shape, conv_input) if conv_input is not None else None
        if axis is None:
            return
        self._conv_axis = axis
        if "layout" in self.__dict__:  # (a pass at construction: set with the layout, below)
            self.layout = self._conv_layout(self.layout)
        wrong = {what: taken for what, taken in self._axis_taken.items() if taken != axis}
        if wrong:
            what, taken = next(iter(wrong.items()))
            reading = "(H, W, C)" if axis == -1 else "(C, H, W)"
            fix = (f"{what}, channel_axis={axis})" if what.startswith("groups=") else
                   f"groups=tribute.patches(k, channel_axis={axis}) or inputs in (C, H, W) order")
            size = what.removeprefix("groups=tribute.patches(")
            if what.startswith("groups=") and size.isdigit():
                # (rev52v: the command line's spelling, which tribute explain / evaluate printed
                # without: --groups patch:4 was refused naming only the Python call)
                fix += f" (on the command line: --groups patch:{size}:{'hwc' if axis == -1 else 'chw'})"
            if what.startswith("occlusion"):
                h, w = (shape[0], shape[1]) if axis == -1 else (shape[1], shape[2])
                c = shape[2] if axis == -1 else shape[0]
                win = (-(-h // 8), -(-w // 8), c) if axis == -1 else (c, -(-h // 8), -(-w // 8))
                fix = f"window={win} (all channels of ceil(H/8) x ceil(W/8) pixels)"
            raise FirstPassRefusal(
                f"{what + ')' if what.startswith('groups=') else what} took the per-sample shape {shape} as "
                f"{'(H, W, C)' if taken == -1 else '(C, H, W)'} (the model's first Conv2d's "
                f"in_channels, or the last two axes as pixels), but the first Conv2d that runs "
                f"receives {tuple(conv_input or ())} per sample: the model reads {reading} "
                f"images (its pixels are axes {'(0, 1)' if axis == -1 else '(1, 2)'} of the "
                f"input). Give {fix}.")

    def _conv_layout(self, layout: Layout) -> Layout:
        """``layout`` with the channel axis the first pass showed (:meth:`_conv_input_seen`)
        where the shape alone would draw the maps otherwise or reads two ways; as it is
        elsewhere (a shape that draws right records nothing, as before)."""
        from ..models.layout import map_channel_axis

        axis = self._conv_axis
        if axis is None:
            return layout
        drawn = layout.channel_axis
        if drawn is None:
            try:
                drawn = map_channel_axis(self.inputs[0].shape, None, "map")
            except ValueError:  # (reads two ways by the shape)
                drawn = None
        return layout if drawn == axis else Layout(**{**layout.__dict__, "channel_axis": axis})

    def image_channel_axis(self) -> int | None:
        """Where a one-input game's 3-D samples hold their channels as the model reads them:
        ``-1`` (``(H, W, C)``) or ``0`` (``(C, H, W)``) where its first ``Conv2d`` says so (the
        axis :func:`patches` tiles around, :func:`patch_channel_axis`); None elsewhere (several
        inputs, other shapes, a model that does not say), where image methods read the last two
        axes as the pixels, as before. Occlusion's default windows and RISE's masks follow it
        (aud52v: on a channels-last CNN's ``(16, 16, 3)`` images they slid over columns x
        channels across all rows)."""
        if len(self.inputs) != 1:
            return None
        if self._conv_axis is not None:  # what the first pass showed (aud52v)
            return self._conv_axis
        return patch_channel_axis(self.inputs[0].shape, self.model)

    def take_image_channel_axis(self, what: str) -> int | None:
        """:meth:`image_channel_axis`, for a decision ``what`` (``"occlusion's default
        windows"``) taken before the model's first pass: that pass checks it, and refuses the
        call (:class:`~tribute.engine.core.FirstPassRefusal`) where the first ``Conv2d`` that
        runs shows the other axis (a CoordConv stem, a channels-last multispectral image)."""
        if self._conv_axis is None and isinstance(self.engine.first_pass, _ConvProbe) \
                and self.reference_pending():
            # the reference pass (counted already; explain runs it before the method) shows it
            self._resolve_reference()
        axis = self.image_channel_axis()
        if len(self.inputs) == 1 and len(self.inputs[0].shape) == 3 and self._conv_axis is None:
            self._axis_taken[what] = -1 if axis == -1 else 0
        return axis

    def integer_inputs(self) -> list[bool]:
        """Whether each attributed input holds integer ids (tokens) rather than real values."""
        return [inp.is_int for inp in self.inputs]


class _ConvProbe:
    """One look at the tensor the first ``Conv2d`` that runs receives, on the model's first
    completed forward pass of a one-input feature game with 3-D samples (the engine's
    ``first_pass``): the pre-hooks are removed when the pass ends, also on an exception, and
    a pass that fails leaves the look to the next one. The model is run for nothing else: the
    pass is one the game asked for anyway, counted as ever.

    The first ``Conv2d`` registered, read without running the model, decides where a sample's
    channels are elsewhere (its ``in_channels``); it may read a tensor the model made from the
    input (aud52v: a CoordConv stem's ``(3, 8, 4)`` images were drawn 3x8, a channels-last
    multispectral ``(16, 16, 8)`` image 16x8, and patches tiled those axes)."""

    def __init__(self, game: FeatureGame, convs: Sequence[torch.nn.Module]) -> None:
        self.game = game
        self.convs = convs
        self.seen: tuple[int, ...] | None = None

    @contextmanager
    def watch(self, inputs: Sequence[Any] = ()) -> Iterator[None]:
        got: list[tuple[int, ...]] = []
        # the rows the model is given: a Conv2d given another batch does not hold one sample
        # per row (rev52v: a (3, 16, 16) model convolving each image row's (C, W) slice, rows
        # folded into the batch, showed (1, 3, 16): read as (H, W, C), occlusion's windows then
        # 13.9 off the closed form (scale 14.0) and patches(2) refused naming channel_axis=-1)
        rows = int(inputs[0].shape[0]) if len(inputs) and isinstance(inputs[0], torch.Tensor) \
            and inputs[0].ndim == 4 else None

        def hook(mod: torch.nn.Module, args: Any) -> None:
            if not got and args and isinstance(args[0], torch.Tensor) and args[0].ndim >= 3 \
                    and (rows is None or (args[0].ndim == 4 and int(args[0].shape[0]) == rows)):
                got.append(tuple(int(d) for d in args[0].shape[-3:]))

        handles = []
        try:
            for m in self.convs:
                handles.append(m.register_forward_pre_hook(hook))
            yield
        finally:
            for h in handles:
                h.remove()
        self.seen = got[0] if got else None

    def settle(self) -> None:
        self.game._conv_input_seen(self.seen)


# --------------------------------------------------------------------- parsing
def _model_channel_axis(shapes: Sequence[tuple[int, ...]], model: Any) -> int | None:
    """The channel axis (0 or -1) of a one-input torch model's 3-D per-sample input shape
    where the shape reads two ways and the model's first ``Conv2d`` says which
    (:func:`tribute.models.layout.plot_channel_axis_by_model`), recorded in the attribution's
    layout so that plots draw it without ``channel_axis=``; None elsewhere."""
    if not isinstance(model, TorchModel):
        return None
    from ..models.layout import plot_channel_axis_by_model

    return plot_channel_axis_by_model(shapes, model)


def patch_channel_axis(shape: tuple[int, ...], model: Any) -> int | None:
    """The channel axis (0 or -1) that :func:`patches` tiles a 3-D per-sample ``shape`` around,
    as a torch model's first ``Conv2d`` reads it (aud51c), asked only where the last axis may
    hold channels (1-4 long); None elsewhere: the last two axes are tiled, as before.

    The first ``Conv2d`` may read a tensor the model made from its input, its ``in_channels``
    matching an image axis by chance (rev51v: a space-to-depth stem's ``Conv2d(16)`` on a gray
    ``(1, 16, 16)`` image, CoordConv's ``Conv2d(5)`` on ``(3, 8, 5)``); taken for every shape, it
    tiled those images' ``(1, 16)`` / ``(3, 8)`` axes. Their last axis cannot be an image's
    channels, so the model is not asked."""
    if len(shape) != 3 or not isinstance(model, TorchModel) or int(shape[-1]) > 4:
        return None
    from ..models.layout import channels_last_by_model

    told = channels_last_by_model(tuple(int(d) for d in shape), model)
    return None if told is None else (-1 if told else 0)


def _sample_major_blocks(start: int, stop: int, k_count: int) -> list[tuple[int, int, int, int]]:
    """Rows ``start..stop-1`` of a sample-major ``samples x K`` table (row ``r``: sample
    ``r // K``, coalition ``r % K``) as at most three blocks ``(first sample, n samples, k lo,
    k hi)``: the end of one sample's coalitions, whole samples, the start of another's."""
    b0, k0 = divmod(start, k_count)
    b1, k1 = divmod(stop, k_count)  # exclusive end: sample b1, coalitions < k1
    blocks: list[tuple[int, int, int, int]] = []
    if b0 == b1:
        blocks.append((b0, 1, k0, k1))
    else:
        if k0 > 0:
            blocks.append((b0, 1, k0, k_count))
            b0 += 1
        if b1 > b0:
            blocks.append((b0, b1 - b0, 0, k_count))
        if k1 > 0:
            blocks.append((b1, 1, 0, k1))
    return blocks


def _weighted_sample_sums(out: torch.Tensor, g: torch.Tensor, w: torch.Tensor, start: int,
                          stop: int, k_count: int) -> None:
    """Add ``sum_k w[k] * g[row of (sample, k)]`` to ``out[sample]`` for rows ``start..stop-1``
    of a sample-major ``samples x K`` table (row ``r``: sample ``r // K``, coalition ``r % K``).

    ``out``: ``samples x F``, ``g``: ``rows x F`` and ``w``: ``K``, all float64. The rows split
    into at most three blocks (the end of one sample's coalitions, whole samples, the start of
    another's); each is one product of the weights with its ``samples x K' x F`` view, added
    in place (``baddbmm_``, or ``addmv_`` for one sample).
    """
    r = 0
    for bs, nb, lo, hi in _sample_major_blocks(start, stop, k_count):
        part = g[r : r + nb * (hi - lo)]
        if nb == 1:  # one sample: a matrix-vector product added in place
            out[bs].addmv_(part.t(), w[lo:hi])
        else:  # a batch of vector-matrix products added in place
            out[bs : bs + nb, None].baddbmm_(w[None, None, lo:hi].expand(nb, 1, -1),
                                             part.view(nb, hi - lo, -1))
        r += nb * (hi - lo)


def _math_attention() -> AbstractContextManager[Any]:
    """Scope in which ``scaled_dot_product_attention`` uses its math kernel (twice
    differentiable); a no-op on torch builds without ``torch.nn.attention``."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # pragma: no cover - old torch
        return nullcontext()
    return sdpa_kernel(SDPBackend.MATH)


def _fitted_columns(model: ModelAdapter, x: Any) -> list[str] | None:
    """The fitted column names (``feature_names_in_``) for a plain 2-D array, or None.

    An estimator fitted on a DataFrame knows its columns; an array passed without names is read
    in that order (the adapter hands the estimator a DataFrame with those names), so its
    players are named after them. An array with another number of columns is refused here,
    naming both counts, instead of failing inside the estimator.
    """
    fitted = getattr(model, "feature_names", None)
    shape = np.shape(x)
    if fitted is None or len(shape) != 2:
        return None
    if shape[1] != len(fitted):
        raise InputError(
            f"inputs have {shape[1]} columns (shape {tuple(shape)}) but the model was fitted on "
            f"{len(fitted)} named columns {list(fitted)[:8]}{'...' if len(fitted) > 8 else ''}; "
            "pass one column per fitted feature, in that order (e.g. a DataFrame "
            "X[model.feature_names_in_])."
        )
    return [str(c) for c in fitted]


def _check_frame_columns(model: ModelAdapter, columns: list[str], baseline: Any) -> None:
    """The DataFrame's columns match the fitted model's and a DataFrame/Series baseline's."""
    fitted = getattr(model, "feature_names", None)
    lgbm = type(getattr(model, "estimator", None)).__module__.startswith("lightgbm")  # stores ' ' as '_'
    if fitted is not None and list(fitted) not in (columns, [c.replace(" ", "_") for c in columns] if lgbm else columns):
        raise InputError(
            f"inputs has columns {columns[:8]}{'...' if len(columns) > 8 else ''} but the model "
            f"was fitted on {list(fitted)[:8]}{'...' if len(fitted) > 8 else ''}; select them in "
            f"the fitted order, e.g. inputs=X[{list(fitted)[:3]!r}{' + ...' if len(fitted) > 3 else ''}] "
            "(scikit-learn: X[model.feature_names_in_]; a Booster: X[booster.feature_name()] "
            "or X[booster.feature_names])."
        )
    data = baseline.data if isinstance(baseline, (Background, PerSample)) else baseline
    labels = None
    if _is_pandas(data):
        labels = [str(c) for c in data.columns]
    elif _is_pandas(data, "Series") and data.ndim == 1 and len(data) == len(columns):
        labels = [str(c) for c in data.index]
    if labels is not None and labels != columns:
        raise InputError(
            f"baseline has columns {labels[:8]} but inputs has {columns[:8]}; give the baseline "
            "the same columns in the same order (e.g. baseline=X_train[inputs.columns].mean())."
        )


def _check_per_sample_tuple(inputs: list[Any], baseline: Any) -> None:
    """:func:`_check_per_sample_rows` for each input of a multi-input model whose baseline is a
    tuple (plain or ``PerSample``) of frames: before, only a single frame was checked and a tuple
    of frames in another row order was read by position silently (credits 4.6 off)."""
    per = isinstance(baseline, PerSample)
    parts = baseline.data if per else baseline
    if not isinstance(parts, (tuple, list)) or len(parts) != len(inputs):
        return
    for k, (x, b) in enumerate(zip(inputs, parts, strict=True)):
        if _is_pandas(x):
            _check_per_sample_rows(x, PerSample(b) if per else b, where=f"baseline[{k}] (of input {k})")


def _check_per_sample_rows(frame: Any, baseline: Any, where: str = "baseline") -> None:
    """Refuse a per-sample DataFrame baseline whose index names the inputs' rows in another
    order (aud42o).

    One baseline row per sample (``PerSample(rows)``, or a plain DataFrame with as many rows as
    the inputs) is read by position, as a target Series is; a frame whose index holds the
    inputs' labels in another order (``rows.iloc[::-1]``, ``rows.sort_values(...)``) used to
    explain each sample against another sample's row, silently (a logistic model's credits
    0.89 off). So is a frame that shares most labels with the inputs and lines up with them
    by label only in part (rev42d: a row dropped on one side, 0.94 off). Other indexes (equal
    ones, rows taken from a training set, a fresh frame's ``0..n-1`` next to inputs labelled
    ``1..n``) are read by position as before.
    """
    data: Any = baseline.data if isinstance(baseline, PerSample) else (
        None if isinstance(baseline, Background) else baseline)
    if data is None or not _is_pandas(data) or len(data) != len(frame) or len(frame) < 2:
        return
    ix_in, ix_b = frame.index, data.index
    if not (ix_in.is_unique and ix_b.is_unique) or ix_in.equals(ix_b):
        return
    at = {k: i for i, k in enumerate(ix_in)}
    moved = [(k, j) for j, k in enumerate(ix_b) if k in at and at[k] != j]
    if not moved:
        return
    shared = [at[k] for k in ix_b if k in at]  # inputs' positions, in the baseline's order
    if len(shared) == len(ix_b):
        what = "holds the inputs' row labels in another order"
    else:
        # Partial overlap (rev42d): refuse only when the two frames visibly line up by label,
        # e.g. ``df.iloc[10:20]`` next to ``df_b.iloc[10:20]`` after a row of ``df_b`` was
        # dropped: all labels but a few (one, or a quarter) shared, in the same relative order,
        # some at the same position and some shifted. Rows from elsewhere (a training set's
        # neighbours, an offset slice) and a fresh ``0..n-1`` frame stay positional.
        fresh = list(ix_b) == list(range(len(ix_b)))
        in_order = bool(np.all(np.diff(shared) > 0))
        aligned = any(at[k] == j for j, k in enumerate(ix_b) if k in at)
        few = len(ix_b) - len(shared) <= max(1, len(ix_b) // 4)
        if fresh or not (in_order and aligned and few):
            return
        what = ("shares most of the inputs' row labels but lines up with them only in part "
                "(a row dropped or added on one side?)")
    label, j = moved[0]

    def lab(v: Any) -> str:
        return repr(v.item() if isinstance(v, np.generic) else v)

    def show(ix: Any) -> str:
        return "[" + ", ".join(lab(v) for v in ix[:5]) + (", ...]" if len(ix) > 5 else "]")

    raise InputError(
        f"{where} (one row per sample) is a DataFrame whose index {show(ix_b)} {what} "
        f"(inputs' index {show(ix_in)}): baselines are read by position, so the sample at "
        f"position {j} ({lab(ix_in[j])}) would be explained against the baseline row labelled "
        f"{lab(label)}. Pass the rows in the inputs' order, e.g. "
        "baseline=tribute.PerSample(rows.reindex(inputs.index)) (or rows.to_numpy() if the "
        "positions already match; tribute.Background(rows) if they are a background set, not "
        "one row per sample).")


def _digest_bytes(mode: str, base: torch.Tensor) -> bytes:
    """What :meth:`FeatureGame.baseline_digest` hashes for one input's baseline table: its
    mode, shape and dtype, then its values in its own dtype (``+ 0.0``: -0.0 and 0.0 are the
    same baseline; bfloat16 as float32). A CPU float32/float64 or integer table is read through
    numpy (the same bytes as the torch route below, without four dispatched torch ops: the
    digest is part of every call's fixed cost, issue #9)."""
    b = base.detach()
    if b.device.type == "cpu" and b.dtype in _NUMPY_DIGEST:
        a = np.ascontiguousarray(b.numpy())
        if b.is_floating_point():
            a = a + a.dtype.type(0.0)
        head = repr((mode, tuple(b.shape), str(b.dtype))).encode()
        return head + a.tobytes()
    b = b.to("cpu").contiguous()
    if b.is_floating_point():
        b = (b.float() if b.dtype == torch.bfloat16 else b) + 0.0
    return repr((mode, tuple(b.shape), str(b.dtype))).encode() + b.numpy().tobytes()


_NUMPY_DIGEST = (torch.float32, torch.float64, torch.int64, torch.int32, torch.int16, torch.int8,
                 torch.uint8)

#: digests of scalar-filled baseline tables (:meth:`FeatureGame._digest_key` -> digest); cleared
#: when full (a key holds only shapes, dtypes and scalars, no tensor)
_SCALAR_DIGESTS: dict[tuple[Any, ...], str] = {}
_SCALAR_DIGESTS_MAX = 256


def _version_of(t: torch.Tensor) -> int | None:
    """``t._version``, or None for an inference tensor (it keeps no version counter)."""
    try:
        return int(t._version)
    except RuntimeError:
        return None


def _scalar_fill(value: Any, base: torch.Tensor) -> tuple[torch.Tensor, int, float] | None:
    """``(base, version, scalar)`` when :func:`_parse_baseline` filled the table ``base`` with
    the finite real scalar ``value`` in ``base``'s floating dtype (float32/float64, where it
    fills with ``float(value)`` directly), else None."""
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool) \
            or base.dtype not in (torch.float32, torch.float64):
        return None
    v = float(value)
    version = _version_of(base)
    if version is None or not math.isfinite(v):
        return None
    return base, version, v


def _background_weights(weights: Any, m: int) -> torch.Tensor | None:
    """Normalised ``M`` background weights, or None for equal weights."""
    if weights is None:
        return None
    try:
        w = torch.as_tensor(np.asarray(_to_numpy_weights(weights), dtype=np.float64))
    except (TypeError, ValueError):
        raise InputError(f"Background weights={weights!r:.60} are not numbers; give one "
                         f"non-negative number per background row ({m}).") from None
    if w.ndim != 1 or int(w.shape[0]) != m:
        raise InputError(f"Background weights have shape {tuple(w.shape)}; expected ({m},), one "
                         "per background row.")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise InputError("Background weights must be finite, non-negative and not all zero.")
    total = float(w.sum())
    if not math.isfinite(total):
        # aud49o: finite weights whose sum overflows (3 x 1e308) became w / inf = 0: every row
        # weighed 0, credits of no background at all. Scaled by the largest first, the ratios stay
        w = w / w.max()
    return w / w.sum()


def _to_numpy_weights(weights: Any) -> Any:
    """Background weights as numpy can read them (a tensor on any device, bf16 included)."""
    if isinstance(weights, torch.Tensor):
        return weights.detach().cpu().double().numpy()
    return weights


def _integral_baseline(base: torch.Tensor, numpy_model: bool, name: str,
                       dtype: torch.dtype) -> bool:
    """Whether a baseline (background) for an integer input holds only whole numbers.

    Integer inputs are composed by selection (a player's value is the input's or the
    baseline's), so a fractional baseline -- e.g. the column means of integer counts -- used to
    be cast to the integer dtype: silently truncated (a linear model's credits came out as
    ``w (x - trunc(b))``). Returns False for a numpy model (the caller composes that input in
    float64, as it does for a DataFrame's integer columns); refuses for torch models and plain
    functions, whose integer inputs may be token ids that have no fractional value."""
    if not base.dtype.is_floating_point:
        return True
    b = base.double()
    if bool((b == b.round()).all()):
        return True
    if numpy_model:
        return False
    bad = b[b != b.round()].flatten()[0].item()
    raise InputError(
        f"{name} holds fractional values (e.g. {bad:.6g}) but the inputs are integers "
        f"({dtype}): composing them would truncate the baseline. If the features are numeric "
        "(counts, ages), pass the inputs as floats (x.float() / x.astype(float)); if they are "
        "ids (tokens, categories), give an integer baseline (e.g. a padding or mask id)."
    )


def _parse_baseline(value: Any, x: torch.Tensor, shape: tuple[int, ...], batch: int,
                    name: str, allow_missing: bool = False) -> tuple[torch.Tensor, str]:
    d = math.prod(shape)
    force_bg = isinstance(value, Background)
    force_ps = isinstance(value, PerSample)
    if force_bg or force_ps:
        value = value.data
    if force_ps and (value is None or isinstance(value, (int, float, np.integer, np.floating))):
        raise InputError(f"{name}: PerSample({value!r}) holds no rows; it marks a ({batch}, *{shape}) "
                         "array of one baseline row per sample (a scalar baseline needs no marker).")
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        if x.dtype in (torch.float32, torch.float64):  # one fill, rounded the same way
            return torch.full((1, d), float(value), dtype=x.dtype, device=x.device), "single"
        return torch.full((1, d), float(value), dtype=torch.float64).to(x.dtype), "single"
    if value is None:
        raise InputError(f"{name} is None; pass 0.0, an array broadcastable to one sample, one per sample, or a background set.")
    if isinstance(value, str):
        raise InputError(
            f"{name}={value!r} is a string; the Python API takes values: {name}=X.mean(0) (what the "
            f"CLI's --baseline mean computes from --data), 0.0, one row per sample or "
            f"tribute.Background(X) (a background set)."
        )
    t, _, _ = _as_tensor(value, name)
    t = t.to(x.device)
    _check_finite(t if t.ndim > 0 else t.reshape(1), name, allow_nan=allow_missing)
    expected = f"a scalar, {shape} (one sample), ({batch}, *{shape}) (one per sample) or (M, *{shape}) (a background set)"
    if force_bg:
        if tuple(t.shape[1:]) != shape or t.shape[0] == 0:
            raise InputError(f"{name}: Background has shape {tuple(t.shape)}; expected (M, *{shape}) with M >= 1.")
        return t.reshape(t.shape[0], d), "background"
    if force_ps:
        if tuple(t.shape) != (batch, *shape):
            raise InputError(f"{name}: PerSample has shape {tuple(t.shape)}; expected one row per "
                             f"sample, ({batch}, *{shape}).")
        return t.reshape(batch, d), "per_sample"
    if t.ndim == 0:
        return t.reshape(1, 1).expand(1, d).clone(), "single"
    if tuple(t.shape) == shape:
        return t.reshape(1, d), "single"
    if t.ndim == len(shape) + 1 and tuple(t.shape[1:]) == shape:
        if t.shape[0] == batch:
            return t.reshape(batch, d), "per_sample"
        if t.shape[0] == 1:
            return t.reshape(1, d), "single"
        return t.reshape(t.shape[0], d), "background"
    try:
        b = torch.broadcast_to(t, shape)
    except RuntimeError:
        raise InputError(f"{name} has shape {tuple(t.shape)}, which does not match inputs of shape ({batch}, *{shape}); expected {expected}.") from None
    if t.ndim > len(shape):
        raise InputError(f"{name} has shape {tuple(t.shape)}; expected {expected}.")
    return b.reshape(1, d).clone(), "single"


def is_column_groups(value: Any) -> bool:
    """``groups`` given as columns per player: a dict ``{name: columns}``, or a list of column
    lists that names columns (strings) or is ragged (an integer mask is rectangular)."""
    if isinstance(value, dict):
        return True
    if not isinstance(value, list) or not value or not all(isinstance(g, (list, tuple)) for g in value):
        return False
    flat = [c for g in value for c in g]
    return any(isinstance(c, str) for c in flat) or len({len(g) for g in value}) > 1


def is_position_groups(value: Any, shape: tuple[int, ...]) -> bool:
    """``groups`` is a list of equally long lists of column positions that holds every column of
    the table of ``shape`` (batch x columns) exactly once: column lists, not an integer mask.

    :func:`is_column_groups` counts only ragged or named lists, so ``[[0, 1], [2, 3]]`` was
    read as a ``(2, 2)`` mask and refused for its shape, and ``[[0, 1, 2, 3]]`` (one group of
    every column) on one sample as a per-sample mask that made every column its own player
    (aud49o). An integer mask holds each id of ``0..n-1`` once per sample only when every
    element is its own player, so a mask read this way changes only in that degenerate case.
    On one sample ``[[every column]]`` is both a (1, n) mask and one group: refused (rev49o).
    """
    if len(shape) != 2 or not isinstance(value, list) or not value \
            or not all(isinstance(g, (list, tuple)) for g in value):
        return False
    flat = [c for g in value for c in g]
    if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in flat):
        return False
    n = int(shape[1])
    if sorted(int(c) for c in flat) != list(range(n)):
        return False
    if int(shape[0]) == 1 and len(value) == 1 and n > 1:
        # rev49o: on one sample a single list of every position is also the (1, n) per-sample
        # mask (``mask.tolist()``, a Captum-style feature_mask): every column its own player.
        # BASE read it as that mask, aud49o as one group; either reading is silently wrong for
        # the user who meant the other, so ask.
        raise InputError(
            f"groups={value!r:.80} on one sample is ambiguous: as an integer mask of shape (1, {n}) "
            f"it makes every column its own player ({n} credits); as a list of column lists it is "
            f"one group of all {n} columns (1 credit). Say which: np.array(groups) (or a flat list "
            f"of ids) for the mask, or a dict for column groups, e.g. groups={{'all': {sorted(flat)!r:.60}}}.")
    return True


def column_groups(value: Any, columns: list[str] | None, n_cols: int) -> tuple[np.ndarray, list[str]]:
    """An integer mask (one group id per column) and the group names from columns per player.

    Columns are named (a DataFrame's column names) or given by position; every column must be
    in exactly one group.
    """
    items = list(value.items()) if isinstance(value, dict) else [(None, g) for g in value]
    mask = np.full(n_cols, -1, dtype=np.int64)
    names: list[str] = []
    for gid, (key, cols) in enumerate(items):
        if isinstance(cols, (str, int, np.integer)):
            cols = [cols]
        if not len(cols):
            raise InputError(
                f"groups: group {key if key is not None else gid!r} has no columns; give every "
                "group at least one column (drop the empty group).")
        members: list[str] = []
        for c in cols:
            if isinstance(c, str):
                if columns is None or c not in columns:
                    raise InputError(
                        f"groups: column {c!r} is not a column of inputs"
                        + (f" (columns: {columns[:8]})" if columns else " (inputs have no column names; "
                           "give column positions)") + "."
                    )
                j = columns.index(c)
            elif isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= int(c) < n_cols:
                j = int(c)
            else:
                raise InputError(f"groups: {c!r} is neither a column name nor a position 0..{n_cols - 1}.")
            if mask[j] == gid:
                raise InputError(f"groups: column {c!r} is listed twice in group "
                                 f"{key if key is not None else gid!r}; list every column once.")
            if mask[j] >= 0:
                raise InputError(f"groups: column {c!r} is in two groups; give every column one group.")
            mask[j] = gid
            members.append(columns[j] if columns is not None else f"x{j}")
        names.append(str(key) if key is not None else "+".join(members))
    missing = [columns[j] if columns is not None else j for j in np.flatnonzero(mask < 0)]
    if missing:
        raise InputError(
            f"groups leaves column(s) {missing[:8]} in no group; give every column one group "
            "(a group of its own for columns to explain alone)."
        )
    return mask, names


def patch_map(spec: Patches, shape: tuple[int, ...], model: Any, name: str = "groups") -> tuple[np.ndarray, bool]:
    """The player id of every element of one sample of ``shape`` under ``spec``, as the feature
    game of ``model`` (an adapter, :func:`tribute.models.as_model`) reads it: the spatial axes its
    first ``Conv2d`` reads, or those ``spec.channel_axis`` names (aud51c); and whether those are
    the first two axes of an ``(H, W, C)`` sample."""
    axis = patch_channel_axis(shape, model)
    ids = _parse_groups(spec, shape, 1, name, axis)
    assert ids is not None
    last = len(shape) == 3 and (spec.channel_axis if spec.channel_axis is not None else axis) == -1
    return ids.reshape(shape).numpy(), last


def _parse_groups(value: Any, shape: tuple[int, ...], batch: int, name: str,
                  model_channel_axis: int | None = None) -> torch.Tensor | None:
    """``model_channel_axis``: where the model reads a 3-D sample's channels (0 or -1,
    :func:`_model_channel_axis`), for :class:`Patches`; None where it does not say."""
    if value is None:
        return None
    d = int(np.prod(shape, dtype=np.int64))
    if isinstance(value, Patches):
        if len(shape) < 2:
            raise InputError(f"{name}: patches need image inputs (..., H, W); got per-sample shape {shape}.")
        axis = value.channel_axis if value.channel_axis is not None else model_channel_axis
        if axis is not None and len(shape) != 3:
            raise InputError(f"{name}: patches(channel_axis={axis}) reads 3-D samples (C, H, W) or "
                             f"(H, W, C); got per-sample shape {shape}.")
        if axis is None and len(shape) == 3:
            from ..models.layout import looks_channels_last

            if looks_channels_last(shape):
                # aud51c: the last two axes of an (H, W, C) image are W x channels: patches(2)
                # grouped columns x channels across all rows, silently
                raise InputError(
                    f"{name}: patches{value.size} on per-sample shape {shape} reads two ways: an "
                    f"(H, W, C) image, patches over its {shape[:2]} pixels (patches(..., "
                    f"channel_axis=-1)), or a (C, H, W) one, patches over the last two axes "
                    f"{shape[1:]} (patches(..., channel_axis=0)); the model does not say which. "
                    "Name the channel axis.")
        last = axis == -1
        h, w = (shape[0], shape[1]) if last else (shape[-2], shape[-1])
        ph, pw = value.size
        if ph > h or pw > w:
            told = value.channel_axis is None and model_channel_axis is not None and len(shape) == 3
            # aud52v: where the model's first Conv2d decided the layout, it may read a tensor the
            # model made (a CoordConv stem's (3, 8, 4) images read as 3 x 8 pixels): say so
            other = (f" The model's first Conv2d took the per-sample shape {shape} as "
                     f"{'(H, W, C)' if last else '(C, H, W)'} by its in_channels; if the images "
                     f"are {'(C, H, W)' if last else '(H, W, C)'}, pass patches(..., channel_axis="
                     f"{0 if last else -1}).") if told else ""
            raise InputError(f"{name}: patch size {value.size} exceeds the image size {(h, w)}"
                             + (" (an (H, W, C) sample)" if last else "") + "." + other)
        rows = torch.arange(h) // ph
        cols = torch.arange(w) // pw
        n_cols = (w + pw - 1) // pw
        grid = rows[:, None] * n_cols + cols[None, :]
        if last:
            grid = grid[:, :, None]
        return grid.expand(*shape).reshape(d).clone().long()
    t, _, _ = _as_tensor(value, name)
    if t.dtype.is_floating_point:
        if not bool((t == t.round()).all()):
            raise InputError(f"{name} must hold integer player ids; got non-integer values.")
        t = t.long()
    t = t.long().cpu()
    if tuple(t.shape) == shape:
        return t.reshape(d)
    if t.ndim == len(shape) + 1 and tuple(t.shape[1:]) == shape and t.shape[0] == batch:
        return t.reshape(batch, d)
    try:
        return torch.broadcast_to(t, shape).reshape(d).clone()
    except RuntimeError:
        raise InputError(
            f"{name} has shape {tuple(t.shape)}, but one input sample has shape {shape}; pass "
            f"an integer mask of shape {shape} (or broadcastable to it, e.g. (1, H, W) for "
            f"(C, H, W) images), or ({batch}, *{shape}) for one mask per sample."
        ) from None


def _check_group_ids(groups: list[torch.Tensor], multi: bool) -> int:
    allg = torch.cat([g.reshape(g.shape[0], -1) if g.ndim == 2 else g[None] for g in groups], dim=1) \
        if len({g.ndim for g in groups}) == 1 else torch.cat([g.flatten() for g in groups])[None]
    lo, hi = int(allg.min()), int(allg.max())
    name = "groups" + (" (all inputs together)" if multi else "")
    if lo < 0:
        raise InputError(f"{name} contains negative id {lo}; player ids must be 0..n-1.")
    n = hi + 1
    for row in allg:
        present = torch.zeros(n, dtype=torch.bool)
        present[row] = True
        if not bool(present.all()):
            missing = (~present).nonzero().flatten()[:10].tolist()
            raise InputError(
                f"{name} ids must be exactly 0..n-1 with every id used; ids {missing} are missing "
                f"(max id {hi}). Renumber, e.g. with numpy.unique(groups, return_inverse=True)."
            )
    return n
