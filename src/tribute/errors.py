"""Exceptions raised by tribute.

Every error names the argument at fault, the value or shape that was seen, and how to fix it.
The classes subclass the built-in exception a user would expect (``ValueError`` or
``TypeError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import os
import sys
from types import FrameType

__all__ = [
    "BudgetError",
    "InputError",
    "ModelOutputError",
    "ProbabilityClipWarning",
    "StderrWarning",
    "TributeError",
    "UndefinedScoreWarning",
    "UnsupportedModelError",
    "WeightsFormatError",
    "user_stacklevel",
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


class ProbabilityClipWarning(UserWarning):
    """Probabilities of 0 or 1 were clipped to ``[1e-12, 1 - 1e-12]`` before the log of
    ``output="logit"`` / ``"log_prob"``: those values are bounded by ``log(1e-12) = -27.6``
    (``+27.6`` for a log-odds), so the credits understate a saturated model. Explain its scores
    (``model=est.decision_function``) or ``output="prob"`` instead, or filter it where the
    bound is the intended convention (a tree ensemble's pure leaves)."""


class UndefinedScoreWarning(RuntimeWarning):
    """A metric's score is undefined (NaN) on every sample, so its mean and standard error are
    NaN (``n = 0``; ``extra["n_undefined"]`` counts the samples). The metric's documentation
    says when a score is undefined, e.g. a model whose output does not change or credits that
    are all zero. Issued once per metric call."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_stacklevel() -> int:
    """The ``stacklevel`` for ``warnings.warn`` called by the caller of this function that points
    at the first frame outside tribute (the user's line), whatever the depth of the call."""
    level = 1
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level
