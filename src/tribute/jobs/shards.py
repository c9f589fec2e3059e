"""Shards: the unit of work of a dataset job, and the function every backend runs.

A job over ``n`` rows with shard size ``s`` has ``ceil(n / s)`` shards; shard ``k`` holds rows
``[k*s, min((k+1)*s, n))``. Its result depends only on (settings, seed, k):

* **shard seed** — shard ``k`` is explained with seed
  ``numpy.random.SeedSequence([seed, k]).generate_state(1, numpy.uint32)[0]``, so stochastic
  methods draw independent, reproducible coalitions per shard whatever the worker or order;
* per-row arguments (a per-sample ``target`` array, a per-sample ``baseline`` or ``groups``
  array of the data's full shape, batch-first ``forward_args``/``forward_kwargs`` tensors) are
  sliced to the shard's rows; everything else (scalars, background sets) goes to every shard —
  a baseline with a rows axis of another length is passed as :class:`tribute.Background`, so
  a background set as long as a shard is never mistaken for per-sample baselines;
* torch runs each shard with a fixed number of intra-op threads (``threads``, default 1), and
  restores the previous setting afterwards: float reductions then do not depend on how many
  cores a worker happened to get.

:func:`run_shard` returns the shard's attribution as the bytes of a reproducible ``.npz``;
only the driver writes files, so backends on other machines need no shared file system.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, TributeError
from ._io import deterministic_npz
from .data import Dataset, rows_digest
from .model import ModelSource, fingerprint_model

__all__ = ["JobSpec", "attribution_bytes", "run_shard", "shard_seed"]

#: Explain arguments that may hold one entry per row (sliced per shard).
_PER_ROW_KEYS = ("target", "baseline", "groups", "forward_args", "forward_kwargs")


def shard_seed(seed: int, index: int) -> int:
    """The seed shard ``index`` of a job with seed ``seed`` is explained with."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint32)[0])


@dataclass
class JobSpec:
    """Everything a worker needs to compute any shard (picklable).

    Attributes:
        model: where the model comes from.
        model_sha256: the driver's model fingerprint; workers check the rebuilt model against it.
        data: the rows.
        method: registry name of the estimator.
        seed: the job's seed (shard seeds derive from it).
        shard_size: rows per shard.
        explain_kwargs: the remaining :func:`tribute.explain` arguments.
        threads: torch intra-op threads per shard (None leaves torch's setting alone).
        row_digests: sha256 of each shard's rows when the job started, for data memory-mapped
            from a file (:func:`tribute.jobs.data.shard_digests`); empty otherwise.
    """

    model: ModelSource
    model_sha256: str
    data: Dataset
    method: str
    seed: int
    shard_size: int
    explain_kwargs: dict[str, Any] = field(default_factory=dict)
    threads: int | None = 1
    row_digests: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        return self.data.n_rows

    @property
    def n_shards(self) -> int:
        return math.ceil(self.n_rows / self.shard_size)

    def bounds(self, index: int) -> tuple[int, int]:
        if not 0 <= index < self.n_shards:
            raise InputError(f"shard index {index} is outside 0..{self.n_shards - 1}.")
        lo = index * self.shard_size
        return lo, min(lo + self.shard_size, self.n_rows)

    def check_row_arguments(self) -> None:
        """Refuse arguments a shard would read otherwise than one call on the whole data set.

        :func:`tribute.explain` takes a ``forward_args``/``forward_kwargs`` tensor as per-row
        when its first axis is as long as the batch: a shared one (a bias of 3 values) as long
        as a shard (the last shard of 13 rows in shards of 5 holds 3) would be indexed per row in
        that shard only. A target array not as long as the data is an error for the whole data
        set, but a shard of that length would take it."""
        import torch

        from ..games.features import PerSample

        lengths = {hi - lo for lo, hi in (self.bounds(k) for k in {0, self.n_shards - 1})}
        n = self.n_rows

        def first_axis(v: Any) -> int | None:
            ok = isinstance(v, (np.ndarray, torch.Tensor)) and v.ndim >= 1
            return int(v.shape[0]) if ok else None

        kw = self.explain_kwargs
        extras = [(f"forward_args[{i}]", v) for i, v in enumerate(kw.get("forward_args") or ())]
        extras += [(f"forward_kwargs[{k!r}]", v) for k, v in (kw.get("forward_kwargs") or {}).items()]
        for name, v in extras:
            rows = first_axis(v)
            if rows is not None and rows != n and rows in lengths:
                raise InputError(
                    f"{name} has shape {tuple(v.shape)}: shared by every row (the data has {n} "
                    f"rows), but as long as a shard ({sorted(lengths)} rows with shard_size="
                    f"{self.shard_size}), where it would be read as one entry per row. Choose "
                    "another shard_size, or pass it inside the model.")
        base = kw.get("baseline")
        if isinstance(base, PerSample):  # one row per data row, or every shard reads other rows
            multi = isinstance(base.data, tuple) or (len(self.data.arrays) > 1 and isinstance(base.data, list))
            parts = tuple(base.data) if multi else (base.data,)
            for i, v in enumerate(parts):
                shape = row_shape(v)  # a list of rows too (a single call takes it)
                if not shape or shape[0] != n:
                    name = f"baseline[{i}]" if len(parts) > 1 else "baseline"
                    raise InputError(
                        f"{name}: PerSample has shape {shape}; it holds one row per row of the "
                        f"data ({n} rows). Give {n} rows, or tribute.Background(rows) for a "
                        "background set.")
        rows = first_axis(kw.get("target"))
        if rows is not None and rows != n:
            raise InputError(
                f"target has shape {tuple(kw['target'].shape)}; a target array holds one class per "
                f"row of the data ({n} rows). Give {n} entries, an int, or a list of ints for "
                "the same classes on every row.")

    def shard_kwargs(self, index: int) -> dict[str, Any]:
        lo, hi = self.bounds(index)
        out = dict(self.explain_kwargs)
        for key in _PER_ROW_KEYS:
            if key in out and out[key] is not None:
                out[key] = _slice_rows(key, out[key], lo, hi, self.n_rows,
                                       tuple(tuple(a.shape) for a in self.data.arrays))
        return out


