"""Chunked, counted, checked model evaluation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import InputError, ModelOutputError
from ..models import ModelAdapter
from ..targets import Target
from .progress import Progress

__all__ = ["Engine", "Rows", "default_batch_size"]

#: Bytes of composed input rows per chunk (no gradients). Small models on CPU reach their best
#: throughput well below this; larger rows get proportionally fewer per chunk.
_CHUNK_BYTES = 32 * 1024**2
_CHUNK_BYTES_GRAD = 8 * 1024**2
_MIN_ROWS, _MAX_ROWS = 16, 4096


@dataclass
class Rows:
    """One chunk of composed model rows.

    Attributes:
        inputs: model inputs for the rows (batch first).
        sample: ``rows`` long tensor: which input sample each row belongs to (for targets).
        extra: extra positional forward arguments, already indexed per row.
        kwargs: extra keyword forward arguments, already indexed per row.
        leaves: tensors to differentiate the explained outputs with respect to (gradient runs);
            may be filled during the forward pass by hooks.
    """

    inputs: tuple[torch.Tensor, ...]
    sample: torch.Tensor
    extra: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    leaves: list[torch.Tensor] = field(default_factory=list)


Sink = Callable[[int, int, torch.Tensor, "list[torch.Tensor] | None"], None]


def default_batch_size(row_bytes: int, grad: bool, n_params: int = 0) -> int:
    """Rows per forward pass for rows of ``row_bytes`` bytes.

    Chunks hold about 32 MiB of composed inputs (8 MiB with gradients), between 16 and 4096
    rows; models with many parameters (deep activations per row) get at most 256 rows.
    """
    budget = _CHUNK_BYTES_GRAD if grad else _CHUNK_BYTES
    rows = budget // max(row_bytes, 1)
    cap = 256 if n_params > 5_000_000 else _MAX_ROWS
    return int(max(_MIN_ROWS, min(rows, cap)))


class Engine:
    """Evaluates model rows in bounded chunks and counts them.

    Args:
        model: the adapted model.
        target: the resolved target (selects ``rows x targets`` from outputs).
        batch_size: rows per forward pass; None picks :func:`default_batch_size`.
        progress: ``True``/``False`` forces the progress bar on/off; None shows it on a
            terminal for runs longer than two seconds.
    """

    def __init__(self, model: ModelAdapter, target: Target | None = None,
                 batch_size: int | None = None, progress: bool | None = None) -> None:
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise InputError(
                f"batch_size={batch_size!r} must be a positive int (rows per forward pass) or "
                "None for the automatic default."
            )
        self.model = model
        self.target = target
        self.batch_size = batch_size
        self.progress = progress
        self.n_rows = 0
        self.n_passes = 0
        self._n_params = (
            sum(p.numel() for p in model.module.parameters()) if model.module is not None else 0
        )

    def chunk_rows(self, row_bytes: int, grad: bool) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return default_batch_size(row_bytes, grad, self._n_params)

    def run(
        self,
        n_rows: int,
        build: Callable[[int, int], Rows],
        sink: Sink,
        *,
        row_bytes: int,
        grad: bool = False,
        desc: str = "evaluating",
        select: Callable[[torch.Tensor, Rows], torch.Tensor] | None = None,
        describe_row: Callable[[int], str] | None = None,
    ) -> None:
        """Evaluate rows ``0..n_rows-1`` chunk by chunk.

        Args:
            n_rows: rows in the virtual table.
            build: composes rows ``[start, stop)``.
            sink: receives ``(start, stop, values rows x targets, grads)``; ``grads`` holds,
                per leaf, a ``rows x targets x *leaf_shape`` tensor (gradient runs only).
            row_bytes: bytes of one composed row (sizes the chunks).
            grad: compute gradients of every target w.r.t. ``Rows.leaves``.
            select: maps raw outputs to ``rows x targets`` (defaults to the engine's target).
            describe_row: names a row in error messages (e.g. "sample 3, coalition 17").
        """
        if n_rows <= 0:
            return
        chunk = self.chunk_rows(row_bytes, grad)
        bar = Progress(n_rows, desc, self.progress)
        try:
            for start in range(0, n_rows, chunk):
                stop = min(start + chunk, n_rows)
                if grad:
                    with torch.enable_grad():
                        vals, grads = self._pass(build(start, stop), stop - start, select, True,
                                                 start, describe_row)
                else:
                    with torch.inference_mode():
                        vals, grads = self._pass(build(start, stop), stop - start, select, False,
                                                 start, describe_row)
                sink(start, stop, vals, grads)
                bar.update(stop - start)
        finally:
            bar.close()

    def _pass(self, rows: Rows, n: int, select: Callable[[torch.Tensor, Rows], torch.Tensor] | None,
              grad: bool, start: int, describe_row: Callable[[int], str] | None,
              ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        out = self.model(rows.inputs, rows.extra, rows.kwargs)
        self.n_rows += n
        self.n_passes += 1
        if out.ndim == 0 or out.shape[0] != n:
            raise ModelOutputError(
                f"model returned shape {tuple(out.shape)} for a batch of {n} rows; the first axis "
                "must be the batch axis (one output row per input row)."
            )
        if select is not None:
            vals = select(out, rows)
        else:
            assert self.target is not None
            vals = self.target.select(out, rows.sample)
        finite = torch.isfinite(vals)
        if not bool(finite.all()):
            bad = int((~finite).any(dim=1).nonzero()[0, 0])
            where = describe_row(start + bad) if describe_row else f"row {start + bad}"
            kind = "NaN" if bool(torch.isnan(vals).any()) else "Inf"
            raise ModelOutputError(
                f"model output is {kind} at {where} (the input composed for that coalition). "
                "Check the baseline/background for values the model cannot handle, or clamp "
                "the model's output (e.g. use output='log_prob' instead of log of a probability)."
            )
        if not grad:
            return vals.detach(), None
        leaves = rows.leaves
        if not leaves:
            raise RuntimeError("gradient run without leaves")  # programming error, not user input
        per_target: list[tuple[torch.Tensor | None, ...]] = []
        n_t = vals.shape[1]
        for t in range(n_t):
            per_target.append(tuple(torch.autograd.grad(
                vals[:, t].sum(), leaves, retain_graph=t < n_t - 1, allow_unused=True
            )))
        grads = []
        for i, leaf in enumerate(leaves):
            stacked: list[torch.Tensor] = []
            for target_grads in per_target:
                gi = target_grads[i]
                stacked.append(gi if gi is not None else torch.zeros_like(leaf))
            grads.append(torch.stack(stacked, dim=1).detach())
        return vals.detach(), grads
