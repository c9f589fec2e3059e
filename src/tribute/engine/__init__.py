"""The engine: the only place in tribute that batches model evaluations.

Games describe *which* rows to evaluate (a ``build(start, stop)`` callback that composes rows
``start..stop`` of a virtual table of ``inputs x coalitions x background`` rows) and *where the
results go* (a ``sink`` callback). The engine walks that table in chunks bounded by
``batch_size``, runs the model under ``torch.inference_mode`` (or with autograd when gradients
are needed), selects the explained target, checks the output, counts every row and draws a
progress bar. Nothing else in the code base loops over rows.
"""

from __future__ import annotations

from .core import Engine, Rows, default_batch_size

__all__ = ["Engine", "Rows", "default_batch_size"]
