"""DataFrames with categorical columns, explained through the user's own pipeline.

A scikit-learn ``Pipeline``/``ColumnTransformer`` (or any model) that takes a DataFrame with
string, object or categorical columns is explained with **one player per original column**:
the one-hot (or ordinal, target...) columns the pipeline makes from a categorical column are
never players themselves, because removal happens before the pipeline, on the user's columns.

Coalitions need numbers, so :class:`CategoricalCodec` maps each non-numeric column to integer
codes (the categories seen in the inputs and baseline, in order of first appearance) and the
model is wrapped to decode every composed row back into a DataFrame with the original values
before calling it. Removal replaces a column's value by the baseline's (a row, one per sample,
or a background set); masks are binary, so a code is never blended with another. Methods that
need fractional masks (gradients) do not apply to such models anyway (they are not torch).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["CategoricalCodec", "dtype_row_groups", "from_polars", "prepare_categorical",
           "reads_column_dtypes",
           "text_columns", "typed_columns", "typed_frame", "typed_positions"]


def _is_frame(x: Any) -> bool:
    return type(x).__module__.startswith("pandas") and type(x).__name__ == "DataFrame"


def _is_series(x: Any) -> bool:
    return type(x).__module__.startswith("pandas") and type(x).__name__ == "Series"


def text_columns(frame: Any) -> list[Any]:
    """Columns of a DataFrame that are neither numbers nor bools (strings, categories, ...): the
    ones a codec encodes and a number cannot stand for. One definition for tribute (explain,
    dataset jobs, the explorer)."""
    import pandas as pd

    return [c for c, dt in frame.dtypes.items()
            if not (pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt))]


def typed_columns(frame: Any) -> dict[Any, Any]:
    """The integer, bool and float32 / float16 columns of a DataFrame and their dtypes (numpy
    and nullable): the columns whose dtype :func:`typed_frame` gives back to the rows tribute
    composes (float32 since aud50t: a model comparing a float32 column with ``0.1`` saw the
    float64 ``0.1000000015`` for the user's float32 ``0.1``, credit 5 for a truth of 0)."""
    return {c: dt for c, dt in frame.dtypes.items() if _narrow(dt)}


def _fits_rows(v: np.ndarray, dt: Any) -> np.ndarray:
    """Per value of ``v`` (float64): whether it is one of bool / integer / float32 dtype ``dt``:
    0/1, a value the float dtype holds exactly, or a whole number within the dtype's range (rev49a: a baseline of 300 in a ``uint8`` column was
    cast to 44, -1 failed with "Cannot losslessly cast")."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(dt):
        return np.asarray((v == 0) | (v == 1))
    if _narrow_float(dt):  # a value the column's float dtype holds exactly (NaN included)
        with np.errstate(over="ignore", invalid="ignore"):
            back = v.astype(dt).astype(np.float64)
        return np.asarray((back == v) | (np.isnan(v) & np.isnan(back)))
    if not pd.api.types.is_integer_dtype(dt):
        return np.zeros(v.shape, dtype=bool)
    info = np.iinfo(getattr(dt, "numpy_dtype", dt))  # numpy and nullable (Int64) integer columns
    return np.asarray((v == np.rint(v)) & (v >= info.min) & (v < float(info.max) + 1.0))


def _fits(v: np.ndarray, dt: Any) -> bool:
    """Whether every value of ``v`` (float64) is one of dtype ``dt`` (:func:`_fits_rows`)."""
    return bool(np.all(_fits_rows(v, dt)))


def _narrow_float(dt: Any) -> bool:
    return isinstance(dt, np.dtype) and dt.kind == "f" and dt.itemsize < 8


def _narrow(dt: Any) -> bool:
    """An integer, bool or float32 / float16 column dtype: one a float64 row does not keep."""
    import pandas as pd

    return bool(pd.api.types.is_bool_dtype(dt) or pd.api.types.is_integer_dtype(dt)
                or _narrow_float(dt))


def _typed(v: np.ndarray, dt: Any) -> Any:
    """Column ``v`` (float64) in its DataFrame dtype ``dt`` where it holds values of that dtype:
    bool (0/1), integer (whole numbers in range) and float32 / float16 (values they hold
    exactly) columns; ``v`` itself otherwise."""
    import pandas as pd

    if not _fits(v, dt):
        return v
    if pd.api.types.is_bool_dtype(dt):
        return pd.Series(v.astype(bool)).astype(dt)
    return pd.Series(v).astype(dt)


def dtype_row_groups(rows: np.ndarray, typed: list[tuple[int, Any]],
                     one_array: bool = False) -> list[np.ndarray] | None:
    """The rows of a batch (``rows x columns``, float64) grouped by which of the ``typed``
    columns (``(position, dtype)``: a DataFrame's integer / bool / float32 columns) hold values of their
    dtype; None when every row agrees (one frame, as before). A column's dtype is one per
    DataFrame, so a frame of rows some of which hold a baseline the column's dtype cannot hold
    (a mean 2.07 of an integer column) and some the user's integer 3 hands both over as
    float64: each group is its own frame, and every row reaches the model typed as it would
    alone, whichever rows share its batch. aud50t: a mean baseline kept such a column float64 in
    every row (rev49a's cure for the batch dependence), so f(x) itself was scored on ``3.0``,
    not the user's ``3``: a model reading the column as text credited it 0 for an exact
    Shapley truth of 17 (enumeration over DataFrame copies scored by the user's estimator).

    ``one_array``: the model reads the frame as one array (its only dtype readers are validating
    ``FunctionTransformer``s, on a frame of one dtype kind), whose dtype is the columns' common
    one when every typed column holds values of its dtype, and float64 otherwise: two groups
    (all fit / not all) give it the arrays the per-pattern groups give, in at most 2 model
    calls instead of up to ``2**m`` (aud51t: 2,043 calls for exact Shapley on 10 integer
    columns with a mean baseline)."""
    if not typed or rows.ndim != 2 or rows.shape[0] < 2:
        return None
    ok = np.stack([_fits_rows(rows[:, j], dt) for j, dt in typed], axis=1)
    if one_array:
        ok = np.asarray(ok.all(axis=1, keepdims=True))
    if bool((ok == ok[:1]).all()):
        return None
    _, inverse = np.unique(np.packbits(ok, axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    return [np.flatnonzero(inverse == g) for g in range(int(inverse.max()) + 1)]


def typed_positions(adapter: Any) -> list[tuple[int, Any]]:
    """``(position, dtype)`` of the integer / bool / float32 columns whose dtype ``adapter`` gives back to
    the rows it hands its model (``column_dtypes`` of a DataFrame of numbers, or the number
    columns of a :class:`CategoricalCodec`'s table); empty for any other adapter."""
    codec = getattr(adapter, "codec", None)
    if isinstance(codec, CategoricalCodec):
        if not getattr(codec, "reads_dtypes", True):
            return []
        return [(j, codec.dtypes[c]) for j, c in enumerate(codec.columns)
                if c not in codec.categories and _narrow(codec.dtypes[c])]
    dtypes = getattr(adapter, "column_dtypes", None)
    names = getattr(adapter, "feature_names", None)
    if not dtypes or names is None:
        return []
    return [(j, dtypes[c]) for j, c in enumerate(names) if c in dtypes]


def typed_frame(rows: np.ndarray, columns: list[Any], dtypes: dict[Any, Any]) -> Any:
    """A DataFrame of composed ``rows`` (float64, ``rows x columns``) whose integer and bool
    columns have the dtypes of the user's DataFrame (``dtypes``, from :func:`typed_columns`), as
    :meth:`CategoricalCodec.decode` gives them for tables with text columns; a column holding
    other values (a fractional baseline) stays float64. A DataFrame of numbers only was handed
    over as float64: its estimator saw ``202.0`` for the integer ``202`` and ``1.0`` for
    ``True``, and a pipeline that reads the column as text (``astype(str)`` before a
    ``OneHotEncoder``) met an unknown category: credit 0 for a brute-force truth of -2
    (aud49a)."""
    import pandas as pd

    cols: dict[Any, Any] = {}
    for j, c in enumerate(columns):
        v = rows[:, j]
        dt = dtypes.get(c)
        if dt is not None:
            typed = _typed(v, dt)
            v = typed if isinstance(typed, np.ndarray) or not isinstance(dt, np.dtype) \
                else typed.to_numpy()
        cols[c] = v
    # (one frame from the columns: 5x faster than a float frame retyped column by column)
    return pd.DataFrame(cols, columns=columns, copy=False)


#: packages whose estimators read a DataFrame of numbers as one float array (validated)
_FLOAT_READERS = ("sklearn.", "xgboost.", "lightgbm.", "catboost.")


def reads_column_dtypes(model: Any, depth: int = 0, one_array_dtype: bool = True) -> bool:
    """Whether ``model``'s outputs may depend on the dtypes of a DataFrame's number columns
    (``202`` vs ``202.0``): True for a class of the user's own (anywhere in a pipeline or a
    meta-estimator) and a ``FunctionTransformer`` with a function (``validate=False`` hands it
    the DataFrame; ``validate=True`` an array that keeps an all-integer frame's int64: rev49a,
    ``astype(str)`` then met ``'202.0'``, credits ``[0, 0]`` for a truth of ``[2, 1]``); False
    for scikit-learn, XGBoost, LightGBM and CatBoost estimators, pipelines and column
    transformers made of them only, which validate the columns into one float array (so the
    dtypes, given back at a mixed-dtype conversion per call, cannot move their outputs). Each
    object is read once (rev49a: a 43-node graph of estimators sharing their parts was walked
    path by path, > 60 s). ``one_array_dtype=False``: the frame's columns convert to float64 as
    one array (integer and float, or integer and bool columns), so ``validate=True`` cannot
    notice them (its pipelines skip the typed frames' cost, 2x)."""
    return _reads_dtypes(model, depth, set(), one_array_dtype)


def _reads_dtypes(model: Any, depth: int, seen: set[int], one_array: bool = True) -> bool:
    if depth > 16:
        return True
    if id(model) in seen:  # read already: had it held a reader, the walk would have stopped
        return False
    seen.add(id(model))
    cls = type(model)
    if not cls.__module__.startswith(_FLOAT_READERS):
        return True
    if cls.__name__ == "FunctionTransformer":
        return getattr(model, "func", None) is not None \
            and (one_array or not getattr(model, "validate", False))
    try:
        params = model.get_params(deep=False)
    except Exception:
        return True
    try:  # a search's refitted best (a function set through its grid: ``{"ft__func": [f]}``)
        best = getattr(model, "best_estimator_", None)
    except Exception:
        best = None
    return any(_holds_dtype_reader(v, depth + 1, seen, one_array)
               for v in (*params.values(), best))


def _holds_dtype_reader(value: Any, depth: int, seen: set[int], one_array: bool = True) -> bool:
    """A parameter (an estimator, or a list of steps / transformers / estimators) holding an
    estimator that :func:`reads_column_dtypes`."""
    if isinstance(value, (list, tuple, dict)):
        if id(value) in seen:  # (a list holding itself)
            return False
        seen.add(id(value))
        items = value.values() if isinstance(value, dict) else value
        return any(_holds_dtype_reader(v, depth, seen, one_array) for v in items)
    if type(value).__module__.split(".")[0] in ("pandas", "numpy"):
        return False  # column lists and masks (a Series has a ``transform`` method)
    if hasattr(value, "fit") or hasattr(value, "transform"):
        return _reads_dtypes(value, depth, seen, one_array)
    return False


def _validates_first(model: Any, depth: int = 0) -> bool:
    """Whether ``model`` is a scikit-learn ``Pipeline`` whose first step (or its first step's,
    nested) is a ``FunctionTransformer`` with a function and ``validate=True``: the only step that
    meets the DataFrame, which it turns into one array (the columns' common dtype), so every
    later step sees that array's dtype and nothing of the frame's columns. (Inside a
    ``ColumnTransformer`` a validating function meets a subset of the columns, whose own fits
    decide its array's dtype: not this case.)"""
    if depth > 8 or not type(model).__module__.startswith("sklearn."):
        return False
    if type(model).__name__ == "FunctionTransformer":
        return depth > 0 and getattr(model, "func", None) is not None \
            and getattr(model, "validate", False) is True
    steps = getattr(model, "steps", None)
    if type(model).__name__ != "Pipeline" or not isinstance(steps, list) or not steps:
        return False
    return _validates_first(steps[0][1], depth + 1)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _key(value: Any) -> tuple[Any, str]:
    """A category of an object column: its value and its text. ``True``, ``1`` and ``1.0`` are
    equal (and hash alike) in Python, so keyed by value alone they were one category, decoded
    as whichever came first: a pipeline that casts the column to ``str`` before its
    ``OneHotEncoder`` saw ``'1'`` for a row holding ``True`` (small46: credit 1.5 for a truth
    of 0.5). ``np.int64(1)`` and ``1`` (same text) stay one category."""
    return value, str(value)


class CategoricalCodec:
    """Integer codes for a DataFrame's non-numeric columns, and back.

    Args:
        frames: DataFrames whose values define the categories (inputs and baselines).
        columns: the column order.
        previous: the codec of an earlier call on the same adapter, whose categories keep their
            codes (first, in its order) where a column holds text in both.
    """

    def __init__(self, frames: list[Any], columns: list[Any],
                 previous: CategoricalCodec | None = None) -> None:
        import pandas as pd

        self.columns = list(columns)
        #: whether the model may read the number columns' dtypes (set by prepare_categorical)
        self.reads_dtypes: bool = True
        self.dtypes = {c: frames[0][c].dtype for c in self.columns}
        self.categorical = text_columns(frames[0])
        self.categories: dict[Any, list[Any]] = {}
        # object columns may mix types whose values compare equal (True, 1, 1.0): their
        # categories are keyed by value and text (_key); typed columns (category, string) by value
        self._keyed = {c for c in self.categorical if pd.api.types.is_object_dtype(self.dtypes[c])}
        for c in self.categorical:
            seen: dict[Any, Any] = {}
            if previous is not None and c in previous.categories:
                for v in previous.categories[c]:
                    seen.setdefault(_key(v) if c in self._keyed else v, v)
            for f in frames:
                try:
                    if c in self._keyed:
                        firsts: dict[Any, Any] = {}
                        for v in f[c].to_numpy(dtype=object):
                            firsts.setdefault(_key(v), v)  # (raises on unhashable cells)
                        keyed = list(firsts.items())
                    else:
                        keyed = [(v, v) for v in pd.unique(f[c])]
                except TypeError as exc:  # unhashable cells (lists, dicts, arrays)
                    bad = next((v for v in f[c] if not _hashable(v)), None)
                    raise InputError(
                        f"column {c!r} holds unhashable values (e.g. a {type(bad).__name__}: "
                        f"{str(bad)[:40]}), which cannot be players' categories; turn them into "
                        "numbers or strings (one column per element, or str(value)) before "
                        "explaining."
                    ) from exc
                for k, v in keyed:
                    if v is None or (isinstance(v, float) and np.isnan(v)):
                        raise InputError(
                            f"column {c!r} has missing values; impute them (e.g. with the most "
                            "frequent category) before explaining."
                        )
                    seen.setdefault(k, v)
            self.categories[c] = list(seen.values())
            dt = self.dtypes[c]
            if isinstance(dt, pd.CategoricalDtype):
                # a baseline's category the inputs' categorical dtype lacks (test rows read
                # apart from the training rows) was decoded to NaN by `.astype(dtype)`: the
                # model saw a missing value instead (audit aud36t); the dtype is extended
                known = set(dt.categories)
                extra = [v for v in seen.values() if v not in known]
                if extra:
                    self.dtypes[c] = pd.CategoricalDtype([*dt.categories, *extra],
                                                         ordered=dt.ordered)
        self._index = {c: {(_key(v) if c in self._keyed else v): i for i, v in enumerate(cats)}
                       for c, cats in self.categories.items()}

    def encode(self, frame: Any, name: str) -> Any:
        """A float DataFrame (same index and columns) with categories replaced by codes."""
        import pandas as pd

        if _is_series(frame):
            return self.encode(frame.to_frame().T, name).iloc[0]
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise InputError(f"{name} lacks column(s) {missing[:8]} of the inputs.")
        out = {}
        for c in self.columns:
            col = frame[c]
            if c in self._index:
                idx = self._index[c]
                if c in self._keyed:
                    values = list(col.to_numpy(dtype=object))
                    codes = [idx.get(_key(v)) if _hashable(v) else None for v in values]
                    unknown = list(dict.fromkeys(repr(v) for v, k in zip(values, codes) if k is None))
                    if unknown:
                        raise InputError(f"{name}: column {c!r} has unknown categories "
                                         f"[{', '.join(unknown[:5])}].")
                    out[c] = pd.Series(codes, index=col.index, dtype=np.float64)
                    continue
                unknown = [v for v in pd.unique(col) if v not in idx]
                if unknown:
                    raise InputError(f"{name}: column {c!r} has unknown categories {unknown[:5]}.")
                out[c] = col.map(idx).astype(np.float64)
            else:
                out[c] = col.astype(np.float64)
        return pd.DataFrame(out, index=frame.index, columns=self.columns)

    def decode(self, data: Any) -> Any:
        """Composed rows (array or float DataFrame) -> a DataFrame with the original values."""
        import pandas as pd

        arr = data.to_numpy(dtype=np.float64) if _is_frame(data) else np.asarray(data, np.float64)
        cols: dict[Any, Any] = {}
        for j, c in enumerate(self.columns):
            v = arr[:, j]
            dt = self.dtypes[c]
            if c in self.categories:
                cats = np.asarray(self.categories[c], dtype=object)
                blended = v[v != np.rint(v)]
                if blended.size:
                    # a fractional mask blends two codes; rounding it read another category
                    # (paris + 0.5 (nice - paris) = lyon: method='sobol' scored it, silently)
                    raise InputError(
                        f"column {c!r} is categorical, but got a fraction of a category (code "
                        f"{float(blended[0]):.3g}, a blend of two categories' codes): "
                        "fractional masks (method='sobol', a gradient path) cannot remove a "
                        "fraction of a category. Use a binary-mask method (feature_ablation, "
                        "kernel_shap, permutation_shapley, lime, ...).")
                vals = cats[np.clip(np.rint(v).astype(np.int64), 0, len(cats) - 1)]
                # the column's own dtype back (categorical, datetime, string...), not object
                cols[c] = pd.Series(vals, dtype=object).astype(dt)
            else:
                cols[c] = _typed(v, dt)
        return pd.DataFrame(cols, columns=self.columns)


#: integers beyond this magnitude have no exact float64 (2**53 + 1 reads as 2**53)
_FLOAT64_EXACT = 2 ** 53


def _baseline_frames(baseline: Any, background_cls: type | tuple[type, ...]) -> list[Any]:
    """The DataFrames (a Series as a one-row frame) a baseline holds; [] for numbers / arrays."""
    base: Any = getattr(baseline, "data", None) if isinstance(baseline, background_cls) else baseline
    if _is_series(base):
        return [base.to_frame().T]
    return [base] if _is_frame(base) else []


def _refuse_inexact_integers(inputs: Any, baseline: Any,
                             background_cls: type | tuple[type, ...]) -> None:
    """Refuse integer columns holding values float64 cannot hold (``|v| > 2**53``) for a model
    that reads the columns' dtypes: tribute composes a table's rows in float64, so such a model
    met ``2**53`` for the user's ``2**53 + 1``, silently (rev50t / aud51t: ``a % 2`` credited 0
    for an exact-enumeration truth of 4; an all-integer table too)."""
    import pandas as pd

    sources = [("inputs", inputs)] + [("baseline", f) for f in _baseline_frames(baseline, background_cls)]
    for name, frame in sources:
        for c, dt in frame.dtypes.items():
            if not pd.api.types.is_integer_dtype(dt) or pd.api.types.is_bool_dtype(dt):
                continue
            col = frame[c].dropna()
            if col.empty:
                continue
            lo, hi = col.min(), col.max()
            big = next((v for v in (hi, lo) if abs(int(v)) > _FLOAT64_EXACT), None)
            if big is None:
                continue
            raise InputError(
                f"{name} column {c!r} holds {int(big)}, beyond 2**53 = {_FLOAT64_EXACT}: tribute "
                "composes a table's rows in float64, which has no exact value for it "
                f"({int(big)} would reach the model as {int(float(big))}), and the model reads "
                "its columns' dtypes (a class or function of your own, or a FunctionTransformer), "
                f"so it would see another integer. Give column {c!r} values float64 holds (e.g. "
                "subtract an offset, or keep the low bits your model reads), or cast it to "
                "float64 yourself if the model reads it as a number anyway.")


def _kind(dt: Any) -> str:
    """``"b"`` bool, ``"i"`` integer (numpy or nullable), ``"f"`` float, ``""`` anything else."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(dt):
        return "b"
    if pd.api.types.is_integer_dtype(dt):
        return "i"
    return "f" if pd.api.types.is_float_dtype(dt) else ""


def _refuse_retyped_baseline(inputs: Any, baseline: Any, background_cls: type | tuple[type, ...],
                             typed: dict[Any, Any]) -> None:
    """Refuse a baseline DataFrame whose column of another dtype kind than the inputs' (a float
    ``2.0`` for an integer column, an integer ``1`` for a bool one) holds values the inputs'
    dtype holds too, for a model that reads the columns' dtypes (``typed``: the inputs' typed
    columns it gets back). A composed row holds numbers only, so the baseline's ``2.0`` and an
    input's ``2`` are one value there: typed by the inputs' dtype, the model met the integer
    ``2`` where the user's DataFrame says ``2.0`` (aud51t: a mean baseline whose integer column's
    mean is exactly 2.0, credit -2 for a DataFrame-copy truth of 13; a float 100.0 for a uint8
    column, 28 off), while a fractional 2.07 stayed a float. Both readings are possible, so
    neither is picked: the message names both and how to ask for each.

    A Series is read as the one-row frame it stands for (``to_frame().T``), as the DataFrame-copy
    truth reads it: ``baseline=X.mean()`` holding exactly 2.0 for an integer column met the
    integer 2 (credit -2 where the DataFrame copies give 13) while ``X.mean().to_frame().T`` was
    refused (aud52v). pandas gives a Series one dtype, so a data row ``X.iloc[0]`` of a table of
    integer and float columns is float64 too and reads both ways (credit 0 as the row's
    integer, 13 as its float copy): refused alike, naming ``X.iloc[[0]]``, which keeps the
    columns' dtypes."""
    base = getattr(baseline, "data", None) if isinstance(baseline, background_cls) else baseline
    series = _is_series(base)
    for frame in _baseline_frames(baseline, background_cls):
        for c, dt in typed.items():
            if c not in frame.columns:
                continue
            bdt = frame[c].dtype
            kind, bkind = _kind(dt), _kind(bdt)
            if not bkind or bkind == kind:
                continue
            v = frame[c].to_numpy(dtype=np.float64, na_value=np.nan)
            fit = v[_fits_rows(v, dt) & ~np.isnan(v)]
            if not fit.size:
                continue  # (no value the inputs' dtype holds: the baseline's dtype is kept)
            val = fit[0]
            shown = frame[c][v == val].iloc[0]
            shown = shown.item() if hasattr(shown, "item") else shown
            as_input = bool(val) if kind == "b" else int(val) if kind == "i" else float(val)
            raise InputError(
                f"baseline column {c!r} is {bdt} and holds {shown!r}, where "
                f"the inputs' column is {dt}: the model reads its columns' dtypes (a class or "
                "function of your own, or a FunctionTransformer), and a composed row cannot tell "
                "the baseline's value from an input's, so two readings differ: "
                f"{as_input!r} as {dt} (the inputs' dtype) or "
                f"{shown!r} as {bdt} (the baseline's). For the first, give "
                + (f"the baseline as a one-row DataFrame of the inputs' dtypes (a data row as "
                   f"X.iloc[[i]], not X.iloc[i]; a statistic as baseline.to_frame().T.astype("
                   f"{{{c!r}: '{dt}'}})): a Series holds one dtype for all its values"
                   if series else
                   f"the baseline the inputs' dtypes (baseline.astype({{{c!r}: '{dt}'}}), or "
                   f"tribute.Background(rows.astype(inputs.dtypes)))")
                + f"; for the second, give the "
                f"inputs' column the baseline's dtype (inputs.astype({{{c!r}: '{bdt}'}})).")


def prepare_categorical(adapter: Any, inputs: Any, baseline: Any,
                        background_cls: type | tuple[type, ...]) -> tuple[Any, Any, Any]:
    """Encode a DataFrame with non-numeric columns and make ``adapter`` decode its rows.

    Returns ``(adapter, inputs, baseline)`` unchanged when ``inputs`` is not such a DataFrame;
    for a DataFrame of numbers, the adapter records its integer and bool columns' dtypes
    (``column_dtypes``, :func:`typed_columns`), which it gives back to the composed rows.
    """
    if getattr(adapter, "one_array_dtypes", False):
        adapter.one_array_dtypes = False  # (a reused adapter: set again below where it holds)
    if _is_frame(inputs) and not text_columns(inputs):
        import pandas as pd

        # (one dtype kind: the frame converts to one int / bool array, which a validating
        # FunctionTransformer hands its function; mixed kinds convert to float64)
        kinds = {"b" if pd.api.types.is_bool_dtype(dt) else "i"
                 if pd.api.types.is_integer_dtype(dt) else "f" for dt in inputs.dtypes}
        if getattr(adapter, "framework", None) == "numpy" and hasattr(adapter, "fn") \
                and reads_column_dtypes(getattr(adapter, "estimator", adapter.fn),
                                        one_array_dtype=len(kinds) == 1):
            # (by name as the adapter's DataFrame has them: feature_names_in_, as text)
            adapter.column_dtypes = {str(c): dt for c, dt in typed_columns(inputs).items()} or None
            # a pipeline whose first step validates the whole frame into one array: row groups
            # by "every typed column fits or not" (dtype_row_groups' one_array)
            adapter.one_array_dtypes = len(kinds) == 1 and _validates_first(
                getattr(adapter, "estimator", adapter.fn))
            _refuse_inexact_integers(inputs, baseline, background_cls)
            _refuse_retyped_baseline(inputs, baseline, background_cls, typed_columns(inputs))
        elif getattr(adapter, "column_dtypes", None):
            # a reused adapter whose earlier frame's dtypes did matter (an all-integer frame a
            # validating FunctionTransformer reads as int64) typed this frame's columns by them:
            # credit -0.26 for a float column's neighbour whose truth is 0 (rev50t)
            adapter.column_dtypes = None
        return adapter, inputs, baseline
    if not _is_frame(inputs):
        if getattr(adapter, "column_dtypes", None) and getattr(adapter, "codec", None) is None:
            # an array has no column dtypes: a reused adapter typed it by an earlier DataFrame's
            # (an array's 3.0 handed over as the integer 3; a fresh adapter hands 3.0: aud50t)
            adapter.column_dtypes = None
        return adapter, inputs, baseline
    if getattr(adapter, "framework", None) != "numpy" or not hasattr(adapter, "fn"):
        raise InputError(
            "inputs has non-numeric columns; only models that take DataFrames (scikit-learn "
            "pipelines and estimators, or functions on DataFrames) can be explained on them."
        )
    is_bg = isinstance(baseline, background_cls)
    base = baseline.data if is_bg else baseline
    # an adapter wrapped already (reused, or a game rebuilt on it) gets a codec of this call's
    # frames, which keeps the earlier codec's codes: the earlier one typed a later frame's
    # columns by the first frame's dtypes (a float column as the first call's integers: credit
    # 4 for a truth of 0) and refused its new categories (aud50t)
    previous = getattr(adapter, "codec", None)
    frames = [inputs]
    if _is_frame(base):
        frames.append(base)
    elif _is_series(base):
        frames.append(base.to_frame().T)
    elif isinstance(base, (int, float, np.number)) and not getattr(type(base), "removal_unread", False):
        cats = text_columns(inputs)
        raise InputError(
            f"baseline={float(base)!r} cannot stand for a category of column(s) {cats[:8]}: removed "
            "features need values of their own columns (it was read as the category met first in "
            "the inputs, so credits depended on the rows' order). Give the baseline as a "
            "DataFrame row or Series with the same columns (one for every sample, or one per "
            "sample), or tribute.Background(df) for the expectation over a background set."
        )
    elif not isinstance(base, (int, float)):
        raise InputError(
            "inputs has categorical columns; give the baseline as a DataFrame or Series with the "
            "same columns (a row, one per sample, or tribute.Background(df)), not an array."
        )
    missing = [c for c in inputs.columns if len(frames) > 1 and c not in frames[1].columns]
    if missing:  # the codec reads every frame's text columns (a bare KeyError before)
        raise InputError(f"baseline lacks column(s) {missing[:8]} of the inputs; give it the "
                         "inputs' columns (a row, one per sample, or tribute.Background(df)).")
    if len(frames) > 1:  # numbers (category codes?) where the inputs hold text: no category of theirs
        as_numbers = [c for c in text_columns(inputs) if c not in text_columns(frames[1])
                      and bool(frames[1][c].notna().any())]
        if as_numbers:
            raise InputError(
                f"baseline column(s) {as_numbers[:8]} hold numbers where the inputs hold text/categories "
                "(category codes?); a removed feature needs a value of its own column. Give the "
                "baseline's text columns as the inputs' categories (e.g. 'red'): a row, one per "
                "sample, or tribute.Background(df).")
    codec = CategoricalCodec(frames, list(inputs.columns),
                             previous if isinstance(previous, CategoricalCodec) else None)
    # a model that cannot notice its number columns' dtypes (scikit-learn pipelines validating
    # them into one float array) gets each batch as one frame: the row groups of
    # dtype_row_groups cost it model calls only (rev50t: 306 calls instead of 6, outputs equal)
    codec.reads_dtypes = reads_column_dtypes(getattr(adapter, "estimator", adapter.fn),
                                             one_array_dtype=False)
    if codec.reads_dtypes:  # (the codec encodes number columns in float64 too)
        _refuse_inexact_integers(inputs, baseline, background_cls)
        _refuse_retyped_baseline(inputs, baseline, background_cls, {
            c: dt for c, dt in typed_columns(inputs).items() if c not in codec.categories})
    enc_inputs = codec.encode(inputs, "inputs")
    if _is_frame(base) or _is_series(base):
        enc = codec.encode(base, "baseline")
        baseline = dataclasses.replace(baseline, data=enc) if is_bg else enc
    adapter.codec = codec
    if previous is not None:  # adapter.fn decodes with adapter.codec already
        return adapter, enc_inputs, baseline
    fn = adapter.fn

    def decoded(x: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(adapter.codec.decode(x), *args, **kwargs)

    adapter.fn = decoded
    adapter.feature_names = None  # the decoder builds the DataFrame itself
    return adapter, enc_inputs, baseline


def _is_polars(x: Any) -> bool:
    return type(x).__module__.startswith("polars") and type(x).__name__ in ("DataFrame", "Series")


def from_polars(x: Any) -> Any:
    """A polars ``DataFrame``/``Series`` as the pandas equivalent (column by column, so each
    column keeps its dtype; polars categoricals/strings become object columns); anything else
    unchanged. polars itself is never imported: tables from it are recognised by type."""
    if not _is_polars(x):
        return x
    import pandas as pd

    if type(x).__name__ == "Series":
        return pd.Series(x.to_numpy(), name=x.name)
    return pd.DataFrame({str(c): x[c].to_numpy() for c in x.columns})

