"""Reading a data set for a job, and fingerprinting arrays.

Data sets are read without pickle: ``.npy`` / ``.npz`` with ``allow_pickle=False``; ``.csv``
and ``.parquet`` through pandas (and pyarrow), imported only when such a file is given.
``.npy`` files are memory-mapped, so a data set larger than memory is read shard by shard;
worker processes on the same machine re-open the file instead of receiving a copy
(:meth:`Dataset.shared`), while Ray tasks, which may run on other machines, get the rows
through Ray's object store.
A data set is one or several arrays with the same number of rows (several arrays are the
inputs of a multi-input model, in the order the data key names them).

Which arrays of an ``.npz`` are read is decided in one place, :func:`npz_keys`, for dataset
jobs and single calls alike: a file with one array gives it; a file with several arrays needs
a key naming one (``"X_test"``) or, for a multi-input model, several in input order
(``"ids,mask"`` or a sequence) — tribute never guesses among several arrays.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, user_stacklevel
from ..models.tabular import text_columns, typed_columns

__all__ = ["Dataset", "as_dataset", "check_columns", "check_finite", "fingerprint_arrays", "load_array", "load_dataset",
           "not_a_numpy_file", "npz_keys", "read_table", "rows_digest", "shard_digests"]

_SUFFIXES = (".npy", ".npz", ".csv", ".parquet")


@dataclass(frozen=True)
class Dataset:
    """The rows a job explains.

    Attributes:
        arrays: one array per model input, each ``rows x *sample_shape``.
        columns: column names of a table (csv/parquet), used as feature names; else None.
        source: where the rows came from (a path, or ``"<array>"``).
    """

    arrays: tuple[np.ndarray, ...]
    columns: tuple[str, ...] | None = None
    source: str = "<array>"
    mapped: str | None = None  # path of the memory-mapped .npy file the rows come from
    frame: Any = None  # a table with text/categorical columns, as the model takes it (_table_dataset)
    index: Any = None  # the rows' labels (a pandas Index) for the job's results, or None
    #: a numeric table's integer / bool / float32 columns (name -> dtype), given back to the rows
    #: of a model that reads them (shards._as_inputs, as tribute.explain does); None otherwise
    dtypes: Any = None

    def head(self, n: int) -> Dataset:
        """The first ``n`` rows (still memory-mapped when the data is)."""
        return Dataset(arrays=self.rows(0, n), columns=self.columns, source=f"{self.source}[:{n}]",
                       mapped=self.mapped, frame=None if self.frame is None else self.frame.iloc[:n],
                       index=None if self.index is None else self.index[:n], dtypes=self.dtypes)

    def shared(self) -> Dataset:
        """A copy that pickles as (path, rows) when the rows are memory-mapped from a file on this
        machine (for worker processes), instead of as the full arrays."""
        return _MappedDataset(*self._fields()) if self.mapped is not None else self

    def _fields(self) -> tuple[Any, ...]:
        return (self.arrays, self.columns, self.source, self.mapped)

    @property
    def n_rows(self) -> int:
        return int(self.arrays[0].shape[0])

    def rows(self, lo: int, hi: int) -> tuple[np.ndarray, ...]:
        return tuple(a[lo:hi] for a in self.arrays)

    def model_rows(self, lo: int, hi: int) -> tuple[Any, ...]:
        """Rows ``lo:hi`` as the model takes them: :meth:`rows`, or the table's rows (a
        DataFrame with its text/categorical columns) when the data is such a table."""
        return self.rows(lo, hi) if self.frame is None else (self.frame.iloc[lo:hi],)

    def fingerprint(self) -> dict[str, Any]:
        categories = {} if self.frame is None else {"categories": _frame_categories(self.frame)}
        # the typed columns' dtypes reach a model that reads them (shards._as_inputs), so they are
        # part of the data: without them a job started on a table whose column ``a`` is float64
        # resumed on the same values as int64, and its shards mixed the two readings (rev50z:
        # credits -2, -3, -3, -4 for rows 0-3, -12, -13, -14, -12 for rows 4-7; either table
        # alone gives one of the two for every row; a table with text columns, whose frame reaches
        # the model as it is, the same). Absent when no column is typed (as before)
        dtypes = self.dtypes if self.dtypes or self.frame is None else typed_columns(self.frame)
        typed = {} if not dtypes else {"column_dtypes": {str(c): str(dt) for c, dt in dtypes.items()}}
        return {
            "sha256": fingerprint_arrays(self.arrays),
            **categories,
            **typed,
            "rows": self.n_rows,
            "shapes": [list(a.shape) for a in self.arrays],
            "dtypes": [str(a.dtype) for a in self.arrays],
        }


class _MappedDataset(Dataset):
    """Pickles by path: the receiving process memory-maps the same file again."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen, (self.mapped, self.n_rows, self.columns, self.source))


def _reopen(path: str, n_rows: int, columns: tuple[str, ...] | None, source: str) -> Dataset:
    arr = np.load(path, mmap_mode="r", allow_pickle=False)[:n_rows]
    return Dataset(arrays=(arr,), columns=columns, source=source, mapped=path)


