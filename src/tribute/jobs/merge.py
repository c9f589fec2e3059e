"""Merging finished shards into one result, reproducibly.

``result.npz`` is an :class:`~tribute.Attribution` (load it with ``tribute.Attribution.load``)
whose arrays are the shards' concatenated in shard order, with ``extra["row_index"]`` the row
of the data set each result row belongs to. ``n_evals`` (per input) is the most any shard spent;
where shards spent different numbers (methods that draw coalitions and drop repeats),
``extra["n_evals_by_row"]`` gives each row's own. Its header carries no wall-clock time
(``seconds`` is 0; timings live in ``summary.json``) and the archive is re-packed with fixed
timestamps, so the file's bytes depend only on the shards' contents — a job killed and resumed
any number of times ends with the same bytes as an uninterrupted run.
"""

from __future__ import annotations

import errno
import shutil
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..attribution import Attribution
from ..errors import InputError, TributeError, user_stacklevel
from ._io import atomic_write
from .shards import attribution_bytes

__all__ = ["RESULT", "merge_shards", "result_write_error", "shard_path", "write_parquet"]

RESULT = "result.npz"
SHARDS_DIR = "shards"


def shard_path(out: Path, index: int) -> Path:
    return out / SHARDS_DIR / f"shard-{index:06d}.npz"


def _rows_by_key(d: Any, ref: dict[Any, Any], rows: int) -> bool:
    """``d`` has ``ref``'s keys, each an array of ``rows`` rows (one per sample of a shard)."""
    return isinstance(d, dict) and list(d) == list(ref) and all(
        isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == rows for v in d.values())


