"""Eval mode for the duration of a call, every module's own training flag restored afterwards.

``model.train(was_training)`` is not a restore: it sets *every* submodule to the root's flag,
so a submodule the user had put in eval mode (a frozen batch norm, a dropout switched off)
would come back in training mode. Shared by the analyses that hook a torch model (TCAV, CRAFT,
the Rashomon set's predictions).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["eval_mode"]


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode; restore each module's training flag in ``finally``."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for m, flag in flags:
            if m.training != flag:
                m.training = flag
