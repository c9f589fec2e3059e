"""A weights cache in safetensors format (never pickle), written atomically.

Layout: ``<root>/models/<kind>-<dataset>-<digest>.safetensors`` with ``<root>`` from
``$TRIBUTE_CACHE``, else ``$XDG_CACHE_HOME/tribute``, else ``~/.cache/tribute``. The digest
hashes the full key (model kind, dataset fingerprint, hyperparameters, seed, torch version, and
a digest of the source of the architectures and the training loop, so weights cached by another
version of that code are retrained rather than silently reused);
the key itself and a SHA-256 of the tensors are stored in the file's metadata and checked
on load, so a truncated, corrupted or mismatched file is detected and reported as a miss.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..atomic import atomic_write
from ..errors import user_stacklevel

FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """Directory holding cached model weights (see the module docstring)."""
    root = os.environ.get("TRIBUTE_CACHE")
    if root:
        return Path(root).expanduser() / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tribute" / "models"


#: Modules whose source decides what a cached model is: the architectures and the training loop.
CODE_MODULES = ("_models.py", "_train.py")


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 (first 16 hex digits) of the source of :data:`CODE_MODULES`.

    Part of every cache key: after an upgrade that changes how a model is built or trained, the
    old weights would otherwise be loaded as if the new code had produced them. Where the source
    cannot be read (a frozen install), tribute's version stands in for it.
    """
    h = hashlib.sha256()
    try:
        for name in CODE_MODULES:
            h.update(name.encode() + b"\0" + Path(__file__).with_name(name).read_bytes())
    except OSError:
        from ..version import __version__

        return f"version-{__version__}"
    return h.hexdigest()[:16]


def cache_key(key: dict[str, Any]) -> str:
    """Canonical JSON of ``key`` (plus format and torch versions and :func:`code_digest`)."""
    full = {"format": FORMAT_VERSION, "torch": torch.__version__, "code": code_digest(), **key}
    return json.dumps(full, sort_keys=True, default=str, separators=(",", ":"))


def cache_path(directory: Path, kind: str, dataset: str, key_json: str) -> Path:
    digest = hashlib.sha256(key_json.encode()).hexdigest()[:24]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in dataset)
    return directory / f"{kind}-{safe}-{digest}.safetensors"


def _tensor_digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_state(path: Path, state: dict[str, torch.Tensor], key_json: str) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    data = st_save(tensors, metadata={"tribute_key": key_json,
                                      "tribute_sha256": _tensor_digest(tensors)})
    atomic_write(path, data, durable=True, private=True)


def load_state(path: Path, key_json: str) -> dict[str, torch.Tensor] | None:
    """Read and verify weights; ``None`` if absent. Raises ``ValueError`` if unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:  # a directory in the way, no permission, ...
        raise ValueError(f"cannot be read ({err})") from err
    try:
        state = st_load(raw)
        # safetensors.torch.load drops metadata; read the header directly.
        header_len = int.from_bytes(raw[:8], "little")
        meta = json.loads(raw[8:8 + header_len]).get("__metadata__", {})
    except Exception as err:  # SafetensorError, JSON, short file: all mean "unreadable"
        raise ValueError(f"unreadable safetensors file ({type(err).__name__}: {err})") from err
    if meta.get("tribute_key") != key_json:
        raise ValueError("the stored key does not match the requested model")
    if meta.get("tribute_sha256") != _tensor_digest(state):
        raise ValueError("tensor checksum mismatch")
    return state


def warn_cache(path: Path, problem: str, action: str) -> None:
    warnings.warn(f"tribute.datasets: cached weights {path}: {problem}; {action}",
                  RuntimeWarning, stacklevel=user_stacklevel())