def fingerprint_arrays(arrays: Sequence[np.ndarray], block_bytes: int = 64 * 1024**2) -> str:
    """sha256 over each array's dtype, shape and C-ordered bytes (read in blocks of rows, so a
    memory-mapped array is never loaded whole)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype.str}|{a.shape}|".encode())
        row_bytes = max(int(a.dtype.itemsize * np.prod(a.shape[1:], dtype=np.int64)), 1)
        step = max(block_bytes // row_bytes, 1)
        for lo in range(0, a.shape[0], step):
            h.update(np.ascontiguousarray(a[lo : lo + step]).tobytes())
    return h.hexdigest()


def rows_digest(arrays: Sequence[np.ndarray]) -> str:
    """sha256 over each array's dtype, shape and C-ordered bytes (a shard's rows)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype.str}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def shard_digests(ds: Dataset, shard_size: int) -> tuple[str, ...]:
    """:func:`rows_digest` of each shard's rows of a memory-mapped data set (a ``.npy`` file),
    as the job reads them when it starts; empty for data held in memory.

    A memory-mapped file is read again by every shard (and reopened by path in each worker
    process), so a file rewritten while the job runs (``np.save`` over it) reached the later
    shards, under the manifest's fingerprint of the old rows: a finished job mixed rows of two
    files without a word (0.62 off for the rows of the new file, audit aud46j). Each shard
    checks its rows against these digests before explaining them (:func:`tribute.jobs.shards.
    run_shard`)."""
    if ds.mapped is None:
        return ()
    n = ds.n_rows
    return tuple(rows_digest(ds.rows(lo, min(lo + shard_size, n))) for lo in range(0, n, shard_size))