def _equal(a: Any, b: Any) -> bool:
    """``a == b`` for extra values that may hold arrays (where ``==`` has no truth value)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def merge_shards(out: Path, n_shards: int, params: dict[str, Any], index: Any = None) -> Attribution:
    """Concatenate ``shards/shard-*.npz`` into ``result.npz`` (atomically) and return it.

    ``index``: the data's row labels (a ``pandas.Index``), stored as the result's
    :attr:`~tribute.Attribution.index` (as :func:`tribute.explain` keeps a DataFrame's), or None."""
    parts: list[Attribution] = []
    for k in range(n_shards):
        p = shard_path(out, k)
        try:
            parts.append(Attribution.load(p))
        except Exception as exc:
            raise InputError(
                f"merge: shard file {str(p)!r} cannot be read ({type(exc).__name__}: {exc}); delete it "
                "and resume the job to recompute that shard."
            ) from exc
    first = parts[0]
    for k, a in enumerate(parts[1:], start=1):
        if a.layout.dtype != first.layout.dtype and a.method == first.method:
            # aud49j: a job started before a tribute update and resumed after it; the credits
            # were computed two ways (blamed on a hand-edited folder before)
            raise InputError(
                f"merge: shard {k} holds {a.layout.dtype} credits and shard 0 {first.layout.dtype}: "
                "the shards were computed by different tribute code (a job resumed after an "
                "update), or the folder was modified by hand, and cannot be merged. Start the job "
                "again in an empty folder.")
        # (channel_axis aside: shards written before layouts recorded it lack it, aud51v)
        if a.player_names != first.player_names or a.method != first.method or \
                replace(a.layout, channel_axis=None) != replace(first.layout, channel_axis=None):
            raise InputError(
                f"merge: shard {k} does not match shard 0 (method, players or layout differ); the "
                "output folder was modified by hand. Start the job again in an empty folder."
            )
    values = np.concatenate([a.flat() for a in parts], axis=0)
    stderrs = [a.flat_stderr() for a in parts]
    stderr: np.ndarray | None = None
    if all(s is not None for s in stderrs):
        stderr = np.concatenate([s for s in stderrs if s is not None], axis=0)
    counts = [a.flat().shape[0] for a in parts]
    extra: dict[str, Any] = {}
    for key, val in first.extra.items():
        if isinstance(val, np.ndarray) and all(isinstance(a.extra.get(key), np.ndarray) for a in parts):
            arrs = [np.asarray(a.extra[key]) for a in parts]
            if all(x.ndim >= 1 and x.shape[0] == c for x, c in zip(arrs, counts)):
                extra[key] = np.concatenate(arrs, axis=0)
            elif all(np.array_equal(x, arrs[0]) for x in arrs):
                extra[key] = arrs[0]
        elif isinstance(val, dict) and val and all(_rows_by_key(a.extra.get(key), val, c)
                                                   for a, c in zip(parts, counts)):
            # aud44o: a dict of per-sample arrays (joint_shapley's {set: batch x targets}), which
            # save/load now keep as arrays, is concatenated key by key
            extra[key] = {k: np.concatenate([np.asarray(a.extra[key][k]) for a in parts], axis=0)
                          for k in val}
        elif all(_equal(a.extra.get(key), val) for a in parts):
            extra[key] = val
    extra["row_index"] = np.arange(values.shape[0], dtype=np.int64)
    if len({a.n_evals for a in parts}) > 1:
        # n_evals is per input: shards of a method whose count depends on its draws (banzhaf,
        # lime, rise, permutation_shapley drop repeated coalitions) spent different numbers, and
        # the merged n_evals (their maximum) overstated most rows' cost (aud52j: 34 reported, 30.6
        # per row spent); each row's own count, as its shard spent it
        extra["n_evals_by_row"] = np.repeat(np.asarray([a.n_evals for a in parts], dtype=np.int64), counts)
    merged = Attribution(
        values=first.layout.to_user(values),
        stderr=None if stderr is None else first.layout.to_user(stderr),
        method=first.method,
        params=_merged_params(parts, params),
        n_evals=max(a.n_evals for a in parts),
        n_rows=sum(a.n_rows for a in parts),
        seconds=0.0,
        player_names=list(first.player_names),
        player_kind=first.player_kind,
        targets=_concat([a.targets for a in parts], "targets", per_row=True),
        gap=_concat([a.gap for a in parts], "gap", per_row=True),
        # groups: one mask for every sample (1-D) or one per sample (2-D, batch first)
        groups=_concat([a.groups for a in parts], "groups",
                       per_row=first.groups is not None and np.asarray(first.groups).ndim == 2),
        layout=replace(first.layout, channel_axis=_channel_axis(parts)),
        extra=extra,
        # v(no player) / v(all players) are reported by a call only when its method happened
        # to evaluate that coalition: LIME's random coalitions include the empty one in some
        # shards and not in others, so these are kept only when every shard has them.
        base_values=_concat([a.base_values for a in parts], "base_values", per_row=True, optional=True),
        full_values=_concat([a.full_values for a in parts], "full_values", per_row=True, optional=True),
        index=None if index is None else list(index),
    )
    _write_result(out / RESULT, attribution_bytes(merged))
    return Attribution.load(out / RESULT)


def result_write_error(path: Path, nbytes: int | None, exc: OSError) -> TributeError:
    """The error for a merged result (``result.npz``, ``result.parquet``, ``summary.json``) that
    could not be written: the folder, the bytes needed and free, and that the shards are kept
    for a resume. Before: the raw ``OSError: [Errno 28] No space left on device``. Nothing
    partial is left: the atomic write removes its temporary."""
    folder = path.parent
    need = f"{nbytes:,} bytes needed" if nbytes is not None else ""
    try:
        free = f"{shutil.disk_usage(folder).free:,} bytes free"
    except OSError:
        free = ""
    sizes = f" ({', '.join(x for x in (need, free) if x)})" if need or free else ""
    full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    why = "the disk is full" if full else f"{type(exc).__name__}: {exc}"
    return TributeError(
        f"out: writing the merged result {path.name!r} in {str(folder)!r} failed: {why}{sizes}. "
        f"No partial {path.name} was left, and every finished shard is kept in "
        f"{str(folder / SHARDS_DIR)!r}: free space (or fix the folder), then rerun with "
        "resume=True / --resume to merge them without recomputing any.")


def _write_result(path: Path, data: bytes) -> None:
    try:
        atomic_write(path, data)
    except OSError as exc:  # disk full, quota, folder made read-only after the shards
        raise result_write_error(path, len(data), exc) from exc


def _merged_params(parts: list[Attribution], job_params: dict[str, Any]) -> dict[str, Any]:
    """Shard 0's params, the job's own, and ``shard_params`` for the keys shards differ on.

    ``baseline_digest`` fingerprints one call's baselines: per-sample baselines give every
    shard its own, and no shard's describes the merged rows, so it is kept only when all
    shards agree (a shared baseline or background)."""
    merged = {**parts[0].params, **_differing_params(parts, set(job_params) | {"baseline_digest"}),
              **job_params}
    digests = {a.params.get("baseline_digest") for a in parts}
    if len(digests) > 1:
        merged.pop("baseline_digest", None)
    return merged


def _differing_params(parts: list[Attribution], job_keys: set[str]) -> dict[str, Any]:
    """``{"shard_params": {key: [value of shard 0, shard 1, ...]}}`` for the parameters whose
    values differ between shards (empty when they all agree).

    Shards run the same settings but a method may decide a path per call from its size: e.g.
    ``shapley`` hands a shard over to ``kernel_shap`` when that shard's fits exceed
    ``max_solve_flops`` while the last, shorter shard keeps the GP. The merged ``params`` keep
    shard 0's values at the top level (as before) and say here which shards ran otherwise;
    a key a shard lacks shows as ``None``. Keys the job sets itself (``job_keys``: the job's
    ``seed``, whose per-shard values are ``SeedSequence([seed, shard])`` by design) are left
    out. Deterministic: only the shards' contents count."""
    keys: list[str] = []
    for a in parts:
        keys.extend(k for k in a.params if k not in keys and k not in job_keys)
    differ = {}
    for key in keys:
        vals = [a.params.get(key) for a in parts]
        if any(v != vals[0] for v in vals[1:]):
            differ[key] = vals
    return {"shard_params": differ} if differ else {}


def write_parquet(attr: Attribution, path: Path, index: Any = None) -> Path | None:
    """One row per data row: ``row``, the data's index (``index``: a ``pandas.Index``, one
    column per level named after it, ``index`` / ``level_i`` when unnamed as
    ``DataFrame.reset_index`` names them, ``index:NAME`` where a name is already a column
    here), the explained class (``target``; ``target:t0``,
    ``target:t1``, ... with several targets), then a column per player (and target), then
    ``stderr:`` columns. With several targets, ``t{i}`` is the position in the target list
    (``--target 0,2``: ``t1`` holds class 2, as ``target:t1`` says). For a classifier whose
    classes are not ``0..K-1`` (``classes_ = [0, 2, 5]`` or strings) the target column holds the
    class and ``target_column`` (``target:t0_column``...) the model's output column. Players are
    named ``j:name`` (position and name) when a name repeats or is one of these columns' (a
    table column ``row`` or ``target``). Returns None when pandas/pyarrow are not installed."""
    try:
        import pandas as pd
        import pyarrow  # noqa: F401
    except ImportError:
        return None
    flat = attr.flat()
    n, t, p = flat.shape
    names = attr.player_names or [f"p{j}" for j in range(p)]
    se = attr.flat_stderr()

    def columns(names: list[str]) -> list[str]:
        return names if t == 1 else [f"t{i}:{nm}" for i in range(t) for nm in names]

    # the columns written beside the players' (aud49j: a table column named "row" or "target"
    # made pandas refuse the frame after every shard had run: "cannot insert row, already exists")
    taken = {"row"}
    if attr.targets is not None:
        tnames = ["target"] if t == 1 else [f"target:t{i}" for i in range(t)]
        taken |= set(tnames)
        if attr.extra.get("class_labels") is not None:
            taken |= {f"{c}_column" for c in tnames}
    taken |= {f"stderr:{c}" for c in columns(names)} if se is not None else set()
    if len(set(names)) != len(names) or taken & set(columns(names)):
        names = [f"{j}:{nm}" for j, nm in enumerate(names)]
    cols = columns(names)
    frame = pd.DataFrame(flat.reshape(n, t * p), columns=cols)
    if se is not None:
        frame = pd.concat([frame, pd.DataFrame(se.reshape(n, t * p), columns=[f"stderr:{c}" for c in cols])], axis=1)
    if attr.targets is not None:  # which class each row's credits explain
        tg = np.asarray(attr.targets).reshape(n, -1)
        if tg.shape[1] == t:
            tcols = ["target"] if t == 1 else [f"target:t{i}" for i in range(t)]
            labels = attr.extra.get("class_labels")  # a classifier's classes_ when not 0..K-1
            for i in reversed(range(t)):
                if labels is not None:  # the class, as to_pandas() names it; the column beside it
                    frame.insert(0, f"{tcols[i]}_column", tg[:, i])
                    frame.insert(0, tcols[i], [labels[int(c)] for c in tg[:, i]])
                else:
                    frame.insert(0, tcols[i], tg[:, i])
    if index is not None:  # the data's labels, to join the results back to the data
        levels = [index.get_level_values(i) for i in range(index.nlevels)]
        for i in reversed(range(index.nlevels)):
            name = levels[i].name
            name = str(name) if name is not None else ("index" if index.nlevels == 1 else f"level_{i}")
            if name in frame.columns or name == "row":
                name = f"index:{name}"
            frame.insert(0, name, _parquet_level(levels[i], name))
    frame.insert(0, "row", np.asarray(attr.extra.get("row_index", np.arange(n))))
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    _write_result(path, buf.getvalue())
    return path


def _parquet_level(level: Any, name: str) -> Any:
    """One level of the data's index as a parquet column: its values as they are, or, for a
    level of mixed types that parquet cannot hold in one column (``[1, "a", 2]``; pyarrow
    refused it after every shard had run), their text with a warning naming the level."""
    import pyarrow as pa

    values = np.asarray(level)
    try:
        pa.array(level.to_series(index=None) if hasattr(level, "to_series") else values,
                 from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        kinds = sorted({type(v).__name__ for v in values.tolist()})
        warnings.warn(
            f"result.parquet: the data's index level {name!r} mixes value types {kinds} that one "
            f"parquet column cannot hold ({type(exc).__name__}); its column holds the values' text "
            "(str(value)). Give the level one type to keep it as it is.", UserWarning,
            stacklevel=user_stacklevel())
        return np.asarray([str(v) for v in values.tolist()], dtype=object)
    return values


def _concat(arrs: list[Any], name: str, per_row: bool, optional: bool = False) -> np.ndarray | None:
    """The shards' ``name`` arrays as one. ``optional``: a by-product some shards may lack
    (None then, as for a single call that did not compute it); else a shard lacking it means
    the folder was mixed by hand."""
    if all(a is None for a in arrs) or (optional and any(a is None for a in arrs)):
        return None
    if any(a is None for a in arrs):
        raise InputError(f"merge: some shards have {name} and others not; start the job again in an empty folder.")
    np_arrs = [np.asarray(a) for a in arrs]
    if per_row:
        return np.concatenate(np_arrs, axis=0)
    if all(np.array_equal(a, np_arrs[0]) for a in np_arrs):
        return np_arrs[0]
    raise InputError(f"merge: the shards' {name} arrays differ although they are shared by all rows.")


def _channel_axis(parts: list[Attribution]) -> int | None:
    """The shards' recorded image channel axis (``Layout.channel_axis``): the one they agree on,
    None where none records one (or, by hand-edited files, they differ)."""
    axes = {a.layout.channel_axis for a in parts if a.layout.channel_axis is not None}
    return axes.pop() if len(axes) == 1 else None
