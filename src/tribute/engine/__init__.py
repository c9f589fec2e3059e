"""The engine: the only place in tribute that batches model evaluations.

Games describe *which* rows to evaluate (a ``build(start, stop)`` callback that composes rows
``start..stop`` of a virtual table of ``inputs x coalitions x background`` rows) and *where the
results go* (a ``sink`` callback). The engine walks that table in chunks (``batch_size`` when given, else a
size tuned on the fly for the model's best throughput, see :mod:`.tuning`) under a memory cap
(:mod:`.memory`), runs the model under ``torch.inference_mode`` (or with autograd when gradients
are needed), selects the explained target, checks the output, counts every row and draws a
progress bar. Once per torch model it checks, on a small pass of the call's own rows run with
autograd, that no row's output depends on the other rows of its batch (else the credits would
depend on the batch size): such a model is refused. A plain ``Sequential`` of row-wise layers
(Linear, convolutions, activations, pooling, LayerNorm, BatchNorm with running statistics) needs
no such pass when its settings keep the batch axis apart for the call's input rank (a rank-1
batch, a convolution's unbatched form, a LayerNorm over every axis are checked) and nothing but
the layers' own ``forward`` runs (no hooks, no ``forward`` set on an instance). The pass's values are the call's own, computed with autograd: on models whose
autograd kernels differ from inference mode's (``nn.MultiheadAttention``'s fast path, text games)
the first call's credits can differ from a later call's in the last bits (~1e-8 relative);
dataset jobs check every shard, so their bytes never depend on the order shards ran in.
Nothing else in the code base loops over rows.
"""

from __future__ import annotations

from .core import (
           BLOCK_BYTES,
           Engine,
           Rows,
           default_batch_size,
           fixed_batch_size,
           max_chunk_rows,
           row_signature,
)
from .memory import available_memory, default_max_memory, format_bytes, parse_memory
from .progress import Progress, SlowRunWarning, observe_progress, progress_scope
from .tuning import BatchTuner, clear_tuners

__all__ = ["BLOCK_BYTES", "BatchTuner", "Engine", "Progress", "Rows", "SlowRunWarning", "available_memory", "clear_tuners",
           "default_batch_size", "default_max_memory", "fixed_batch_size", "format_bytes", "max_chunk_rows",
           "observe_progress", "parse_memory", "progress_scope", "row_signature"]
