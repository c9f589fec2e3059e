"""Estimators. Each module registers its methods with :func:`register`; all modules in this
package are imported on first use of the registry, so adding a method is one file."""

from __future__ import annotations

from .base import Method, MethodInfo, Tags, alias, get_method, method_info, register, registry

__all__ = ["Method", "MethodInfo", "Tags", "alias", "get_method", "method_info", "register", "registry"]
