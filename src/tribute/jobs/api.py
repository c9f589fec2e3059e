"""``explain_dataset``: explain a data set of any length in shards that survive a kill."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..attribution import Attribution
from ..errors import InputError, TributeError
from ..games.features import column_groups, is_column_groups, is_position_groups
from ..params import check_seed
from ..targets import plain_target
from ._io import atomic_write, clean_temporaries
from .backends import BACKENDS, run_shards
from .data import (
    _csv_has_index,
    _csv_has_no_header,
    as_dataset,
    check_columns,
    check_finite,
    load_dataset,
    shard_digests,
)
from .manifest import (
    FORMAT,
    MANIFEST,
    canonical,
    code_digest,
    compare_manifests,
    read_manifest,
    write_manifest,
)
from .merge import RESULT, SHARDS_DIR, merge_shards, result_write_error, shard_path, write_parquet
from .model import (
    PROBE_ROWS,
    ModelSource,
    fingerprint_model,
    model_probe,
    probe_values,
    probes_agree,
)
from .progress import JobProgress
from .shards import JobSpec, _as_inputs, _slice_rows, method_settings

__all__ = ["DEFAULT_SHARD_SIZE", "explain_dataset"]

#: Rows per shard when none is given. Fixed (not derived from the worker count), because the
#: shard size is a setting of the job: stochastic methods seed each shard separately.
DEFAULT_SHARD_SIZE = 64

SUMMARY = "summary.json"
PARQUET = "result.parquet"


def explain_dataset(
    model: Any,
    data: Any,
    out: str | Path,
    method: str = "kernel_shap",
    *,
    weights: str | Path | None = None,
    data_key: str | Sequence[str] | None = None,
    seed: int = 0,
    shard_size: int | None = None,
    resume: bool = False,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    max_retries: int = 3,
    threads: int | None = 1,
    progress: bool | None = None,
    **explain_kwargs: Any,
) -> Attribution:
    """Explain every row of ``data`` in shards written to ``out`` as they finish.

    Each shard is computed by :func:`tribute.explain` on its rows with seed
    ``SeedSequence([seed, shard_index])`` (see :mod:`tribute.jobs.shards`) and saved atomically
    (temp file, fsync, ``os.replace``) as ``out/shards/shard-NNNNNN.npz`` next to
    ``out/manifest.json`` (settings, sha256 fingerprints of model and data, the model's
    outputs on the first rows, tribute version).
    A killed job continues with ``resume=True``, skipping finished shards; the merged
    ``out/result.npz`` is byte-identical to an uninterrupted run's, whatever the backend.

    Args:
        model: a model object (torch module or picklable callable) or a factory spec
            ``"pkg.module:factory"`` / ``"path/file.py:factory"`` that each worker rebuilds.
        data: an array, tensor or tuple of them (several model inputs), a DataFrame, or a path
            to a ``.npy``/``.npz``/``.csv``/``.parquet`` file (rows first). A table with text or
            categorical columns reaches the model as a DataFrame of each shard's rows (a
            scikit-learn pipeline that encodes them), one player per column, as in
            :func:`tribute.explain`. Texts are refused: tokenise them to fixed-length arrays.
        out: output folder; must be empty or absent unless ``resume=True``.
        method: registry name of the estimator. default="kernel_shap".
        weights: ``.safetensors`` file loaded into the factory's model (factory specs only).
        data_key: which arrays of a ``.npz`` file: one name, or several (``"ids,mask"`` or a
            list) as the inputs of a multi-input model, in order; needed when the file holds
            more than one array (:func:`tribute.jobs.data.npz_keys`).
        seed: the job's seed; shard ``k`` uses ``SeedSequence([seed, k])``. default=0.
        shard_size: rows per shard. default=None (:data:`DEFAULT_SHARD_SIZE`).
        resume: continue the job in ``out``; refused when its settings, model or data differ.
        workers: shards computed at the same time (processes and ray backends). default=1.
        backend: ``"local"`` (this process), ``"processes"`` (spawned worker processes) or
            ``"ray"`` (Ray tasks; needs ``tribute[ray]``). default="local".
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``); None uses Ray's default
            (``RAY_ADDRESS``, else a local instance) unless Ray is already initialised.
        max_retries: Ray retries of a shard whose worker died. default=3.
        threads: torch intra-op threads per shard, part of the job's settings (float results
            can depend on it); None leaves torch's setting alone. default=1.
        progress: progress bar across shards on stderr (None: when stderr is a terminal).
        **explain_kwargs: passed to :func:`tribute.explain` (target, baseline, budget, output,
            batch_size, groups, method hyperparameters...). Arrays whose first axis is the data's
            rows (per-sample targets, baselines or groups of the data's full shape) are sliced per
            shard; a background set of exactly as many rows as the data must be wrapped in
            :class:`tribute.Background` (as in :func:`tribute.explain`).

    Returns:
        The merged :class:`~tribute.Attribution` (also in ``out/result.npz``), numpy values.

    Raises:
        InputError: bad data/model/weights/settings, or an ``out`` folder that is not empty
            (without ``resume``), holds another job, or holds a job with different settings.
    """
    t0 = time.perf_counter()
    out = Path(out)
    seed = check_seed(seed)  # a plain int: numpy ints are not JSON-serialisable in the manifest
    _check_options(method, backend, address, workers, shard_size, seed, max_retries, threads, explain_kwargs)
    ds = load_dataset(data, data_key) if isinstance(data, (str, Path)) else as_dataset(data)
    row_labels = data_index(data, ds.n_rows)  # the rows' labels, into result.npz / .parquet
    if data_key is not None and not isinstance(data, (str, Path)):
        raise InputError("data_key applies when data is a .npz path; got an in-memory array.")
    if explain_kwargs.get("target") is not None:  # a Series of labels: numpy, sliced per shard
        explain_kwargs["target"] = plain_target(explain_kwargs["target"], _labelled(data, ds, row_labels))
    check_finite(ds)  # before anything is written, naming rows of the whole data set
    source = ModelSource.of(model, weights)
    built = source.build()
    check_columns(ds, built)  # a table must hold the model's columns in the model's order
    _table_baseline(ds, method, explain_kwargs)
    _check_baseline_columns(ds, explain_kwargs.get("baseline"))
    if (ds.columns is not None and ds.frame is None and is_column_groups(explain_kwargs.get("groups"))) or (
            len(ds.arrays) == 1 and is_position_groups(explain_kwargs.get("groups"), ds.arrays[0].shape)):
        # rev49o: column lists by position ([[0, 1], [2, 3]], [[0, 1, 2, 3]]) are read against the
        # whole data, as a single call on it reads them: a shard of one row read [[0, 1, 2, 3]] as a
        # (1, n) mask (every column its own player) where the call on every row gives one group
        # groups of column names ({'ab': ['a', 'b']}, [['a', 'b'], ['c']]): a shard of a numeric
        # table is an array, whose columns have no names ("inputs have no column names; give
        # column positions", though the file names them): resolved here, named as a single call
        # on the DataFrame names them (review rev38b)
        cols = list(ds.columns) if ds.columns is not None else None
        mask, group_names = column_groups(explain_kwargs["groups"], cols,
                                          len(cols) if cols is not None else int(ds.arrays[0].shape[-1]))
        explain_kwargs["groups"] = mask
        if explain_kwargs.get("feature_names") is None:
            explain_kwargs["feature_names"] = group_names
    if (ds.columns is not None and explain_kwargs.get("feature_names") is None
            and explain_kwargs.get("groups") is None):
        # the columns name the players; with groups the players are the groups, named as a
        # single call names them (every grouped table job failed in shard 0: audit aud38x)
        explain_kwargs["feature_names"] = list(ds.columns)
    spec = JobSpec(
        model=source, model_sha256=fingerprint_model(built), data=ds, method=method, seed=seed,
        shard_size=shard_size or DEFAULT_SHARD_SIZE, explain_kwargs=dict(explain_kwargs), threads=threads,
        row_digests=shard_digests(ds, shard_size or DEFAULT_SHARD_SIZE),
    )
    spec.check_row_arguments()
    if backend == "processes":
        _check_picklable(spec.explain_kwargs)
    _warn_per_sample_table(explain_kwargs.get("baseline"), ds)
    manifest = _manifest(spec)
    k = min(PROBE_ROWS, spec.n_rows)
    inputs = _as_inputs(built, ds.model_rows(0, k), ds, cast=True)  # in the module's dtype
    rows = inputs if isinstance(inputs, tuple) else (inputs,)
    extra, kw = _probe_forward(spec, k)
    probe = model_probe(built, rows, extra, kw)
    # a model that is random in eval mode (Monte-Carlo dropout, noise) answers differently
    # each time: no probe, the fingerprint alone decides
    manifest["model"]["probe"] = probe if probe == model_probe(built, rows, extra, kw) else None
    _check_out(out, manifest, resume)
    clean_temporaries(out)
    clean_temporaries(out / SHARDS_DIR)

    n = spec.n_shards
    present = {p.name for p in (out / SHARDS_DIR).glob("shard-*.npz")} if out.is_dir() else set()
    present -= _damaged_shards(out, n, present)  # recomputed, never merged
    present -= _misplaced_shards(out, spec, present)  # likewise
    done = [k for k in range(n) if shard_path(out, k).name in present]
    pending = [k for k in range(n) if shard_path(out, k).name not in present]
    if pending:
        _check_writable(out)  # before any shard is computed, not after the first one
    if resume and done and pending and _code_changed(out, manifest):
        # a job started by other tribute code: one finished shard is computed again before any
        # pending one, and a difference is refused here, naming it (stop 51: the dtype check of
        # the merge refused such a job only after every remaining shard had been computed, and
        # shards whose values alone differed were merged with a warning)
        _check_recomputed_shard(out, spec, done, built)
    bar = JobProgress(spec.n_rows, done=sum(_rows(spec, k) for k in done), enabled=progress)
    state = {"manifest": (out / MANIFEST).is_file()}

    def on_done(index: int, payload: bytes) -> None:
        if not state["manifest"]:
            _write_manifest(out, manifest)  # first result: the folder now belongs to this job
            state["manifest"] = True
        try:
            atomic_write(shard_path(out, index), payload)
        except OSError as exc:  # disk full, folder removed or made read-only mid-job
            raise TributeError(
                f"out: writing shard {index} to {str(shard_path(out, index))!r} failed "
                f"({type(exc).__name__}: {exc}); finished shards are saved: free space or fix the "
                "folder, then rerun with resume=True / --resume.") from exc
        bar.update(_rows(spec, index))

    t_shards = time.perf_counter()
    try:
        run_shards(spec, pending, on_done, backend=backend, workers=workers, address=address,
                   max_retries=max_retries, model=built if backend == "local" else None)
    finally:
        bar.close()
    # the rate of the shards themselves, as the bar shows it: reading the data, fingerprinting
    # and probing the model, merging and writing the parquet are in "seconds" only
    explaining = time.perf_counter() - t_shards
    if not state["manifest"]:
        _write_manifest(out, manifest)
    params = {"seed": seed, "shard_size": spec.shard_size, "shard_seed": "SeedSequence([seed, shard])"}
    result = merge_shards(out, n, params, index=row_labels)
    seconds = time.perf_counter() - t0
    parquet = write_parquet(result, out / PARQUET, index=row_labels)
    computed = sum(_rows(spec, k) for k in pending)
    summary = {
        "rows": spec.n_rows,
        "rows_computed": computed,
        "rows_resumed": spec.n_rows - computed,
        "shards": n,
        "shards_resumed": len(done),
        "seconds": round(seconds, 4),
        "seconds_explaining": round(explaining, 6),  # 4 digits missed the rate by 1e-3 at 38 ms
        "rows_per_second": round(computed / explaining, 4) if computed and explaining > 0 else None,
        "method": method,
        "backend": backend,
        "workers": workers,
        "settings": manifest["settings"],
        "files": [RESULT] + ([PARQUET] if parquet else []),
        "credits": credit_summary(result),
    }
    text = (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode()
    try:
        atomic_write(out / SUMMARY, text)
    except OSError as exc:
        raise result_write_error(out / SUMMARY, len(text), exc) from exc
    return result.numpy()


def _probe_forward(spec: JobSpec, k: int) -> tuple[tuple[Any, ...], dict[str, Any] | None]:
    """The job's ``forward_args`` / ``forward_kwargs`` for the probe's first ``k`` rows, cut as a
    shard's are (:meth:`JobSpec.shard_kwargs`): per-row tensors (as long as the data) to ``k``
    rows, shared ones as they are."""
    shapes = tuple(tuple(a.shape) for a in spec.data.arrays)
    fa, fk = spec.explain_kwargs.get("forward_args"), spec.explain_kwargs.get("forward_kwargs")
    extra = tuple(_slice_rows("forward_args", fa, 0, k, spec.n_rows, shapes)) if fa is not None else ()
    kwargs = dict(_slice_rows("forward_kwargs", fk, 0, k, spec.n_rows, shapes)) if fk is not None else None
    return extra, kwargs


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Write ``out/manifest.json``, or raise naming it: a full disk gave the bare ``OSError:
    [Errno 28] No space left on device`` (audit aud46j), where every later write of a job names
    its file and what to do. The atomic write leaves no partial file, and no shard is written
    before the manifest, so the folder holds no job yet."""
    try:
        write_manifest(out, manifest)
    except OSError as exc:
        raise TributeError(
            f"out: writing the job's manifest {str(out / MANIFEST)!r} failed ({type(exc).__name__}: "
            f"{exc}); nothing of the job was written: free space or fix the folder, then run the "
            "job again (no resume needed).") from exc


def _check_picklable(explain_kwargs: dict[str, Any]) -> None:
    """Refuse, before anything is written, an argument that spawned worker processes cannot
    receive (a lambda or local function as ``target``): pickle's own error came from the
    process pool after the workers had started, naming no argument."""
    import pickle

    for key, value in explain_kwargs.items():
        try:
            pickle.dumps(value)
        except Exception as exc:
            raise InputError(
                f"{key}: {value!r:.60} cannot be sent to backend='processes' workers "
                f"({type(exc).__name__}: {exc}); define it at module level (not a lambda or a "
                "function inside a function), or use backend='local' or 'ray'. Nothing was "
                "written.") from exc


def _labelled(data: Any, ds: Any, row_labels: Any) -> Any:
    """What a target Series is checked against (:func:`tribute.targets.plain_target`): the
    data itself, or for a .csv/.parquet path an empty table with the file's row labels (its
    index, else 0..n-1, as pandas reads it). A Series in another row order was read by position
    for a file, silently (each row explained for another row's label), though refused for the
    same rows as a DataFrame."""
    if not isinstance(data, (str, Path)):
        return data
    if Path(data).suffix.lower() not in (".csv", ".parquet"):
        return None  # an array file: its rows have positions only, as an array's
    import pandas as pd

    return pd.DataFrame(index=row_labels if row_labels is not None else pd.RangeIndex(ds.n_rows))


def data_index(data: Any, n_rows: int) -> Any:
    """The data's row labels, a ``pandas.Index``, or None when it has none beyond ``0..n-1``.

    A DataFrame's index; a ``.csv``'s index column (a header starting with an empty cell, as
    ``df.to_csv()`` writes it, read as the index by :func:`tribute.jobs.data.load_dataset`); a
    ``.parquet``'s pandas index (from pandas' metadata, or pyarrow's ``__index_level_N__``
    columns). The merged result carries it (``Attribution.index``, a column of
    ``result.parquet`` named after it) so results join back to the data; it depends on the data
    alone, so local, worker and resumed runs write the same labels. An unnamed ``0..n-1``
    (pandas' default) is left out: the ``row`` column already says it."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - tables need pandas anyway
        return None
    if isinstance(data, (str, Path)):
        p = Path(data)
        suffix = p.suffix.lower()
        if suffix == ".csv":
            if _csv_has_no_header(pd, p) or not _csv_has_index(pd, p):
                return None
            # the same parser and column load_dataset reads as the index (header cell empty:
            # no name)
            idx = pd.Index(pd.read_csv(p, usecols=[0]).iloc[:, 0].to_numpy())
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            schema = pq.read_schema(p)
            names = [str(c) for c in schema.names]
            # pandas' metadata names the index columns it restores itself: an unnamed index
            # other than 0..n-1 (a filtered frame's) is saved as '__index_level_0__' with it, and
            # was read here as a hidden column, which pandas had already made the index
            # (IndexError before any work, on any df[mask].to_parquet(path))
            declared = (schema.pandas_metadata or {}).get("index_columns", [])
            hidden = [c for c in names if re.fullmatch(r"__index_level_\d+__", c) and c not in declared]
            if hidden and len(hidden) < len(names):  # an index without pandas' metadata
                cols = pd.read_parquet(p, columns=hidden)
                idx = pd.Index(cols.iloc[:, 0]) if len(hidden) == 1 else pd.MultiIndex.from_frame(cols)
                idx.names = [None] * len(hidden)
            else:
                idx = pd.read_parquet(p, columns=[]).index
        else:
            return None
    elif hasattr(data, "columns") and hasattr(data, "index") and isinstance(data.index, pd.Index):
        idx = data.index  # a DataFrame's, or one a Dataset carries (tribute explain --data)
    else:
        return None
    if len(idx) != n_rows:  # pragma: no cover - read from the same file
        raise InputError(f"data: its index has {len(idx)} labels for {n_rows} rows.")
    if idx.nlevels == 1 and idx.name is None and pd.Index(idx).equals(pd.RangeIndex(n_rows)):
        return None
    return idx


def _damaged_shards(out: Path, n_shards: int, present: set[str]) -> set[str]:
    """Names of the finished shard files of a resumed job that cannot be read back whole (a
    truncated or otherwise damaged file: a torn write on a file system without atomic rename,
    a disk error, an edit by hand): each member's CRC-32 is checked, as a zip archive stores
    one. They are computed again (a warning names them) instead of failing the merge after
    every other shard has run."""
    import warnings
    import zipfile

    from ..errors import user_stacklevel

    bad: dict[str, str] = {}
    for k in range(n_shards):
        p = shard_path(out, k)
        if p.name not in present:
            continue
        try:
            with zipfile.ZipFile(p) as zf:
                member = zf.testzip()
                # a damaged zip directory (a member's comment length, say) hides the members
                # after that one, each member left passing its CRC; the last is values.npy
                missing = sorted({"header.npy", "values.npy"} - set(zf.namelist()))
            if member is not None:
                bad[p.name] = f"bad CRC-32 of member {member!r}"
            elif missing:
                bad[p.name] = f"members {missing} missing from the zip directory"
        except Exception as exc:  # zipfile raises NotImplementedError / RuntimeError too, on a
            # damaged method or flag field ('compression method not supported', 'encrypted')
            bad[p.name] = f"{type(exc).__name__}: {exc}"
    if bad:
        names = sorted(bad)
        warnings.warn(
            f"out: {len(bad)} finished shard file(s) in {str(out / SHARDS_DIR)!r} are damaged and "
            f"are computed again: " + "; ".join(f"{nm} ({bad[nm]})" for nm in names[:5])
            + (" ..." if len(names) > 5 else ""), UserWarning, stacklevel=user_stacklevel())
    return set(bad)


def _misplaced_shards(out: Path, spec: JobSpec, present: set[str]) -> set[str]:
    """Names of the finished shard files of a resumed job that are whole but not the shard their
    name says: another number of rows than that shard holds, or the seed of another shard (a file
    copied or renamed by hand, or from a job folder mixed up with this one). They are computed
    again (a warning names them): before, shard 3's one-row file under shard 1's name was merged,
    and a job over 10 rows returned 8 rows of credits (aud52j), or with a DataFrame's labels
    failed with pandas' bare "Length of values (10) does not match length of index (8)"; a file
    of as many rows gave another shard's rows' credits (0.137 off). Only the headers are read."""
    import warnings
    import zipfile

    from ..errors import user_stacklevel
    from .shards import shard_seed

    bad: dict[str, str] = {}
    for k in range(spec.n_shards):
        p = shard_path(out, k)
        if p.name not in present:
            continue
        lo, hi = spec.bounds(k)
        try:
            with zipfile.ZipFile(p) as zf:
                with zf.open("header.npy") as fh:
                    header = json.loads(str(np.lib.format.read_array(fh, allow_pickle=False)))
                with zf.open("values.npy") as fh:
                    version = np.lib.format.read_magic(fh)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    rows = int(read(fh)[0][0])
        except Exception as exc:  # an unreadable header (a file by hand, not by tribute)
            bad[p.name] = f"its header cannot be read ({type(exc).__name__}: {exc})"
            continue
        params = header.get("params", {}) if isinstance(header, dict) else None
        if not isinstance(params, dict):  # rev52j: a header '"params": null' raised a bare AttributeError
            bad[p.name] = "its header is malformed (not an attribution file's)"
            continue
        seed = params.get("seed")
        if rows != hi - lo:
            bad[p.name] = f"holds {rows} row(s), shard {k} has {hi - lo}"
        elif isinstance(seed, int) and seed != shard_seed(spec.seed, k):
            bad[p.name] = f"was computed with seed {seed}, not shard {k}'s {shard_seed(spec.seed, k)}"
    if bad:
        names = sorted(bad)
        warnings.warn(
            f"out: {len(bad)} finished shard file(s) in {str(out / SHARDS_DIR)!r} are not the shard "
            "their name says and are computed again: " + "; ".join(f"{nm} ({bad[nm]})" for nm in names[:5])
            + (" ..." if len(names) > 5 else ""), UserWarning, stacklevel=user_stacklevel())
    return set(bad)


def _check_writable(out: Path) -> None:
    """Write a temporary file in ``out/shards`` (folders created for it are removed again: a
    job that fails before its first shard leaves nothing behind), or refuse naming ``out``."""
    import tempfile

    folder = out / SHARDS_DIR
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".write-test.tmp-", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise InputError(
            f"out: cannot write to folder {str(out)!r} ({type(exc).__name__}: {exc}); choose a "
            "folder you can write to (and with free space).") from exc
    finally:
        for p in created:  # deepest first
            try:
                p.rmdir()
            except OSError:
                pass


def _table_baseline(ds: Any, method: str, explain_kwargs: dict[str, Any]) -> None:
    """Refuse, before anything is written, a number baseline (given, or the default 0.0 of a
    method that reads one) of a table with text/categorical columns, as a single call does: a
    number names no category (it was read as the category met first, which differs per shard)."""
    from ..games.features import DEFAULT_BASELINE
    from ..methods.base import get_method

    if ds.frame is None:
        return
    base = explain_kwargs.get("baseline", DEFAULT_BASELINE)
    if base is DEFAULT_BASELINE and not get_method(method).reads_baseline(explain_kwargs):
        return  # the method reads no removal value (tree_shap's path-dependent game)
    if isinstance(base, (int, float, np.integer, np.floating)):  # True/False too: no category
        from ..models.tabular import text_columns

        raise InputError(
            f"baseline={float(base)!r} cannot stand for a category of column(s) "
            f"{sorted(map(str, text_columns(ds.frame)))[:8]}: removed features need values of their "
            "own columns. Give the baseline as a DataFrame row with the same columns, or "
            "tribute.Background(df) for the expectation over a background set (on the command "
            "line: --baseline background:ROWS.csv).")


def _check_baseline_columns(ds: Any, baseline: Any) -> None:
    """A DataFrame/Series baseline (plain, ``Background`` or ``PerSample``) of a numeric table
    job holds the table's columns in the table's order, as a single call on the DataFrame
    requires. A shard of a numeric table is an array, so such a baseline was read by position:
    a background with the columns in another order removed column 'a' to column 'd''s values
    (credit -106.7 for -0.32, audit aud39j), a background with other columns was taken as is.
    A table with text columns reaches :func:`tribute.explain` as a DataFrame, which checks it."""
    from ..games.features import Background, PerSample

    if ds.columns is None or ds.frame is not None:
        return
    data = baseline.data if isinstance(baseline, (Background, PerSample)) else baseline
    if not type(data).__module__.startswith("pandas"):
        return
    columns = [str(c) for c in ds.columns]
    if type(data).__name__ == "DataFrame":
        labels = [str(c) for c in data.columns]
    elif type(data).__name__ == "Series" and data.ndim == 1 and len(data) == len(columns):
        labels = [str(c) for c in data.index]
    else:
        return
    if labels != columns:
        raise InputError(
            f"baseline has columns {labels[:8]}{'...' if len(labels) > 8 else ''} but {ds.source} "
            f"has {columns[:8]}{'...' if len(columns) > 8 else ''}; give the baseline the same "
            "columns in the same order (e.g. baseline=X_train[columns].mean(), or a background "
            "file saved as rows[columns].to_csv(...)). Nothing was written.")


def _warn_per_sample_table(baseline: Any, ds: Any) -> None:
    """As a single call does (once per job, not per shard): a plain table baseline with one row
    per data row of a table job is read per sample, though it may be a background set."""
    import warnings

    from ..errors import user_stacklevel
    from ..games.features import Background, PerSample, per_sample_table_warning
    from .shards import row_shape

    if baseline is None or isinstance(baseline, (Background, PerSample)) or ds.n_rows < 2:
        return
    parts = baseline if isinstance(baseline, (tuple, list)) and len(ds.arrays) > 1 else (baseline,)
    if not all(a.ndim == 2 and np.issubdtype(a.dtype, np.floating) for a in ds.arrays):
        return
    if any(len(row_shape(p)) == 2 and row_shape(p)[0] == ds.n_rows for p in parts):
        warnings.warn(per_sample_table_warning(ds.n_rows, "data rows"), UserWarning,
                      stacklevel=user_stacklevel())


#: Players listed per target in ``summary.json`` (the largest mean absolute credits).
SUMMARY_TOP = 20


def credit_summary(result: Attribution, top: int = SUMMARY_TOP) -> list[dict[str, Any]]:
    """Global importance of a finished job, one entry per target slot, for ``summary.json``.

    Each entry lists up to ``top`` players by mean absolute credit over the rows (the usual
    global importance, e.g. Lundberg et al. 2020's summary plots), with their mean signed credit
    and ``n_rows``, the rows with a finite credit for that player (a row whose credit is NaN, e.g.
    an input the method could not explain, is left out of that player's means, not read as 0).
    ``targets`` gives the classes explained in that slot (up to 10; more are counted) as output
    columns; for a classifier whose classes are not ``0..K-1`` (``classes_ = [0, 2, 5]``, or
    strings) ``classes`` names them (``by_target`` entries get ``class``). A slot
    whose rows explain different classes (per-row targets such as the predicted class) also
    holds ``by_target``: the same ranking over the rows of each class (up to 10 classes), since
    a credit towards one class and a credit towards another are not one quantity.
    """
    flat = result.flat()  # rows x targets x players
    names = list(result.player_names)
    labels = result.extra.get("class_labels")  # a classifier's classes_ when not 0..K-1
    out: list[dict[str, Any]] = []
    for t in range(flat.shape[1]):
        entry: dict[str, Any] = {"slot": t, "players": _ranking(flat[:, t, :], names, top)}
        if result.targets is not None:
            tg = np.asarray(result.targets).reshape(flat.shape[0], -1)[:, t]
            classes = np.unique(tg)
            entry["targets"] = [int(c) for c in classes[:10]]
            if labels is not None:  # the output columns above are these classes
                entry["classes"] = [labels[int(c)] for c in classes[:10]]
            if classes.size > 10:
                entry["targets_more"] = int(classes.size - 10)
            if classes.size > 1:
                entry["by_target"] = [
                    {"target": int(c), **({"class": labels[int(c)]} if labels is not None else {}),
                     "rows": int((tg == c).sum()),
                     "players": _ranking(flat[tg == c, t, :], names, top)}
                    for c in classes[:10]]
        out.append(entry)
    return out


def _ranking(block: np.ndarray, names: list[str], top: int) -> list[dict[str, Any]]:
    """Players of ``block`` (rows x players) by mean absolute credit over their finite rows."""
    finite = np.isfinite(block)
    counts = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite, block, 0.0).sum(axis=0) / counts
        mean_abs = np.where(finite, np.abs(block), 0.0).sum(axis=0) / counts
    order = sorted(range(len(names)), key=lambda j: (not np.isfinite(mean_abs[j]), -mean_abs[j], j))
    return [{"player": names[j], "mean_abs": _json_float(mean_abs[j]), "mean": _json_float(mean[j]),
             "n_rows": int(counts[j])} for j in order[:top]]


def _json_float(v: float) -> float | None:
    """``v`` to 8 significant digits (credits of 1e-9 stay 1e-9), None when not finite."""
    return float(f"{float(v):.8g}") if np.isfinite(v) else None


def _rows(spec: JobSpec, index: int) -> int:
    lo, hi = spec.bounds(index)
    return hi - lo


def _manifest(spec: JobSpec) -> dict[str, Any]:
    from ..version import __version__

    return {
        "format": FORMAT,
        "tribute_version": __version__,
        "tribute_code": code_digest(),
        "settings": {
            "method": spec.method,
            "seed": spec.seed,
            "shard_size": spec.shard_size,
            "threads": spec.threads,
            "explain": canonical(spec.explain_kwargs),
            "method_params": {k: _canonical_or_repr(v)
                              for k, v in method_settings(spec.method, spec.explain_kwargs).items()},
        },
        "model": {"sha256": spec.model_sha256, **spec.model.describe()},
        "data": {**spec.data.fingerprint(), "source": spec.data.source},
        "shards": spec.n_shards,
    }


def _canonical_or_repr(value: Any) -> Any:
    """A hyperparameter for the manifest: :func:`canonical`, else its ``repr`` (an object
    default such as an LRP composite)."""
    try:
        return canonical(value)
    except InputError:
        return repr(value)


def _check_out(out: Path, manifest: dict[str, Any], resume: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"out: {str(out)!r} is a file; give a folder.")
    if not out.exists():
        return
    old = read_manifest(out)
    if old is None:
        leftovers = [p for p in out.iterdir() if not _is_temporary(p)]
        if leftovers:
            names = sorted(p.name for p in leftovers)[:5]
            raise InputError(
                f"out: folder {str(out)!r} is not empty ({names}) and holds no tribute job; choose an "
                "empty or new folder."
            )
        return
    if not resume:
        raise InputError(
            f"out: folder {str(out)!r} already holds a job (method {old['settings'].get('method')!r}, "
            f"{old['data'].get('rows')} rows); pass resume=True (--resume) to continue it, or choose "
            "another folder."
        )
    if "method_params" not in old.get("settings", {}):
        raise InputError(
            f"out: folder {str(out)!r} holds a job written by an earlier tribute that did not "
            f"record every setting of method {old['settings'].get('method')!r}; defaults may "
            "have changed since (gp_shapley's nngp did), so resuming could mix shards computed "
            "two ways. Start the job anew in another folder (or delete this one).")
    # Data source paths may differ between runs (same bytes elsewhere): compare content only.
    # Likewise how the model is handed over (a factory spec, which the processes and ray
    # backends rebuild, or the object, which the local backend can use): its fingerprint and
    # probe decide, so a job resumes on another backend with the same model.
    diffs = [d for d in compare_manifests(old, manifest)
             if not d.startswith(("data.source", "model.weights", "model.factory", "model.object",
                                  "model.probe"))]
    # the probe is the model's outputs on the first data rows: other data rows answer otherwise
    # whatever the model, and the data's own difference is reported already
    same_data = not any(d.startswith("data.") and not d.startswith("data.source") for d in diffs)
    # likewise a model whose fingerprint changed (other weights): its outputs differ, and saying
    # its fingerprint "did not" change contradicted the line before (aud52j)
    same_model = not any(d.startswith("model.sha256") for d in diffs)
    if same_data and same_model and not probes_agree(old.get("model", {}).get("probe"), manifest["model"].get("probe")):
        before, after = (probe_values(old["model"]["probe"]),
                         probe_values(manifest["model"]["probe"]))
        k = next((i for i, (a, b) in enumerate(zip(before, after)) if a != b), 0)
        diffs.append(
            f"the model's outputs on the first {PROBE_ROWS} data rows changed (output value {k}: "
            f"{_short_probe(before[k:])} -> {_short_probe(after[k:])}), although its fingerprint "
            "(class and weights, or pickled object) did not: its code computes something else now")
    if diffs:
        raise InputError(
            f"out: folder {str(out)!r} holds a job with different settings, so it cannot be "
            f"resumed: {'; '.join(diffs[:6])}. Rerun with the original settings, or choose another "
            "folder for the new job."
        )
    if old.get("tribute_code") not in (None, manifest["tribute_code"]):
        import warnings

        # the same version string (a version change is refused above): a development checkout
        # whose code changed since the job started; a method it changed would give the shards
        # computed from now on other numbers than the finished ones (aud49j)
        warnings.warn(
            f"out: the job in {str(out)!r} was started by other tribute code (same version "
            f"{manifest['tribute_version']}, source digest {old['tribute_code'][:12]} -> "
            f"{manifest['tribute_code'][:12]}); if the change touched how method "
            f"{manifest['settings']['method']!r} computes, shards finished before and after it "
            "differ. Resuming; to be sure of one computation, run the job anew in another folder.",
            UserWarning, stacklevel=3)


def _code_changed(out: Path, manifest: dict[str, Any]) -> bool:
    """Whether the job in ``out`` was started by other tribute code than this one (another
    source digest under the same version, or a manifest that predates the digest)."""
    old = read_manifest(out)
    return old is not None and old.get("tribute_code") != manifest["tribute_code"]


def _check_recomputed_shard(out: Path, spec: JobSpec, done: list[int], model: Any) -> None:
    """Compute a finished shard again (the one of fewest rows) with this tribute code and refuse
    the resume, before any pending shard runs, when it differs from the shard's file: the
    credits' dtype, shape, players, targets, ``n_evals`` or any value. Nothing is written."""
    import tempfile

    from .shards import run_shard

    k = min(done, key=lambda i: (_rows(spec, i), i))
    stored = Attribution.load(shard_path(out, k))

    def computed() -> Attribution:
        payload = run_shard(spec, k, model=model)
        with tempfile.TemporaryDirectory(prefix="tribute-check-") as tmp:
            (Path(tmp) / "shard.npz").write_bytes(payload)
            return Attribution.load(Path(tmp) / "shard.npz")

    fresh = computed()
    found = _shard_differences(stored, fresh)
    if found:
        # rev52j: what this code itself does not reproduce (a model random outside torch's
        # generator, seeded per shard: numpy's global noise) cannot tell two codes apart; such a
        # job, resumable by the same code, was refused for "values up to 0.000894 apart"
        unstable = _shard_differences(fresh, computed())
        found = {what: said for what, said in found.items() if what not in unstable}
    diffs = list(found.values())
    if diffs:
        lo, hi = spec.bounds(k)
        raise InputError(
            f"out: the job in {str(out)!r} was started by other tribute code, which computed "
            f"otherwise: shard {k} (rows {lo}..{hi - 1}) computed again by this code differs from "
            f"its file: {'; '.join(diffs)}. Resuming would merge shards computed two ways, so no "
            "pending shard was computed and nothing was written. Run the job anew in another "
            "folder (or finish it with the tribute code that started it).")


def _shard_differences(stored: Attribution, fresh: Attribution) -> dict[str, str]:
    """What differs between a shard's file (``stored``) and the same shard computed again, by
    field: the credits, and the per-row by-products (``base_values``, ``gap``...) and ``extra``
    entries both hold (one that only one of them holds is new or dropped bookkeeping)."""
    diffs: dict[str, str] = {}
    if stored.method != fresh.method:
        diffs["method"] = f"method {stored.method!r} -> {fresh.method!r}"
    if stored.layout.dtype != fresh.layout.dtype:
        diffs["dtype"] = f"credits dtype {stored.layout.dtype} -> {fresh.layout.dtype}"
    if stored.player_names != fresh.player_names:
        diffs["players"] = f"players {stored.player_names[:4]} -> {fresh.player_names[:4]}"
    if replace(stored.layout, dtype="", channel_axis=None) != replace(fresh.layout, dtype="", channel_axis=None):
        diffs["layout"] = "the credits' layout"
    if stored.n_evals != fresh.n_evals:
        diffs["n_evals"] = f"n_evals {stored.n_evals} -> {fresh.n_evals}"
    pairs: list[tuple[str, Any, Any, bool]] = [
        ("values", stored.flat(), fresh.flat(), True),
        ("stderr", stored.flat_stderr(), fresh.flat_stderr(), True),
        ("targets", stored.targets, fresh.targets, True)]
    # rev52j: a code change that moved only these (v(empty) by 1e-3) was merged behind the warning
    pairs += [(name, getattr(stored, name), getattr(fresh, name), False)
              for name in ("base_values", "full_values", "gap", "groups")]
    pairs += [(f"extra {key!r}", stored.extra[key], fresh.extra[key], False)
              for key in sorted(set(stored.extra) & set(fresh.extra))]
    for name, a, b, required in pairs:
        if a is None or b is None:
            if required and (a is None) != (b is None):
                diffs[name] = (f"{name} {'absent' if a is None else 'present'} -> "
                               f"{'absent' if b is None else 'present'}")
            continue
        said = _value_difference(name, a, b)
        if said:
            diffs[name] = said
    return diffs


def _value_difference(name: str, a: Any, b: Any) -> str | None:
    """How ``a`` (stored) and ``b`` (computed again) differ, or None when they are equal (NaN
    equal to NaN)."""
    if isinstance(a, dict) or isinstance(b, dict) or isinstance(a, (str, bytes)) or isinstance(b, (str, bytes)):
        from .merge import _equal

        return None if _equal(a, b) else f"{name} differ"
    try:
        a, b = np.asarray(a), np.asarray(b)
    except Exception:  # ragged lists and the like
        from .merge import _equal

        return None if _equal(a, b) else f"{name} differ"
    if a.shape != b.shape:
        return f"{name} of shape {a.shape} -> {b.shape}"
    floats = a.dtype.kind in "fc" and b.dtype.kind in "fc"
    if a.dtype.kind == "O" or b.dtype.kind == "O":
        from .merge import _equal

        return None if _equal(a.tolist(), b.tolist()) else f"{name} differ"
    if np.array_equal(a, b, equal_nan=floats):
        return None
    if floats:
        gap = np.abs(a.astype(np.float64) - b.astype(np.float64))
        gap = np.where(np.isnan(gap), np.inf, gap)
        return f"{name} up to {float(gap.max()):.3g} apart"
    return f"{name} differ"


def _short_probe(probe: Any) -> str:
    vals = list(probe or [])
    return "[" + ", ".join(f"{v:.6g}" for v in vals[:3]) + (", ...]" if len(vals) > 3 else "]")


def _is_temporary(p: Path) -> bool:
    if p.is_file():
        return p.match(".*.tmp-*")
    if p.is_dir() and p.name == SHARDS_DIR:
        return all(_is_temporary(q) and q.is_file() for q in p.iterdir())
    return False


def _check_options(method: str, backend: str, address: str | None, workers: int,
                   shard_size: int | None, seed: int, max_retries: int, threads: int | None,
                   explain_kwargs: dict[str, Any]) -> None:
    from ..methods.base import get_method

    if backend not in BACKENDS:
        raise InputError(f"backend={backend!r} is not one of {list(BACKENDS)}.")
    for name, val, allow_none in (("workers", workers, False), ("shard_size", shard_size, True),
                                  ("threads", threads, True)):
        if val is None and allow_none:
            continue
        if not isinstance(val, int) or isinstance(val, bool) or val < 1:
            raise InputError(f"{name}={val!r} must be a positive int.")
    if backend == "local" and workers != 1:
        raise InputError(
            f"workers={workers} needs backend='processes' or 'ray'; the local backend runs one shard "
            "at a time in this process."
        )
    if address is not None and backend != "ray":
        raise InputError(f"address={address!r} is a Ray cluster address; pass backend='ray' with it.")
    if not isinstance(max_retries, int) or max_retries < 0:
        raise InputError(f"max_retries={max_retries!r} must be a non-negative int.")
    for reserved in ("inputs", "progress", "players"):
        if reserved in explain_kwargs:
            raise InputError(
                f"explain_dataset: {reserved!r} is not an argument a dataset job takes (inputs come "
                "from data, the job draws its own progress bar, and component players are not "
                "supported by dataset jobs yet)."
            )
    # Fail before anything is written: unknown method or hyperparameters.
    cls = get_method(method)
    explain_args = _explain_args()
    unknown = set(explain_kwargs) - explain_args - set(cls.defaults())
    if unknown:
        raise InputError(
            f"method {method!r} got unknown parameter(s) {sorted(unknown)}; its parameters are "
            f"{sorted(cls.defaults()) or 'none'}, and explain takes {sorted(explain_args)}."
        )


def _explain_args() -> set[str]:
    """Keyword arguments of :func:`tribute.explain` a job passes through to every shard."""
    import inspect

    from ..api import explain

    own = {"model", "inputs", "method", "seed", "progress", "players"}
    return {name for name, p in inspect.signature(explain).parameters.items()
            if p.kind is not inspect.Parameter.VAR_KEYWORD and name not in own}