# One rebuilt model per worker process (keyed by fingerprint).
_MODELS: dict[str, Any] = {}


def _model_for(spec: JobSpec) -> Any:
    model = _MODELS.get(spec.model_sha256)
    if model is None:
        model = spec.model.build()
        import torch

        # A model object other than a torch module reached this worker by pickle from the
        # driver: the same model, though its pickle bytes (the fingerprint) often differ after a
        # round trip (a fitted RandomForestClassifier or a Pipeline with a OneHotEncoder: shared
        # sub-objects are pickled once, then twice). Every such job on the processes and ray
        # backends was refused here as a "factory that is not deterministic" (audit aud46j).
        # A factory, or a torch module (fingerprinted by its state_dict), is still checked.
        sent = spec.model.obj is not None and not isinstance(model, torch.nn.Module)
        got = spec.model_sha256 if sent else fingerprint_model(model)
        if got != spec.model_sha256:
            raise InputError(
                f"model: the model rebuilt in worker process {os.getpid()} from {spec.model.describe()} "
                f"has fingerprint {got[:12]}..., the driver's has {spec.model_sha256[:12]}...; the "
                "factory is not deterministic (random initialisation?). Pass trained weights "
                "(--weights) or seed the factory."
            )
        _MODELS.clear()
        _MODELS[spec.model_sha256] = model
    return model


#: Rows per forward pass in dataset jobs when the user gives no ``batch_size`` (see run_shard).
JOB_BATCH_SIZE = 256