def check_finite(ds: Dataset, block_bytes: int = 64 * 1024**2) -> None:
    """Refuse a data set holding NaN or Inf, naming the rows (of the whole data set).

    Checked before a job writes anything: a single call refuses such inputs too, but in a job
    it would do so only when the shard holding them runs — after the earlier shards were
    written, and naming the row's position within its shard. Reads a memory-mapped array in
    blocks of rows."""
    for i, a in enumerate(ds.arrays):
        if a.dtype.kind != "f":
            continue
        row_bytes = max(int(a.dtype.itemsize * np.prod(a.shape[1:], dtype=np.int64)), 1)
        step = max(block_bytes // row_bytes, 1)
        bad: list[int] = []
        kinds: set[str] = set()
        for lo in range(0, a.shape[0], step):
            block = np.asarray(a[lo : lo + step]).reshape(min(step, a.shape[0] - lo), -1)
            nan, inf = np.isnan(block).any(axis=1), np.isinf(block).any(axis=1)
            kinds |= {"NaN"} if nan.any() else set()
            kinds |= {"Inf"} if inf.any() else set()
            bad.extend((lo + np.flatnonzero(nan | inf)).tolist()[: 10 - len(bad)])
            if len(bad) >= 10:
                break
        if bad:
            which = f"array {i} of " if len(ds.arrays) > 1 else ""
            raise InputError(
                f"data: {which}{ds.source} holds {' and '.join(sorted(kinds))} values in row(s) "
                f"{bad}{'...' if len(bad) >= 10 else ''}; impute or drop those rows before "
                "explaining (a removed feature is composed as x * m + b * (1 - m), which a missing "
                "value turns into NaN in every coalition). Nothing was written.")


def as_dataset(data: Any, name: str = "data") -> Dataset:
    """Wrap what the Python API was given: an array, a tensor, a tuple of them, or a path."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, Path)):
        return load_dataset(data)
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):  # a pandas DataFrame
        frame_cols = tuple(str(c) for c in data.columns)
        if text_columns(data):
            return _table_dataset(data, name, "<DataFrame>", frame_cols)
        try:
            arr = data.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            bad = [str(c) for c in data.columns if data[c].dtype.kind not in "biuf"]
            raise InputError(
                f"{name}: the DataFrame has column(s) {bad[:10]} that are not numbers; encode them "
                "as numbers or drop them before explaining."
            ) from exc
        ds = _check_arrays((arr,), [name], name, columns=frame_cols, source="<DataFrame>")
        return dataclasses.replace(ds, dtypes={str(c): dt for c, dt in typed_columns(data).items()} or None)
    if isinstance(data, (list, tuple)) and data and all(
            isinstance(t, str) or (isinstance(t, (tuple, list)) and len(t) == 2
                                   and all(isinstance(u, str) for u in t)) for t in data):
        raise InputError(_TEXT_JOB)
    if isinstance(data, np.ndarray) and data.dtype.kind in "USO" and data.size and (
            isinstance(data.flat[0], str)):
        raise InputError(_TEXT_JOB)
    parts = data if isinstance(data, (tuple, list)) else (data,)
    if not parts:
        raise InputError(f"{name}: got an empty {type(data).__name__}; pass an array with the rows first.")
    arrays = tuple(_to_numpy(p, name) for p in parts)
    return _check_arrays(arrays, [f"{name}[{i}]" for i in range(len(arrays))], name, columns=None,
                         source="<array>")


#: A data key: one array name, comma-separated names, or a sequence of names (see :func:`npz_keys`).
DataKey = str | Sequence[str] | None


def npz_keys(names: Sequence[str], key: DataKey, where: str, arg: str = "data", *,
             multi: bool = True) -> list[str]:
    """The arrays of an ``.npz`` holding ``names`` that ``key`` selects, in input order.

    ``key`` None: the only array; a file with several arrays is refused (listing them), because
    picking the first (or all) would silently explain the wrong data when the file also holds
    labels or a second split. ``"a"``: that array; ``"a,b"`` or ``["a", "b"]``: the inputs of a
    multi-input model, in that order. ``key`` of another type (a number, bytes, an array) is
    refused.

    ``multi``: whether the caller takes several arrays (the inputs of a multi-input model:
    ``tribute explain``, :func:`tribute.explain_dataset`); only then does the refusal of a file
    with several arrays suggest naming several. ``tribute evaluate``, ``tribute components``
    and ``tribute serve`` take one array. default=True.

    >>> npz_keys(["X"], None, "x.npz")
    ['X']
    >>> npz_keys(["ids", "mask", "y"], "ids, mask", "x.npz")
    ['ids', 'mask']
    """
    names = list(names)
    if key is not None and not (isinstance(key, str) or (
            isinstance(key, (list, tuple)) and all(isinstance(k, str) for k in key))):
        raise InputError(
            f"{arg}: data_key must be a str (an array name, or comma-separated names) or a list "
            f"of str; got {key!r} of type {type(key).__name__}. Name the arrays of {where} as "
            f"strings, e.g. data_key={(names or ['X'])[0]!r}.")
    if not names:
        raise InputError(f"{arg}: {where} holds no arrays.")
    flag = _key_flag(arg)
    if key is None:
        if len(names) == 1:
            return names
        if flag is None:  # --baseline, --reference ...: no key option
            raise InputError(f"{arg}: {where} holds {len(names)} arrays {names}; give a .npy file "
                             "or an .npz holding one array.")
        if not multi:
            raise InputError(
                f"{arg}: {where} holds {len(names)} arrays {names}; this takes one array: name "
                f"it with {flag} {names[0]!r}.")
        raise InputError(
            f"{arg}: {where} holds {len(names)} arrays {names}; say which to explain: "
            f"{flag} {names[0]!r} for one array, or {flag} {','.join(names[:2])!r} for the "
            "inputs of a multi-input model, in order.")
    flag = flag or "key"
    wanted = [k.strip() for k in key.split(",")] if isinstance(key, str) else [str(k) for k in key]
    if not wanted or any(not k for k in wanted):
        raise InputError(f"{flag} {key!r} names no array; {where} holds {names}.")
    missing = [k for k in wanted if k not in names]
    if missing:
        raise InputError(f"{flag} {key!r}: {missing} not in {where}; it holds {names}.")
    if len(set(wanted)) < len(wanted):
        raise InputError(f"{flag} {key!r} names an array twice; give each model input once.")
    return wanted


def _key_flag(arg: str) -> str | None:
    """How the user names an ``.npz`` array for ``arg`` (None: ``arg`` has no key option)."""
    return {"--data": "--data-key", "data": "--data-key / data_key"}.get(arg)


def load_array(path: str | Path, key: DataKey = None, arg: str = "--data", *,
               multi: bool = False) -> np.ndarray:
    """One numeric array from a ``.npy`` or ``.npz`` file, without pickle (the commands that take
    a single array: ``tribute explain`` without a dataset job, ``tribute evaluate``, ``tribute
    components``, ``--baseline``, ``--reference``, ``--ground-truth`` ...). Errors name ``arg``;
    an ``.npz`` follows :func:`npz_keys`. ``multi``: the caller (``tribute explain``) can run a
    multi-input model's arrays as a dataset job, which the refusals of several arrays then
    suggest. default=False.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{arg}: file {str(p)!r} does not exist.")
    arrays = _read_numpy(p, key, arg, mmap=False, multi=multi)[1]
    if len(arrays) != 1:
        flag = _key_flag(arg) or "the key"
        hint = (" A multi-input model's arrays run as a dataset job: add --shard-size N (or use "
                "tribute.explain_dataset).") if multi else f" Name one array with {flag}."
        raise InputError(f"{arg}: the key {key!r} selects {len(arrays)} arrays of {str(p)!r}; this "
                         f"takes one array.{hint}")
    return arrays[0]


def load_dataset(path: str | Path, key: DataKey = None, *, multi: bool = True) -> Dataset:
    """Read ``.npy``, ``.npz`` (the arrays ``key`` selects, see :func:`npz_keys`; ``multi`` as
    there), ``.csv`` or ``.parquet`` (numeric columns only) into a :class:`Dataset`. A ``.csv``
    whose header starts with an empty cell (``,a,b``, as ``df.to_csv()`` writes the index) has
    its first column read as the index, not as a feature (with a warning when its values repeat
    or are not whole numbers, unlike an index: a feature saved with no name).

    Raises:
        InputError: missing or unreadable file, pickled objects, arrays of different lengths,
            non-numeric columns, or a missing optional dependency (with the install command).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in _SUFFIXES:
        raise InputError(f"data: {str(p)!r} has suffix {p.suffix!r}; give a .npy, .npz, .csv or .parquet file.")
    if not p.is_file():
        raise InputError(f"data: file {str(p)!r} does not exist.")
    if key is not None and suffix != ".npz":
        raise InputError(f"data key {key!r} applies to .npz files; {str(p)!r} is a {suffix} file; "
                         f"{_drop_key('data')}.")
    if suffix in (".npy", ".npz"):
        return _load_numpy(p, key, multi)
    return _load_table(p)


def read_table(path: str | Path, *, name: str | None = None,
               notes: list[str] | None = None) -> Dataset:
    """Read a ``.csv`` or ``.parquet`` table by the rules of :func:`load_dataset` (index column,
    header or not, row-counter warning, other separators, missing values): the one reader of
    ``tribute explain --data``, :func:`tribute.explain_dataset` and the explorer's uploads.

    Args:
        path: the file.
        name: how messages name the file (an upload's own name rather than the temporary file
            it was written to); default the path.
        notes: when a list, the reader's warnings are appended to it (to be shown elsewhere,
            e.g. in the explorer's page) instead of being issued with :func:`warnings.warn`.

    Raises:
        InputError: as :func:`load_dataset`.
    """
    p = Path(path)
    shown = str(p) if name is None else name
    if p.suffix.lower() not in (".csv", ".parquet"):
        raise InputError(f"data: {shown!r} has suffix {p.suffix!r}; give a .csv or .parquet file.")
    if not p.is_file():
        raise InputError(f"data: file {shown!r} does not exist.")
    return _load_table(p, shown, notes)


def _warn(message: str, notes: list[str] | None, stacklevel: int) -> None:
    """Issue a reader's warning, or keep it in ``notes`` (:func:`read_table`)."""
    if notes is not None:
        notes.append(message)
        return
    import warnings

    warnings.warn(message, UserWarning, stacklevel=stacklevel + 1)


#: First bytes of a ``.npy`` file, and of a zip archive (``.npz``).
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"


def not_a_numpy_file(path: str | Path) -> str | None:
    """Why ``path`` is no ``.npy``/``.npz`` file, judged by its first bytes; None if it may be one.

    ``numpy.load`` reads any file that lacks both signatures as a pickle, so without this check
    a text file, a CSV or a torch ``.pt`` file saved with pickle would be reported as "pickled
    objects" (or worse, loaded with ``allow_pickle=True``).

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     f = os.path.join(d, "x.npy")
    ...     _ = open(f, "wb").write(b"a,b\\n1,2\\n")
    ...     print(not_a_numpy_file(f))
    it starts with b'a,b\\n1,2\\n', not with the .npy header (b'\\x93NUMPY') or a zip signature (.npz)
    """
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith((_NPY_MAGIC, _ZIP_MAGIC)):
        return None
    if head[:1] == b"\x80":  # pickle protocol 2+
        return "it is a Python pickle (pickle.dump, or torch.save in its legacy format), which tribute never loads"
    return (f"it starts with {head!r}, not with the .npy header ({_NPY_MAGIC!r}) or a zip "
            "signature (.npz)")


def require_numpy_file(p: Path, arg: str) -> None:
    """Raise :class:`InputError` naming ``arg`` unless ``p`` starts like a .npy/.npz file."""
    try:
        why = not_a_numpy_file(p)
    except OSError as exc:
        raise InputError(f"{arg}: cannot read {str(p)!r} ({exc}).") from exc
    if why is not None:
        raise InputError(f"{arg}: {str(p)!r} is not a numpy .npy/.npz file: {why}. Save plain "
                         "numeric arrays with numpy.save / numpy.savez.")


def _drop_key(arg: str) -> str:
    """The fix for a key given with a file that holds one array, in ``arg``'s terms."""
    return {"--data": "drop --data-key",
            "data": "drop the key (--data-key on the command line, data_key=None in Python)"
            }.get(arg, "drop the key")


def _read_numpy(p: Path, key: DataKey, arg: str, *, mmap: bool = True,
                multi: bool = True) -> tuple[list[str], tuple[np.ndarray, ...]]:
    """Names and arrays of a ``.npy`` (memory-mapped when ``mmap``) or of the ``.npz`` arrays
    ``key`` selects."""
    require_numpy_file(p, arg)
    try:
        obj = np.load(p, mmap_mode="r" if mmap and p.suffix.lower() == ".npy" else None,
                      allow_pickle=False)
    except ValueError as exc:
        raise InputError(
            f"{arg}: {str(p)!r} holds pickled objects, which tribute never loads ({exc}). Save "
            "plain numeric arrays with np.save / np.savez."
        ) from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{arg}: cannot read {str(p)!r} as a numpy file ({exc}).") from exc
    if isinstance(obj, np.ndarray):
        if key is not None:
            raise InputError(f"{arg}: a key ({key!r}) applies to .npz files; {str(p)!r} holds one "
                             f"array; {_drop_key(arg)}.")
        return [p.name], (obj,)
    try:
        with obj:
            others = [n for n in obj.zip.namelist() if not n.endswith(".npy")]
            if others:  # a zip that is no .npz (a torch .pt file, say)
                raise InputError(
                    f"{arg}: {str(p)!r} is not a .npy/.npz array file (its member {others[0]!r} "
                    "is not an array); save plain numeric arrays with np.save / np.savez (torch "
                    ".pt files are not read).")
            names = npz_keys(list(obj.files), key, repr(str(p)), arg, multi=multi)
            arrays = tuple(obj[n] for n in names)
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{arg}: {str(p)!r} holds pickled objects, which tribute never loads ({exc}).") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:  # a damaged member
        raise InputError(f"{arg}: cannot read {str(p)!r} as a numpy .npz file ({exc}).") from exc
    for name, a in zip(names, arrays):
        if not isinstance(a, np.ndarray):  # a zip that is no .npz (a torch .pt file, say)
            raise InputError(
                f"{arg}: {str(p)!r} is not a .npy/.npz array file (its member {name!r} is not an "
                "array); save plain numeric arrays with np.save / np.savez (torch .pt files are "
                "not read).")
    return names, arrays


def _load_numpy(p: Path, key: DataKey, multi: bool = True) -> Dataset:
    names, arrays = _read_numpy(p, key, "data", multi=multi)
    shown = "" if key is None else f"[{key if isinstance(key, str) else ','.join(key)}]"
    ds = _check_arrays(arrays, names, str(p), columns=None, source=str(p) + shown)
    if p.suffix.lower() == ".npy":
        return Dataset(arrays=ds.arrays, source=ds.source, mapped=str(p.resolve()))
    return ds


def _load_table(p: Path, shown: str | None = None, notes: list[str] | None = None) -> Dataset:
    shown = str(p) if shown is None else shown
    try:
        import pandas as pd
    except ImportError as exc:
        raise InputError(
            f"data: reading {p.suffix} files needs pandas (and pyarrow for parquet); "
            "install them with `pip install pandas pyarrow`, or save the data with np.save."
        ) from exc
    headerless = False
    try:
        if p.suffix.lower() == ".csv":
            headerless = _csv_has_no_header(pd, p)
            if not headerless:
                _refuse_header_like_data(pd, p, shown)
            indexed = not headerless and _csv_has_index(pd, p)
            frame = pd.read_csv(p, header=None if headerless else "infer", index_col=0 if indexed else None)
            if indexed:
                _warn_if_index_looks_like_data(pd, frame.index, shown, notes)
        else:
            frame = pd.read_parquet(p)
            # pyarrow's name for a pandas index saved without pandas' metadata: an index, not a
            # feature (it was explained as one)
            index_cols = [c for c in frame.columns if re.fullmatch(r"__index_level_\d+__", str(c))]
            if index_cols and len(index_cols) < frame.shape[1]:
                frame = frame.drop(columns=index_cols)
    except InputError:
        raise
    except ImportError as exc:
        raise InputError(f"data: reading parquet files needs pyarrow: `pip install pyarrow` ({exc}).") from exc
    except Exception as exc:  # pandas raises many parser error types
        raise InputError(f"data: cannot read {shown!r} ({type(exc).__name__}: {exc}).") from exc
    if frame.shape[1] == 0:
        raise InputError(f"data: {shown!r} has no columns.")
    if frame.shape[0] == 0:
        raise InputError(f"data: {shown!r} has no rows (only a header {[str(c) for c in frame.columns][:10]}).")
    _warn_if_row_counter(pd, frame, shown, headerless, notes)
    if p.suffix.lower() == ".csv" and (frame.shape[1] == 1 or text_columns(frame)):
        _refuse_other_separator(p, shown)
    if text_columns(frame):  # strings / categories: the model (a pipeline) takes the table itself
        names = None if headerless else tuple(str(c) for c in frame.columns)
        return _table_dataset(frame, "data", shown, names)
    bad = [str(c) for c in frame.columns if not (pd.api.types.is_numeric_dtype(frame[c])
                                                 and not pd.api.types.is_bool_dtype(frame[c]))]
    bad += [str(c) for c in frame.columns if pd.api.types.is_bool_dtype(frame[c])]
    if bad:
        raise InputError(
            f"data: {shown!r} has non-numeric column(s) {sorted(set(bad))[:10]} (dtypes "
            f"{sorted({str(frame[c].dtype) for c in frame.columns if str(c) in bad})}); encode them "
            "as numbers (e.g. one-hot) or drop them before explaining."
        )

    arr = frame.to_numpy(dtype=np.float64)
    if np.isnan(arr).any():
        rows = np.flatnonzero(np.isnan(arr).any(axis=1))[:5].tolist()
        hint = ""
        if headerless and arr.shape[1] > 1 and np.isnan(arr[0, 0]) and not np.isnan(arr[0, 1:]).any():
            # ``,2019,2020`` then ``0,1.5,2``: numeric column names after an index column, or a
            # first row of data missing its first value; the file cannot tell (review rev38b)
            cell = _first_cell(pd, p)
            seen = "an empty first cell" if not cell.strip() else \
                f"first cell {cell.strip()!r}, which reads as a missing value"
            hint = (f" Its first line ({seen}, then numbers) is read as a row of data "
                    "missing its first value; if it is a header (an index column, then columns "
                    "named by numbers such as years), give the columns names that are not "
                    "numbers (e.g. 'y2019'), or save the table without its index and header.")
        raise InputError(f"data: {shown!r} has missing values (rows {rows}...); fill or drop them first.{hint}")
    cols = None if headerless else tuple(str(c) for c in frame.columns)
    ds = _check_arrays((arr,), [p.name], shown, columns=cols, source=shown)
    if cols is None:
        return ds
    return dataclasses.replace(ds, dtypes={str(c): dt for c, dt in typed_columns(frame).items()} or None)


#: The refusal of texts (or sentence pairs) as a job's data.
_TEXT_JOB = (
    "data: got texts; a dataset job explains numeric rows of one length, and the credits of texts "
    "(one player per token or word, a different number per text) cannot be merged into one "
    "array. Tokenise them to fixed-length arrays and explain those: enc = tokenizer(texts, "
    "padding='max_length', max_length=L, truncation=True, return_tensors='np'); "
    "tribute.explain_dataset(model, (enc['input_ids'], enc['attention_mask']), ...), or call "
    "tribute.explain(model, texts, tokenizer=...) on batches of texts.")


def _table_dataset(frame: Any, name: str, source: str, columns: tuple[str, ...] | None) -> Dataset:
    """A table with text/categorical columns: the model (a scikit-learn pipeline or a function
    of DataFrames) receives each shard's rows as a DataFrame, as :func:`tribute.explain` takes
    it (:mod:`tribute.models.tabular`). ``arrays`` holds the table as numbers (text columns as
    codes in order of first appearance, a missing value as NaN) for the row count, shapes,
    missing-value check and, with the categories, the fingerprint."""
    codes = np.empty(frame.shape, dtype=np.float64)
    text = text_columns(frame)
    for j, c in enumerate(frame.columns):
        col = frame.iloc[:, j]
        if c in text:
            k, _ = _factorize(col)
            codes[:, j] = np.where(k < 0, np.nan, k)
        else:
            try:
                codes[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise InputError(f"{name}: column {str(c)!r} of {source} ({col.dtype}) cannot be read "
                                 f"as numbers ({exc}).") from exc
    ds = _check_arrays((codes,), [source], source, columns=columns, source=source)
    return Dataset(arrays=ds.arrays, columns=columns, source=source, frame=frame)


def _factorize(col: Any) -> tuple[np.ndarray, Any]:
    import pandas as pd

    codes, uniques = pd.factorize(col, sort=False, use_na_sentinel=True)
    return np.asarray(codes), uniques


def _frame_categories(frame: Any) -> dict[str, Any]:
    """Per text/categorical column: its dtype and values in order of first appearance (with the
    codes in ``Dataset.arrays``, the table's exact content)."""
    out: dict[str, Any] = {}
    for c in text_columns(frame):
        col = frame[c]
        out[str(c)] = {"dtype": str(col.dtype), "values": [str(v) for v in _factorize(col)[1]]}
    return out


def _first_cell(pd: Any, p: Path) -> str:
    """The first cell of a ``.csv`` as written in the file (``""``, ``"nan"``, ``"NA"``...)."""
    try:
        return str(pd.read_csv(p, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0, 0])
    except Exception:  # pragma: no cover - the file was read just before
        return ""


def _csv_has_index(pd: Any, p: Path) -> bool:
    """Whether the header of a ``.csv`` (one with a header) starts with an empty cell: the
    index column ``df.to_csv(path)`` writes by default (``,a,b`` then ``0,1.5,2.0``).

    pandas reads that column as a feature named ``'Unnamed: 0'``, so the row numbers were
    explained as the first feature, every other feature shifted one place, silently for a model
    that takes any width (audit aud38x); it is read as the index instead, as
    ``pd.read_csv(path, index_col=0)`` reads back what ``to_csv`` wrote.
    """
    first = pd.read_csv(p, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
    return len(first) > 1 and not str(first[0]).strip()


def _refuse_other_separator(p: Path, shown: str | None = None) -> None:
    """Refuse a ``.csv`` whose first line separates its fields with ``;``, a tab or ``|`` (a
    spreadsheet saved in a locale whose decimal mark is ','): read with commas it became one
    text column (``a;b;c``) or text columns (``1,5;2,3``), explained as categorical features."""
    with open(p, encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline()
    unquoted = re.sub(r'"[^"]*"', "", first)
    sep = next((c for c in (";", "\t", "|") if c in unquoted), None)
    if sep is None:
        return
    name = "tab" if sep == "\t" else repr(sep)
    raise InputError(
        f"data: the first line of {str(p) if shown is None else shown!r} ({first.strip()[:60]!r}) "
        f"separates its fields with {name}, not ','; read with commas it becomes text column(s). "
        f"Save it comma-separated with '.' as the decimal mark, e.g. pd.read_csv(path, sep={sep!r}, decimal=',')"
        ".to_csv(new_path, index=False).")


def _warn_if_index_looks_like_data(pd: Any, index: Any, p: Path | str,
                                   notes: list[str] | None = None) -> None:
    """The first column of a ``.csv`` whose header starts with an empty cell is read as the
    index; warn when its values do not look like one (repeated values, or numbers that are not
    whole): a feature column saved with no name (a blank first header cell, as a spreadsheet may
    export it) is then missing from the explained features, and a model of fixed width fails
    with a shape error that says nothing of the column (review rev38b)."""
    values = pd.Series(index)
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    fractional = bool(numeric and (values.to_numpy(dtype=np.float64) % 1 != 0).any())
    if not (fractional or values.duplicated().any()):
        return
    shown = [str(v) for v in values.iloc[:3].tolist()]
    _warn(
        f"data: the first column of {str(p)!r} has no name in the header, so it is read as the "
        f"row index (as pandas' df.to_csv() writes it) and not explained; its values {shown}... "
        f"{'repeat' if values.duplicated().any() else 'are not whole numbers'}, unlike an index. "
        "If it is a feature, give it a name in the header's first cell.", notes, stacklevel=3)


def _csv_has_no_header(pd: Any, p: Path) -> bool:
    """Whether the first line of a ``.csv`` is a row of data rather than column names.

    pandas takes the first line as the header, so a file saved without one (``np.savetxt``,
    ``df.to_csv(header=False)``) would silently lose its first row and name the features after
    its numbers. A first line of numbers only is read as data, except ``0,1,...,d-1``: the
    header ``pd.DataFrame(X).to_csv(index=False)`` writes for unnamed columns (and
    ``,0,1,...,d-2``, which ``to_csv()`` writes with the index). An empty cell counts as a
    number (a missing value, refused later as such): a first row of data with a missing cell
    was read as the header, losing the row (audit aud38x).
    """
    first = [str(c).strip() for c in
             pd.read_csv(p, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()]
    if first == [str(i) for i in range(len(first))]:
        return False
    if len(first) > 1 and not first[0] and first[1:] == [str(i) for i in range(len(first) - 1)]:
        return False
    if len(first) > 1 and not first[0] and _csv_second_row_is_labelled(pd, p):
        return False  # ``,2019,2020`` then ``east,1.5,2``: numeric column names and a labelled index
    try:
        [float(c) for c in first if c]
    except ValueError:
        return False
    return any(first)


def _cell_kind(cell: str) -> str:
    cell = cell.strip()
    if not cell:
        return "empty"
    try:
        float(cell)
    except ValueError:
        return "text"
    return "number"


def _refuse_header_like_data(pd: Any, p: Path, shown: str | None = None) -> None:
    """Refuse a ``.csv`` whose first line, read as the header, has the same kinds of cells as
    the line after it and holds both text and a number: ``r1,1.5,2`` then ``r2,0.5,1`` is a file without a
    header whose first column is a row label, or a header with a labelled first column and
    columns named by numbers -- the file cannot tell. pandas took it as the header, so the
    first row was lost and the columns were named '1.5' and '2', silently (small39). A header
    of names only (``name,a,b``) is read as a header, as every tool reads it."""
    try:
        rows = pd.read_csv(p, header=None, nrows=2, dtype=str, keep_default_na=False)
    except Exception:  # rows of different widths (another separator): the reader below says so
        return
    if rows.shape[0] < 2:
        return
    first = [str(c) for c in rows.iloc[0].tolist()]
    kinds = [_cell_kind(c) for c in first]
    # a first line of numbers only is judged by _csv_has_no_header (data, except the header
    # 0,1,...,d-1 pandas writes for unnamed columns); names only is a header
    if "number" not in kinds or "text" not in kinds or \
            kinds != [_cell_kind(str(c)) for c in rows.iloc[1].tolist()]:
        return
    line = ",".join(first)
    raise InputError(
        f"data: the first line of {str(p) if shown is None else shown!r} ({line[:60]!r}) has the "
        f"same kinds of cells as the second ({', '.join(kinds[:6])}"
        f"{', ...' if len(kinds) > 6 else ''}), so the file cannot "
        "tell whether it is a header or a row of data (read as a header, the row would be lost). "
        "Add a header line of column names that are not numbers (e.g. 'name,x1,x2'), or, if the "
        "first line is a header, rename its numeric column names (e.g. 'y2019').")


def _warn_if_row_counter(pd: Any, frame: Any, p: Path | str, headerless: bool,
                         notes: list[str] | None = None) -> None:
    """Warn when a table's first column holds exactly the row numbers (``0..n-1`` or
    ``1..n``): an index saved as a named column (``id,a,b``), which is explained as a feature
    (it was, silently, small39). It may be a feature (a time step), so this is a warning."""
    n = int(frame.shape[0])
    if n < 3 or frame.shape[1] < 2:
        return
    col = frame.iloc[:, 0]
    if not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)):
        return
    values = col.to_numpy(dtype=np.float64, na_value=np.nan)
    start = values[0]
    if start not in (0.0, 1.0) or not np.array_equal(values, np.arange(n, dtype=np.float64) + start):
        return
    name = "column (no header)" if headerless else f"column {str(frame.columns[0])!r}"
    col_name = str(frame.columns[0])
    fix = ("save the table without it" if headerless else
           f"drop it before saving (df.drop(columns={col_name!r})), or save it as the index "
           f"(df.set_index({col_name!r}).to_csv(path) writes it under an empty first header cell, "
           "which is read as the index; .to_parquet keeps it as the index)")
    _warn(
        f"data: the first {name} of {str(p)!r} holds exactly the row numbers {int(start)}..{int(start) + n - 1}; "
        f"it is explained as a feature. If it numbers the rows, {fix}. If it is a feature, ignore "
        "this warning.", notes, stacklevel=user_stacklevel())


def _csv_second_row_is_labelled(pd: Any, p: Path) -> bool:
    """Whether the second line of a ``.csv`` starts with a cell that is not a number (a row
    label, e.g. ``east`` or ``2020-01-31``): the first line, whose first cell is empty, is then
    the header of a table with an index column (``df.to_csv()`` of a frame with a text index
    and numeric column names), not a row of data with a missing value."""
    rows = pd.read_csv(p, header=None, nrows=2, dtype=str, keep_default_na=False)
    if rows.shape[0] < 2:
        return False
    cell = str(rows.iloc[1, 0]).strip()
    try:
        float(cell)
    except ValueError:
        return bool(cell)
    return False


def _check_arrays(arrays: tuple[np.ndarray, ...], names: Sequence[str], where: str,
                  columns: tuple[str, ...] | None, source: str) -> Dataset:
    for name, a in zip(names, arrays):
        if a.dtype.kind not in "biuf":
            raise InputError(
                f"data: array {name!r} in {where} has dtype {a.dtype}; give numeric arrays "
                "(bool, int or float)."
            )
        if a.ndim == 0:
            raise InputError(f"data: array {name!r} in {where} is a scalar; the rows must be its first axis.")
    lengths = {name: int(a.shape[0]) for name, a in zip(names, arrays)}
    if len(set(lengths.values())) > 1:
        raise InputError(
            f"data: the arrays in {where} have different numbers of rows {lengths}; every array is "
            "one model input and needs the same rows. Pick one array (--data-key / a single array) "
            "or fix the file."
        )
    if next(iter(lengths.values())) == 0:
        raise InputError(f"data: {where} has no rows.")
    return Dataset(arrays=tuple(arrays), columns=columns, source=source)


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == object:
        raise InputError(f"{name}: got an object array of type {type(x).__name__}; pass numeric arrays.")
    return arr


def check_columns(ds: Dataset, model: Any) -> None:
    """Refuse a table whose columns are not the ones, in the order, the model was fitted on,
    and a table with text columns for a torch module (which cannot take it).

    A table (csv/parquet, or a DataFrame) reaches the model as a positional float array, and
    the credits are named after the table's columns. A scikit-learn-style model fitted on a
    DataFrame records its columns in ``feature_names_in_``; when the table holds them in
    another order, the model would read ``c`` as ``a`` and the credits would carry the wrong
    names, silently (sklearn only warns that X has no feature names). Reordering here instead
    would misalign any per-column argument (a baseline vector) given in the table's order, so
    the mismatch is refused with both lists and the fix.
    """
    import torch

    if ds.frame is not None and isinstance(model, torch.nn.Module):
        text = [str(c) for c in text_columns(ds.frame)]
        raise InputError(
            f"data: {ds.source} has non-numeric column(s) {text[:10]} (dtypes "
            f"{sorted({str(ds.frame[c].dtype) for c in text_columns(ds.frame)})}), and a torch "
            f"{type(model).__name__} takes numbers: encode them as numbers (e.g. one-hot) or drop "
            "them, or explain a model that takes the table (a scikit-learn pipeline that encodes "
            "them). Nothing was written.")
    if ds.columns is None:
        return
    names = getattr(model, "feature_names_in_", None)
    if names is None and type(model).__name__ == "Booster":  # XGBoost / LightGBM's own names
        from ..models import as_model

        names = getattr(as_model(model, "numpy"), "feature_names", None)
    if names is None:
        return
    fitted = [str(c) for c in np.asarray(names).tolist()]
    lgbm = type(model).__module__.startswith("lightgbm")  # it stores a name's spaces as '_'
    cols = [c.replace(" ", "_") if lgbm else c for c in ds.columns]
    if cols == fitted:
        return
    missing = [c for c in fitted if c not in cols]
    extra = [c for c in cols if c not in fitted]
    if missing or extra:
        why = (f"it lacks {missing[:10]}" if missing else "") + (" and " if missing and extra else "") \
            + (f"it has columns the model was not fitted on {extra[:10]}" if extra else "")
    else:
        why = "the same columns in another order"
    raise InputError(
        f"data: {ds.source}'s columns {cols[:20]} do not match the columns the model was fitted on "
        f"({fitted[:20]}): {why}. The rows reach the model by position, so "
        "reorder/select the table's columns as the model's (df[model.feature_names_in_] in "
        "pandas; a Booster's are Booster.feature_names / feature_name()) and save it again.")
