"""Atomic file writes with ordinary permissions (the benchmark's and the CLI's outputs).

Thin names over :func:`tribute.atomic.atomic_write` (the one implementation): a run
interrupted at any moment (Ctrl-C) leaves either the old file or the new one, never half, and
a result file gets the permissions any other file the user writes gets (``0666`` minus the
umask), not ``tempfile.mkstemp``'s ``0600``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import atomic_write, umask

__all__ = ["atomic_write_bytes", "atomic_write_text", "umask"]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically with mode ``0o666 & ~umask`` (folders created)."""
    return atomic_write(path, data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write(path, text.encode("utf-8"))
