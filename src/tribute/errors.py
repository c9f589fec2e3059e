"""Exceptions raised by tribute.

Every error names the argument at fault, the value or shape that was seen, and how to fix it.
The classes subclass the built-in exception a user would expect (``ValueError`` or
``TypeError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "BudgetError",
    "InputError",
    "ModelOutputError",
    "StderrWarning",
    "TributeError",
    "UnsupportedModelError",
    "WeightsFormatError",
]


class TributeError(Exception):
    """Base class of every error tribute raises on purpose."""


class InputError(TributeError, ValueError):
    """An argument has the wrong shape, type or value."""


class BudgetError(InputError):
    """The evaluation budget is too small for the chosen method."""


class ModelOutputError(TributeError, ValueError):
    """The model returned something unusable (wrong shape, NaN or Inf)."""


class UnsupportedModelError(TributeError, TypeError):
    """The method cannot handle this model (e.g. needs gradients, or an unknown module)."""


class WeightsFormatError(TributeError, ValueError):
    """A weights file is not in the safe format tribute loads (safetensors)."""


class StderrWarning(RuntimeWarning):
    """A method could not estimate (some of) its standard errors; they are NaN.

    Filter it like any warning, e.g. ``warnings.simplefilter("ignore", tribute.StderrWarning)``
    when only the values are used.
    """
