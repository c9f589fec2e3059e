"""Atomic file writes with ordinary permissions (the benchmark's and the CLI's outputs).

Thin names over :func:`tribute.atomic.atomic_write` (the one implementation): a run
interrupted at any moment (Ctrl-C) leaves either the old file or the new one, never half, and
a result file gets the permissions any other file the user writes gets (``0666`` minus the
umask), not ``tempfile.mkstemp``'s ``0600``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write, umask

__all__ = ["atomic_write_bytes", "atomic_write_text", "json_safe", "umask"]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically with mode ``0o666 & ~umask`` (folders created)."""
    return atomic_write(path, data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write(path, text.encode("utf-8"))


def json_safe(v: Any) -> Any:
    """``v`` with every non-finite float as None and numpy scalars as Python numbers, so that
    ``json.dumps(..., allow_nan=False)`` writes strict JSON (``NaN`` is not JSON: browsers'
    ``JSON.parse``, ``jq`` and most parsers other than Python's refuse the whole file)."""
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    return v
