"""Atomic file writes: one implementation for every file tribute writes.

A write goes to a temporary file in the destination folder (``.NAME.tmp-XXXXXXXX``) that is
then ``os.replace``d over the destination, so a reader (or a run interrupted at any moment,
Ctrl-C or ``kill -9``) sees either the old file or the complete new one, never half of it.
Temporaries a killed writer leaves behind match :data:`TMP_GLOB`.

Two choices a caller makes:

* ``durable``: fsync the file before the rename and the folder after it (job shards, caches
  that must survive a power cut); off for files a user can simply write again (reports).
* ``private``: keep ``tempfile.mkstemp``'s owner-only mode ``0600``; by default a written file
  gets the permissions any other file the user writes gets (``0666`` minus the umask).

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write(folder / "sub" / "a.txt", b"hello").read_bytes()
b'hello'
>>> atomic_write(folder / "b.bin", lambda fh: fh.write(b"\\x00\\x01")).stat().st_size
2
>>> sorted(p.name for p in folder.rglob(TMP_GLOB))
[]
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["TMP_GLOB", "atomic_write", "umask"]

#: Glob of the temporary files :func:`atomic_write` creates (left only by a killed writer).
TMP_GLOB = ".*.tmp-*"


def umask() -> int:
    """The process's file-creation mask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], data: bytes | Callable[[IO[bytes]], Any], *,
                 durable: bool = False, private: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (parent folders created); return the path.

    Args:
        path: the destination file.
        data: the bytes, or a function that writes them to the open binary file it is given
            (``lambda fh: numpy.savez(fh, ...)``: nothing is held twice in memory).
        durable: fsync the file before the rename and the folder after it. default=False.
        private: keep mode ``0600`` instead of ``0o666 & ~umask``. default=False.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.tmp-", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, (bytes, bytearray, memoryview)):
                fh.write(data)
            else:
                data(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if not private:
            os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(p.parent)
    return p


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
