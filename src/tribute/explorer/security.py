"""The explorer's guards: tokens, hosts, file paths and uploads.

* **Token**: when set (always when binding beyond loopback), every request carries it in the
  ``X-Tribute-Token`` header, an ``Authorization: Bearer`` header, the ``token`` query parameter
  or the ``tribute_token`` cookie (set by the page once it was opened with ``?token=``);
  compared in constant time (:func:`hmac.compare_digest`).
* **Host**: bound to loopback, only loopback host names are served (a DNS-rebinding page cannot
  talk to the server under another name).
* **Paths**: files are served only from the configured folders; ``..``, absolute paths, NUL
  bytes, hidden names and symlinks that leave the folder are refused (checked after resolving).
* **Uploads**: at most :data:`MAX_UPLOAD_BYTES`; ``.npy`` via ``np.load(allow_pickle=False)``,
  ``.csv`` by the reader of ``--data`` (:func:`tribute.jobs.data.read_table`: the same rules for
  a header, an index column, a row-counter column and missing values; numbers only), ``.png``/
  ``.jpg`` decoded by Pillow and checked; nothing else, and pickles never.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import secrets
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["LOOPBACK_NAMES", "MAX_UPLOAD_BYTES", "UPLOAD_TYPES", "csv_header", "is_loopback",
           "load_upload", "new_token", "read_csv_upload", "resolve_under", "token_matches"]

MAX_UPLOAD_BYTES = 2 * 1024 * 1024
UPLOAD_TYPES = (".npy", ".csv", ".png", ".jpg", ".jpeg")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def new_token() -> str:
    """A fresh random token (32 url-safe characters)."""
    return secrets.token_urlsafe(24)


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a request's token with the server's."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts local connections."""
    h = host.strip("[]")
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def resolve_under(root: Path, relative: str) -> Path:
    """The file ``relative`` inside ``root``, or InputError if it would leave ``root``.

    Refuses empty names, NUL bytes, backslashes, absolute paths, ``..`` parts, hidden parts
    (``.git``) and anything whose resolved path (symlinks followed) is not inside ``root``.
    """
    if not isinstance(relative, str) or not relative or "\x00" in relative or "\\" in relative:
        raise InputError(f"path {relative!r} is not a valid relative file name.")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or relative.startswith("~"):
        raise InputError(f"path {relative!r} is absolute; give a path relative to the folder.")
    if any(part in ("..", ".") or part.startswith(".") for part in pure.parts):
        raise InputError(f"path {relative!r} may not contain '..', '.' or hidden parts.")
    base = root.resolve()
    target = (base / pure).resolve()
    if target != base and base not in target.parents:
        raise InputError(f"path {relative!r} leaves the served folder.")
    if not target.is_file():
        raise FileNotFoundError(relative)
    return target