def method_settings(method: str, explain_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Every hyperparameter of ``method`` as the job's shards run it: the user's, else the
    method's :attr:`~tribute.methods.base.Method.reproducible` setting, else its default.

    Stored in the manifest, so that a job resumed by a tribute whose defaults changed (e.g.
    gp_shapley's ``nngp``) is refused instead of mixing shards computed two ways.
    """
    from ..methods.base import get_method

    cls = get_method(method)
    out = {**cls.defaults(), **cls.reproducible}
    out.update({k: explain_kwargs[k] for k in out if k in explain_kwargs})
    return out


def run_shard(spec: JobSpec, index: int, model: Any = None) -> bytes:
    """Explain shard ``index`` and return its attribution as reproducible ``.npz`` bytes."""
    import torch

    from ..api import explain
    from ..engine.core import forget_batch_check
    from ..methods.base import get_method

    lo, hi = spec.bounds(index)
    if model is None:
        try:
            model = _model_for(spec)
        except TributeError as exc:  # a factory failing in a worker only (its environment)
            raise _in_shard(exc, index, lo, hi, model_build=True) from exc
    inputs = _as_inputs(model, _shard_rows(spec, index), spec.data)
    before = torch.get_num_threads()
    if spec.threads is not None:
        torch.set_num_threads(spec.threads)
    try:
        kwargs = dict(spec.shard_kwargs(index))
        if kwargs.get("batch_size") is None:
            # Rows per pass are fixed, not self-tuned: a tuned size depends on timing, and float
            # results can differ in the last bits between chunk sizes (another BLAS kernel), so
            # a resumed job would not be byte-identical to an uninterrupted one.
            kwargs["batch_size"] = JOB_BATCH_SIZE
        # likewise the method's own timing-dependent choices (gp_shapley's cost rule): off
        # unless the user set them
        for key, value in get_method(spec.method).reproducible.items():
            kwargs.setdefault(key, value)
        # the batch-dependence check runs on every shard, so that its autograd pass (last-bit
        # differences on some models) depends on the shard, never on what ran before it
        forget_batch_check(model)
        try:
            # torch's global generator too depends on (seed, shard) only: a model that draws
            # from it in eval mode (Monte-Carlo dropout, noise) gives a resumed job the same
            # bytes as an uninterrupted one (review rev31b)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(shard_seed(spec.seed, index))
                attr = explain(model, inputs, method=spec.method,
                               seed=shard_seed(spec.seed, index), progress=False, **kwargs)
        except TributeError as exc:
            raise _in_shard(exc, index, lo, hi) from exc
    finally:
        if spec.threads is not None:
            torch.set_num_threads(before)
    return attribution_bytes(attr)


def _shard_rows(spec: JobSpec, index: int) -> tuple[Any, ...]:
    """Shard ``index``'s rows as the model takes them; rows memory-mapped from a file are read
    once (copied) and checked against the digest taken when the job started."""
    lo, hi = spec.bounds(index)
    rows = spec.data.model_rows(lo, hi)
    if not spec.row_digests:
        return rows
    rows = tuple(np.array(a) for a in rows)  # these very bytes are hashed and explained
    if rows_digest(rows) != spec.row_digests[index]:
        raise InputError(
            f"data: rows {lo}..{hi - 1} of {spec.data.source} (shard {index}) are not the rows "
            "the job started with: the file was changed while the job ran, and manifest.json "
            f"holds the fingerprint of the old rows. Shard files written before are kept and "
            f"shard {index} was not written: restore the file and rerun with resume=True "
            "(--resume), or start the job anew in an empty folder (and do not rewrite the data "
            "file while a job reads it).")
    return rows


def _in_shard(exc: TributeError, index: int, lo: int, hi: int, model_build: bool = False) -> TributeError:
    """``exc`` (same type) with the shard and its rows of the data set in front: explain's
    messages count samples from the shard's first row. ``model_build``: the error came from
    rebuilding the model in a worker process (it names the process instead)."""
    if model_build:
        msg = (f"shard {index} (rows {lo}..{hi - 1} of the data), while worker process {os.getpid()} "
               f"rebuilt the model: {exc}")
    else:
        msg = (f"shard {index} (rows {lo}..{hi - 1} of the data; its sample i is data row {lo} + i): "
               f"{exc}")
    try:
        return type(exc)(msg)
    except Exception:  # an error type with another constructor: keep it as it was
        return exc


def attribution_bytes(attr: Any) -> bytes:
    """``Attribution.save`` output, re-packed reproducibly."""
    with tempfile.TemporaryDirectory(prefix="tribute-shard-") as tmp:
        path = attr.save(Path(tmp) / "shard.npz")
        return deterministic_npz(path.read_bytes())


def _as_inputs(model: Any, arrays: tuple[Any, ...], data: Any = None, cast: bool = False) -> Any:
    """The model's inputs from a shard's rows (:meth:`Dataset.model_rows`): tensors of the
    data's own dtype (``cast``: of the module's, for calling it directly, as the probe does;
    :func:`tribute.explain` composes in the module's dtype itself, and gives credits in the
    data's: aud51t, a float32 module on float64 rows got float32 credits from a job, float64
    from one call, 5e-9 apart), C-ordered native arrays, a table with text columns as it is, or, for a
    model that reads a numeric table's column dtypes, the rows as a DataFrame whose integer /
    bool / float32 columns have the table's dtypes (``data.dtypes``), as :func:`tribute.explain`
    hands them on the table itself (aud50t: a job gave such a model float64 rows, ``3.0`` for
    the integer ``3``: credit 0 where one call and an exact enumeration give 4)."""
    import torch

    if len(arrays) == 1 and hasattr(arrays[0], "iloc"):  # a DataFrame: explain encodes it
        return arrays[0]
    dtypes = getattr(data, "dtypes", None)
    columns = getattr(data, "columns", None)
    if dtypes and columns is not None and len(arrays) == 1 and not isinstance(model, torch.nn.Module):
        import pandas as pd

        from ..models.tabular import reads_column_dtypes, typed_frame

        # (one dtype kind: the table converts to one int / bool array, as prepare_categorical reads it)
        kinds = {"f" if c not in dtypes else "b" if pd.api.types.is_bool_dtype(dtypes[c])
                 else "i" if pd.api.types.is_integer_dtype(dtypes[c]) else "f" for c in columns}
        if reads_column_dtypes(model, one_array_dtype=len(kinds) == 1):
            return typed_frame(np.asarray(arrays[0], dtype=np.float64), list(columns), dtypes)
    if isinstance(model, torch.nn.Module):
        # the dtype tribute.explain computes in: the parameters', else the buffers', else the
        # data's own (aud49j: float32 for a module without floating parameters cast float64 rows
        # of a buffer-only or parameter-free model, 1.3e-7 off one call, a threshold flipped)
        dtype = module_dtype(model)
        parts: list[Any] = []
        for a in arrays:
            t = torch.from_numpy(_native(a))
            parts.append(t.to(dtype) if cast and dtype is not None and t.dtype.is_floating_point
                         else t)
    else:
        parts = [_native(a) for a in arrays]
    return tuple(parts) if len(parts) > 1 else parts[0]


def module_dtype(module: Any) -> Any:
    """The floating dtype :func:`tribute.explain` computes ``module`` in: its parameters',
    else (no floating parameter) its buffers', else None (the inputs' own dtype)."""
    params = list(module.parameters())
    tensors = params if any(p.dtype.is_floating_point for p in params) else params + list(module.buffers())
    return next((t.dtype for t in tensors if t.dtype.is_floating_point), None)


def _native(a: np.ndarray) -> np.ndarray:
    """A C-ordered copy (rows may be a read-only memmap) in this machine's byte order: a .npy
    saved big-endian (``>f4``) is valid data, which torch refuses to wrap."""
    return np.array(a, dtype=a.dtype.newbyteorder("="), order="C")


def row_shape(v: Any) -> tuple[int, ...]:
    """The shape of an array, table or list of rows; ``()`` for a scalar or a ragged list."""
    try:
        return tuple(int(k) for k in np.shape(v))
    except (ValueError, TypeError):
        return ()


def _slice_rows(key: str, value: Any, lo: int, hi: int, n_rows: int,
                data_shapes: tuple[tuple[int, ...], ...]) -> Any:
    """``value`` for the shard holding rows ``lo:hi``; ``data_shapes``: one shape per model input.

    A baseline or groups of the data's full shape (for a multi-input model: a tuple of arrays
    of the inputs' full shapes) is per sample and sliced; a baseline with a rows axis of another
    length (a tuple of them) is a background set."""
    import torch

    from ..games.features import Background, PerSample

    def is_array(v: Any) -> bool:  # pandas tables too: a per-row table is sliced by position
        return isinstance(v, (np.ndarray, torch.Tensor)) or (
            type(v).__module__.startswith("pandas") and hasattr(v, "iloc"))

    def rows(v: Any) -> Any:
        return v.iloc[lo:hi] if hasattr(v, "iloc") else v[lo:hi]

    def per_input(v: Any) -> bool:  # a tuple (or, for several inputs, a list) of one part each
        return isinstance(v, tuple) or (len(data_shapes) > 1 and isinstance(v, list))

    def rows_first(v: Any) -> bool:
        return is_array(v) and v.ndim >= 1 and v.shape[0] == n_rows

    if key == "target":
        return value[lo:hi] if rows_first(value) else value
    if key == "baseline" and isinstance(value, PerSample):  # the user's marker: slice its rows
        data = value.data
        parts = tuple(data) if per_input(data) else (data,)
        sliced = tuple(rows(v) for v in parts)
        return PerSample(sliced if per_input(data) else sliced[0])
    if key in ("baseline", "groups"):
        multi = per_input(value)
        parts = tuple(value) if multi else (value,)
        if len(parts) != len(data_shapes):
            return value
        # a list of rows (one input's part) reads as the array it holds, as in a single call
        parts = tuple(np.asarray(v) if isinstance(v, list) and row_shape(v) else v for v in parts)
        full = [is_array(v) and tuple(v.shape) == shape for v, shape in zip(parts, data_shapes)]
        if all(full):
            sliced = tuple(rows(v) for v in parts)
            if key == "baseline":  # one row per sample, said so: a shard's rows are no background set
                return PerSample(sliced if multi else sliced[0])
            return sliced if multi else sliced[0]
        if not any(full) and not any(isinstance(v, PerSample) for v in parts):
            if key == "baseline" and all(is_array(v) and v.ndim == len(shape)
                                         for v, shape in zip(parts, data_shapes)):
                # A background set: say so, or a set as long as the shard would read as per-sample.
                return Background(value)
            return value
        # Parts of different kinds (a scalar or one row for one input, one row per data row for
        # another): each part is read as a single call reads it, per part.
        out = []
        for v, shape, whole in zip(parts, data_shapes, full):
            if whole:
                out.append(PerSample(rows(v)) if key == "baseline" else rows(v))
            elif key == "baseline" and isinstance(v, PerSample):
                out.append(PerSample(rows(v.data)))
            elif key == "baseline" and is_array(v) and v.ndim == len(shape):
                out.append(Background(v))
            else:
                out.append(v)
        return tuple(out) if isinstance(value, tuple) else list(out)
    if key == "forward_args":
        return type(value)(v[lo:hi] if rows_first(v) else v for v in value)
    return {k: (v[lo:hi] if rows_first(v) else v) for k, v in value.items()}
