"""Estimators. Each module registers its methods with :func:`register`; all modules in this
package are imported on first use of the registry, so adding a method is one file.

Plugin authors import the contract from here::

    from tribute.methods import Method, Tags, register
    from tribute.params import Interval

``tribute.methods`` *as an attribute of the package* is the listing function
(:func:`tribute.api.methods`); the package itself is reached with ``from tribute.methods
import ...`` / ``from tribute.methods.base import ...`` (or ``importlib.import_module``).
"""

from __future__ import annotations

from ._stderr import mean_interval
from .base import (
    METHODS,
    Method,
    MethodInfo,
    Tags,
    alias,
    get_method,
    method_info,
    method_infos,
    register,
    registry,
)

__all__ = ["METHODS", "Method", "MethodInfo", "Tags", "alias", "get_method", "mean_interval",
           "method_info", "method_infos", "register", "registry"]
