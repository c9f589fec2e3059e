"""Column-wise preprocessing in front of a tree model: which encoded column comes from where.

A scikit-learn ``Pipeline`` such as ``ColumnTransformer(OneHotEncoder on "city", scaler on
"income") -> XGBClassifier`` feeds the trees *encoded* columns. When every preprocessing step
works **column by column** (each encoded column is a function of one original column), the
game over the original columns is exactly the trees' game over the encoded columns with the
encoded columns *grouped* by their original column — so exact tree attribution applies, with
one player per original column (Lundberg et al. 2020's TreeSHAP with feature groups).

:func:`columnwise_owner` proves that structure from the fitted objects, never by probing:
only transformers known to act per column are accepted (encoders, scalers, imputers without
indicator columns, discretisers, quantile/power transforms, splines, ``"passthrough"``/
``"drop"``, nested pipelines and column transformers of those), and each output column is
assigned to its input column through the transformer's ``get_feature_names_out`` called on
placeholder input names (so that input names prefixing one another, ``"num"`` and
``"num_b"``, stay apart). Anything else (PCA,
polynomial features, ``Normalizer`` — which mixes columns — or an unknown transformer) is
refused with the reason, so a grouped answer is never silently wrong.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError

__all__ = ["columnwise_owner", "split_pipeline"]

#: Transformers whose every output column depends on exactly one input column.
_COLUMNWISE = {
    "OneHotEncoder", "OrdinalEncoder", "TargetEncoder", "StandardScaler", "MinMaxScaler",
    "MaxAbsScaler", "RobustScaler", "KBinsDiscretizer", "QuantileTransformer",
    "PowerTransformer", "Binarizer", "SimpleImputer", "SplineTransformer",
}


def split_pipeline(model: Any) -> tuple[Any, Any] | None:
    """``(preprocessing, final estimator)`` of a ``Pipeline`` with preprocessing steps, else
    None."""
    steps = getattr(model, "steps", None)
    if not isinstance(steps, list) or len(steps) < 2:
        return None
    return model[:-1], steps[-1][1]


def _refuse(what: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"tree_shap: the pipeline's preprocessing {what}, so its encoded columns cannot be "
        "traced back to single original columns. Explain the final tree model on transformed "
        "inputs (grouping its columns with groups=...), or use method='shapley' on the whole "
        "pipeline."
    )


def _names_owner(trans: Any, n_in: int) -> np.ndarray:
    """Owner (input index) of each output column of a fitted column-wise transformer."""
    name = type(trans).__name__
    if name == "FunctionTransformer" and getattr(trans, "func", None) is None:
        return np.arange(n_in)  # the identity ("passthrough" remainders are made of these)
    if name not in _COLUMNWISE:
        raise _refuse(f"step {name} is not known to act column by column")
    if name == "SimpleImputer" and getattr(trans, "add_indicator", False):
        raise _refuse("adds missing-value indicator columns (SimpleImputer(add_indicator=True))")
    fitted = getattr(trans, "feature_names_in_", None)
    inputs = [str(c) for c in fitted] if fitted is not None else [f"c{i}" for i in range(n_in)]
    if len(inputs) != n_in:
        raise _refuse(f"step {name} was fitted on {len(inputs)} columns, not {n_in}")
    if name == "OneHotEncoder" and all(
            c is None for c in (getattr(trans, "infrequent_categories_", None) or [None])):
        # outputs are the inputs' categories in order, less a dropped one per column
        drop = getattr(trans, "drop_idx_", None)
        counts = [len(c) - (0 if drop is None or drop[i] is None else 1)
                  for i, c in enumerate(trans.categories_)]
        return np.repeat(np.arange(n_in), counts).astype(np.int64)
    # the outputs are named from placeholder input names that no other name starts with: the
    # real names can prefix one another ("num" and "num_b": "num_b_0.0" was owned by both,
    # and a column-wise pipeline was refused)
    marks = [f"tributecol{i}x" for i in range(n_in)]
    try:
        if fitted is not None:
            named = copy.copy(trans)
            named.feature_names_in_ = np.asarray(marks, dtype=object)
            out = [str(o) for o in named.get_feature_names_out()]
        else:
            out = [str(o) for o in trans.get_feature_names_out(marks)]
    except Exception as e:
        raise _refuse(f"step {name} does not name its output columns ({e})") from None
    owner = np.full(len(out), -1, dtype=np.int64)
    for j, o in enumerate(out):
        hits = [i for i, c in enumerate(marks) if o == c or o.startswith(c + "_")]
        if len(hits) != 1:
            shown = o
            for i, c in enumerate(marks):
                shown = shown.replace(c, inputs[i])
            raise _refuse(f"step {name} makes a column {shown!r} not owned by exactly one input "
                          "column")
        owner[j] = hits[0]
    return owner


def columnwise_owner(prep: Any, n_in: int, columns: list[str] | None) -> np.ndarray:
    """``owner[j]``: the original column (0..n_in-1) that encoded column ``j`` comes from.

    Args:
        prep: fitted preprocessing (a Pipeline, a ColumnTransformer or a transformer).
        n_in: number of original columns.
        columns: the original column names (DataFrame inputs), for ColumnTransformers that
            select columns by name.

    Raises:
        UnsupportedModelError: a step is not provably column-wise.
    """
    kind = type(prep).__name__
    if kind == "Pipeline":
        owner = np.arange(n_in)
        width = n_in
        for _, step in prep.steps:
            if step is None or step == "passthrough":
                continue
            inner = columnwise_owner(step, width, columns if width == n_in else None)
            owner = owner[inner]
            width = inner.size
            columns = None
        return owner
    if kind == "ColumnTransformer":
        return _column_transformer_owner(prep, n_in, columns)
    return _names_owner(prep, n_in)


def _selected(cols: Any, n_in: int, columns: list[str] | None) -> np.ndarray:
    if callable(cols):
        raise _refuse("selects columns with a callable")
    if isinstance(cols, slice):
        return np.arange(n_in)[cols]
    arr = np.atleast_1d(np.asarray(cols))
    if arr.dtype == bool:
        return np.flatnonzero(arr)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64) % n_in
    if columns is None:
        raise _refuse("selects columns by name but the inputs have no column names")
    pos = {c: i for i, c in enumerate(columns)}
    missing = [c for c in arr.tolist() if c not in pos]
    if missing:
        raise _refuse(f"selects columns {missing[:5]} the inputs do not have")
    return np.array([pos[c] for c in arr.tolist()], dtype=np.int64)


def _column_transformer_owner(ct: Any, n_in: int, columns: list[str] | None) -> np.ndarray:
    slices = getattr(ct, "output_indices_", None)
    if slices is None:
        raise _refuse("ColumnTransformer is not fitted")
    total = max((s.stop for s in slices.values()), default=0)
    owner = np.full(total, -1, dtype=np.int64)
    for name, trans, cols in ct.transformers_:
        out = slices.get(name, slice(0, 0))
        if out.stop <= out.start or trans == "drop":
            continue
        sel = _selected(cols, n_in, columns)
        if trans == "passthrough":
            inner = np.arange(sel.size)
        else:
            sub = [columns[i] for i in sel] if columns is not None else None
            inner = columnwise_owner(trans, sel.size, sub)
        if inner.size != out.stop - out.start:
            raise _refuse(f"transformer {name!r} makes {out.stop - out.start} columns but "
                          f"{inner.size} were traced")
        owner[out] = sel[inner]
    if np.any(owner < 0):
        raise _refuse("ColumnTransformer leaves output columns unaccounted for")
    return owner
