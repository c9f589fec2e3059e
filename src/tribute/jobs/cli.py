"""Dataset mode of ``tribute explain``: ``--resume``, ``--workers``, ``--backend``, ``--shard-size``.

``tribute explain`` runs as a dataset job (see :func:`tribute.explain_dataset`) when any of
these options is given, or when ``--data`` is a ``.csv``/``.parquet`` table; it then writes
``manifest.json``, ``shards/``, ``result.npz`` (+ ``result.parquet``) and ``summary.json``
to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..params import int_at_least

#: ``--baseline background:FILE``: the file's rows are a background set whatever their count
#: (a file with one row per --data row is otherwise one baseline per sample).
BACKGROUND_PREFIX = "background:"

__all__ = ["add_job_args", "run_job", "wants_job"]

_JOB_FLAGS = ("resume", "workers", "backend", "address", "shard_size", "threads")


def add_job_args(p: argparse.ArgumentParser) -> None:
    """Add the dataset-job options to the ``explain`` parser."""
    g = p.add_argument_group("dataset jobs (any of these, or a .csv/.parquet --data, runs a resumable job)")
    g.add_argument("--resume", action="store_true", default=None,
                   help="continue the job in --out, skipping finished shards")
    g.add_argument("--workers", type=int_at_least(1, "run one shard at a time: --workers 1"), default=None,
                   help="shards computed at once (default: 1)")
    g.add_argument("--backend", choices=["local", "processes", "ray"], default=None,
                   help="where shards run (default: local, or processes when --workers > 1)")
    g.add_argument("--address", default=None, help="Ray cluster address, e.g. 'auto' or 'ray://head:10001'")
    g.add_argument("--shard-size", type=int_at_least(1, "leave it out for 64 rows per shard"), default=None,
                   help="rows per shard (default: 64)")
    g.add_argument("--threads", type=int_at_least(1, "leave it out for one torch thread per shard"), default=None,
                   help="torch threads per shard (default: 1; part of the job's settings)")


def wants_job(args: argparse.Namespace) -> bool:
    """True when ``tribute explain`` should run as a dataset job."""
    if any(getattr(args, f, None) is not None for f in _JOB_FLAGS):
        return True
    return Path(str(getattr(args, "data", ""))).suffix.lower() in (".csv", ".parquet")


def run_job(args: argparse.Namespace, *, target: Any = None, groups: Any = None,
            params: dict[str, Any] | None = None, feature_names: list[str] | None = None) -> int:
    """Run ``tribute explain`` in dataset mode; returns the exit status.

    ``target``, ``groups``, ``params`` and ``feature_names`` come parsed by the ``tribute``
    command (its ``--target``, ``--groups``, ``--param`` and ``--feature-names`` values), so
    this module never imports it back. ``--max-memory`` is passed on to every shard;
    ``--device`` is refused (a job's workers rebuild the model where its factory puts it).
    """
    import dataclasses

    from ..errors import InputError
    from .api import data_index, explain_dataset
    from .data import load_dataset

    if getattr(args, "device", None) is not None:
        raise InputError(
            f"--device {args.device!r} applies to a single call; a dataset job (a .csv/.parquet "
            "--data or a job option such as --shard-size) rebuilds the model in each worker "
            "where its factory puts it. Move the model in the factory, or drop the job options "
            "and use a .npy/.npz --data.")

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # 'pkg.module:factory' relative to where the command runs
    data = load_dataset(args.data, args.data_key)
    n_full = data.n_rows
    # the file's row labels (a .csv's index column, a .parquet's pandas index), as
    # explain_dataset reads them from a path: result.parquet named only 'row' before
    data = dataclasses.replace(data, index=data_index(args.data, n_full))
    if args.limit:
        data = data.head(args.limit)
    workers = args.workers or 1
    backend = args.backend or ("processes" if workers > 1 else "local")
    # no --baseline: tribute.explain's own default (tree_shap: the trees' path-dependent game)
    kwargs: dict[str, Any] = {"groups": _first_rows(groups, n_full, data)}
    if args.baseline is not None:
        kwargs["baseline"] = _first_rows(_baseline(args.baseline, data), n_full, data)
    if target is not None:
        kwargs["target"] = target
    for name in ("budget", "batch_size"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    if args.output != "raw":
        kwargs["output"] = args.output
    if feature_names is not None:
        kwargs["feature_names"] = feature_names  # wins over a table's header
    if getattr(args, "max_memory", None) is not None:
        kwargs["max_memory"] = args.max_memory
    if kwargs["groups"] is None:
        del kwargs["groups"]
    attr = explain_dataset(
        args.model, data, out=args.out, method=args.method, weights=args.weights, seed=args.seed,
        shard_size=args.shard_size, resume=bool(args.resume), workers=workers, backend=backend,
        address=args.address, threads=args.threads or 1,
        progress=False if args.no_progress else None, **kwargs, **(params or {}),
    )
    out = Path(args.out)
    print(f"{attr}")
    for name in ("result.npz", "result.parquet", "summary.json"):
        if (out / name).is_file():
            print(f"wrote {out / name}")
    return 0


def _first_rows(value: Any, n_full: int, data: Any) -> Any:
    """A per-row option (a baseline or groups mask with one row per row of the whole data file,
    of the data's rank; a tuple of them for several inputs) cut to the rows ``--limit`` kept.

    Without it, a per-sample baseline of the file's length met fewer rows and was read as a
    background set, averaging every row's baseline into each credit."""
    n = data.n_rows
    parts = value if isinstance(value, tuple) else (value,)
    arrays = data.arrays
    if n >= n_full or len(parts) != len(arrays) or not all(
            getattr(v, "shape", None) is not None and len(v.shape) == a.ndim and v.shape[0] == n_full
            for v, a in zip(parts, arrays)):
        return value
    cut = tuple(v[:n] for v in parts)
    return cut if isinstance(value, tuple) else cut[0]


def background_file(text: str) -> str:
    """The file named by ``--baseline background:FILE`` (an InputError when none is)."""
    from ..errors import InputError

    path = text[len(BACKGROUND_PREFIX):].strip()
    if not path:
        raise InputError(f"--baseline {text!r}: background: needs a file name, e.g. "
                         "--baseline background:bg.npy (its rows are the background set).")
    return path


def _baseline(text: str, data: Any) -> Any:
    """``--baseline``: a number, ``mean`` (over every row of the data set), a ``.npy`` file or
    an ``.npz`` holding one array (read as for a single call: errors name ``--baseline``), or
    ``background:FILE`` (its rows a background set, whatever their count)."""
    from ..errors import InputError
    from ..games.features import Background

    if text.startswith(BACKGROUND_PREFIX):
        from .data import load_array, load_dataset

        path = background_file(text)
        if path.lower().endswith((".csv", ".parquet")):  # rows of a table, text columns included
            rows = load_dataset(path, multi=False)
            if rows.frame is None and data.columns is not None and rows.columns is not None:
                # numbers only, for a table: a table still, so its columns are checked against
                # the data's (read by position, a background with the columns in another order
                # was silently misaligned: aud39j) and, for a table with text columns, the
                # refusal names the columns it lacks (not 'not an array'); with the file's own
                # integer / bool columns (a float64 frame holding 1.0 for the data's integer 1
                # has two readings, refused for a model that reads dtypes: aud51t)
                import numpy as np
                import pandas as pd

                from ..models.tabular import typed_frame

                frame = typed_frame(np.asarray(rows.arrays[0], dtype=np.float64), list(rows.columns),
                                    dict(rows.dtypes or {})) if rows.dtypes else \
                    pd.DataFrame(rows.arrays[0], columns=list(rows.columns))
                return Background(frame)
            return Background(rows.frame if rows.frame is not None else rows.arrays[0])
        return Background(load_array(path, arg="--baseline"))
    if text == "mean":
        if data.frame is not None:
            raise InputError(
                f"--baseline mean: {data.source} has text/categorical columns, which have no mean. "
                "Give a background set of the table's rows: --baseline background:ROWS.csv (or "
                ".parquet), or a method that reads no baseline (tree_shap).")
        if len(data.arrays) > 1:
            return tuple(a.mean(0) for a in data.arrays)
        return data.arrays[0].mean(0)
    if text.lower().endswith((".npy", ".npz")):
        from .data import load_array

        return load_array(text, arg="--baseline")
    try:
        return float(text)
    except ValueError as exc:
        raise InputError(f"--baseline {text!r}: give a number, 'mean', a .npy/.npz file or "
                         "background:FILE (a background set).") from exc
