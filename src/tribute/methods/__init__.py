"""Estimators. Each module registers its methods with :func:`register`; all modules in this
package are imported on first use of the registry, so adding a method is one file."""

from __future__ import annotations

import sys
import types
from typing import Any

from .base import Method, MethodInfo, Tags, alias, get_method, method_info, register, registry

__all__ = ["Method", "MethodInfo", "Tags", "alias", "get_method", "method_info", "register", "registry"]


class _MethodsModule(types.ModuleType):
    """Lets the package itself be called: ``tribute.methods()`` is the registry listing.

    ``tribute.methods`` stays the package (``import tribute.methods.base as b`` works) and
    still reads as the function the public API promises.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, MethodInfo]:
        from ..api import methods

        return methods(*args, **kwargs)


sys.modules[__name__].__class__ = _MethodsModule
