"""The explorer's optional dependencies (Starlette, uvicorn), imported on use with an install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["INSTALL_HINT", "require"]

INSTALL_HINT = ('the explorer needs Starlette and uvicorn: pip install "tribute[explorer]" '
                "(or pip install starlette uvicorn)")


def require(name: str) -> ModuleType:
    """Import ``name`` (``"starlette"`` or ``"uvicorn"``), or raise ImportError with the hint."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(f"{INSTALL_HINT} (importing {name!r} failed: {exc})") from exc