def load_upload(name: str, data: bytes, kind: str, channels: int = 1) -> np.ndarray:
    """Decode an uploaded file into a batch of inputs (float32 for images and tables).

    Args:
        name: the file name (its suffix picks the decoder).
        data: the bytes (already bounded by the server).
        kind: the subject's kind: images accept ``.png``/``.jpg`` and ``.npy``; tables accept
            ``.csv`` and ``.npy``.
        channels: a picture's channels: 1 (gray, ``1 x H x W``) or 3 (RGB, ``1 x 3 x H x W``).
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError(f"upload: {len(data):,} bytes is over the {MAX_UPLOAD_BYTES:,}-byte limit.")
    if not data:
        raise InputError("upload: the file is empty.")
    suffix = Path(name or "").suffix.lower()
    if suffix not in UPLOAD_TYPES:
        raise InputError(f"upload: {name!r} has type {suffix or '(none)'!r}; accepted: "
                         f"{', '.join(UPLOAD_TYPES)}.")
    if suffix == ".npy":
        if not data.startswith(b"\x93NUMPY"):
            raise InputError(f"upload: {name!r} is not a valid .npy file (no NumPy header).")
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as exc:
            raise InputError(f"upload: {name!r} is not a plain .npy array (pickled objects are "
                             f"never loaded): {exc}") from None
        except Exception as exc:
            raise InputError(f"upload: {name!r} is not a valid .npy file ({exc}).") from None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
            raise InputError(f"upload: {name!r} holds dtype {getattr(arr, 'dtype', '?')}; give "
                             "numbers.")
        return arr
    if suffix == ".csv":
        if kind != "tabular":
            raise InputError(f"upload: .csv files are for tabular subjects, not {kind!r} ones.")
        return read_csv_upload(name, data)[0]
    if kind != "image":
        raise InputError(f"upload: image files are for image subjects, not {kind!r} ones.")
    return _image(name, data, channels)


def read_csv_upload(name: str, data: bytes) -> tuple[np.ndarray, list[str] | None, list[str]]:
    """An uploaded ``.csv`` read as ``--data`` reads a file (:func:`tribute.jobs.data.read_table`).

    The explorer read uploads by rules of its own: a csv with a labelled index column was
    refused, a row-counter column (``id`` = 0..n-1) passed without the warning ``--data``
    gives, a first line with an empty cell was refused with numpy's message (audit aud40x).

    Returns:
        the rows (float64, ``rows x columns``), the column names (None for a file without a
        header) and the reader's warnings (for the page; never issued as Python warnings).
    """
    from ..jobs.data import read_table

    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError(f"upload: {len(data):,} bytes is over the {MAX_UPLOAD_BYTES:,}-byte limit.")
    if not data:
        raise InputError("upload: the file is empty.")
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"upload: {name!r} is not a UTF-8 text CSV ({exc}).") from None
    notes: list[str] = []
    # the bytes go to a private folder under a fixed name: the upload's name never makes a path
    with tempfile.TemporaryDirectory(prefix="tribute-upload-") as folder:
        path = Path(folder) / "upload.csv"
        path.write_bytes(data)
        try:
            ds = read_table(path, name=name, notes=notes)
        except InputError as exc:
            raise InputError(_as_upload(str(exc))) from None
    if ds.frame is not None:
        from ..models.tabular import text_columns

        text = [str(c) for c in text_columns(ds.frame)]
        raise InputError(f"upload: {name!r} has text/categorical column(s) {text[:8]}; the "
                         "explorer explains numeric tables: encode them as numbers first.")
    arr = np.asarray(ds.arrays[0], dtype=np.float64)
    columns = list(ds.columns) if ds.columns is not None else None
    return arr, columns, [_as_upload(n) for n in notes]


def _as_upload(message: str) -> str:
    return "upload: " + message[len("data: "):] if message.startswith("data: ") else message


def csv_header(data: bytes) -> list[str] | None:
    """The column names of a CSV's first line, or None when it holds numbers (a quick look at
    the first line only; uploads are read by :func:`read_csv_upload`)."""
    text = data.decode("utf-8-sig", "replace")
    first = text.splitlines()[0] if text else ""
    fields = [c.strip().strip('"') for c in first.split(",")]
    unnamed = [str(i) for i in range(len(fields))]
    if fields == unnamed or (len(fields) > 1 and not fields[0] and fields[1:] == unnamed[:-1]):
        # the header pandas writes for unnamed columns (``0,1,2``, ``,0,1`` with the index), as
        # --data reads it: it was read as a row of data (an input of the column numbers, added
        # silently) or refused ("could not convert string '' to float64") (review rev38b)
        return fields
    if not any(f and not _is_number(f) for f in fields):
        return None  # numbers only (``nan``/``inf`` included: a data row, refused later as such)
    return fields


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _image(name: str, data: bytes, channels: int = 1) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        img: Any = Image.open(io.BytesIO(data))
        if img.width * img.height > 4096 * 4096:
            raise InputError(f"upload: image {name!r} is {img.width}x{img.height}; at most 16 "
                             "megapixels.")
        if channels == 3:  # 1 x 3 x H x W, values in [0, 1]
            return (np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0).transpose(2, 0, 1)[None]
        gray = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"upload: {name!r} is not a readable image ({exc}).") from None
    return gray[None]  # 1 x H x W
