"""Crash-safe file writes and byte-reproducible ``.npz`` archives.

``atomic_write`` is :func:`tribute.atomic.atomic_write` with ``durable=True``: a temporary
file in the destination folder (``.NAME.tmp-XXXXXXXX``), fsynced, ``os.replace``d over the
destination, then the folder fsynced: a reader sees either the old file or the complete new
one, also after ``kill -9`` or a power cut. Temporaries left by a killed writer match
:data:`TMP_GLOB` and are removed by :func:`clean_temporaries`.

``deterministic_npz`` rewrites an ``.npz`` (a zip of ``.npy`` members) with members in name
order, a fixed timestamp (1980-01-01) and fixed deflate settings, so equal arrays give equal
bytes (``numpy.savez`` stamps each member with the current time).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from ..atomic import TMP_GLOB
from ..atomic import atomic_write as _atomic_write

__all__ = ["TMP_GLOB", "atomic_write", "clean_temporaries", "deterministic_npz"]

_EPOCH = (1980, 1, 1, 0, 0, 0)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably."""
    _atomic_write(path, data, durable=True)


def clean_temporaries(folder: Path) -> list[Path]:
    """Remove temporaries a killed writer left in ``folder`` (not recursive); return them."""
    removed = []
    if folder.is_dir():
        for p in sorted(folder.glob(TMP_GLOB)):
            if p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def deterministic_npz(data: bytes) -> bytes:
    """Re-pack an ``.npz`` archive so its bytes depend only on its members' contents."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in sorted(src.namelist()):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, src.read(name), compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
    return out.getvalue()
