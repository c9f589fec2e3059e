"""Which scalar is explained: class indices, per-sample targets, several targets, callables.

A target turns the model's raw output for a batch of rows into a ``rows x targets`` matrix.
The output transform (``raw``/``logit``, ``prob``, ``log_prob``) is applied first.

Conventions (fixed here, documented in :func:`tribute.explain`):

* ``None`` — the single output of a regressor, or the predicted class of a classifier.
* ``"predicted"`` — the arg-max class of each sample on its unperturbed input.
* ``int`` — that class for every sample.
* ``list``/``tuple`` of ints — several targets, each explained for every sample (adds a
  target axis to the result).
* 1-D ``ndarray``/``Tensor`` of length ``batch`` — one class per sample.
* 2-D ``ndarray``/``Tensor`` ``batch x targets`` — several classes per sample.
* callable — ``fn(output) -> rows`` or ``rows x targets``, applied after the transform.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import InputError, ModelOutputError

__all__ = ["OUTPUTS", "Target", "resolve_target", "transform_output"]

OUTPUTS = ("raw", "logit", "prob", "log_prob")

TargetLike = Any  # None | str | int | Sequence[int] | np.ndarray | torch.Tensor | Callable


def transform_output(out: torch.Tensor, output: str) -> torch.Tensor:
    """Apply the output transform along the last (class) axis."""
    if output in ("raw", "logit"):
        return out
    single = out.ndim == 1 or out.shape[-1] == 1
    if output == "prob":
        return torch.sigmoid(out) if single else torch.softmax(out, dim=-1)
    if output == "log_prob":
        return torch.nn.functional.logsigmoid(out) if single else torch.log_softmax(out, dim=-1)
    raise InputError(f"output={output!r} is not one of {OUTPUTS}.")


@dataclass
class Target:
    """A resolved target: selects ``rows x targets`` from model outputs.

    Attributes:
        index: ``batch x targets`` class indices (long), or None for callables/regression.
        fn: callable applied to the transformed output, or None.
        output: output transform name.
        multi: several targets were asked for (the result keeps a target axis).
        names: a label per target column.
    """

    index: torch.Tensor | None
    fn: Callable[[torch.Tensor], torch.Tensor] | None
    output: str
    multi: bool
    names: list[str]

    @property
    def n_targets(self) -> int:
        if self.index is not None:
            return int(self.index.shape[1])
        return len(self.names)

    def select(self, out: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """Explained scalars for rows of ``out`` that belong to samples ``sample`` (rows,)."""
        out = transform_output(out, self.output)
        if self.fn is not None:
            val = self.fn(out)
            if not isinstance(val, torch.Tensor):
                val = torch.as_tensor(np.asarray(val), device=out.device)
            if val.ndim == 1:
                val = val[:, None]
            if val.ndim != 2 or val.shape[0] != out.shape[0]:
                raise ModelOutputError(
                    f"target callable returned shape {tuple(val.shape)} for {out.shape[0]} rows; "
                    "it must return one scalar per row (rows,) or (rows, targets)."
                )
            return val
        if out.ndim == 1:
            return out[:, None]
        assert self.index is not None
        idx = self.index.to(out.device)[sample]
        return out.gather(1, idx)

    def to_numpy(self) -> np.ndarray | None:
        if self.index is None:
            return None
        arr = self.index.cpu().numpy()
        return arr if self.multi else arr[:, 0]


def _check_output_shape(ref: torch.Tensor, callable_target: bool) -> None:
    if callable_target:
        return
    if ref.ndim not in (1, 2):
        raise ModelOutputError(
            f"model output has shape {tuple(ref.shape)}; tribute explains one scalar per sample "
            "and needs (batch,) or (batch, classes). Pass target=callable mapping the output to "
            "one value per row (e.g. target=lambda out: out[:, 0, 3]) or wrap the model."
        )


def resolve_target(
    target: TargetLike, output: str, reference: torch.Tensor, batch: int
) -> Target:
    """Resolve a user ``target`` against the model's output on the unperturbed inputs.

    Args:
        target: see the module docstring.
        output: output transform (``raw``, ``logit``, ``prob``, ``log_prob``).
        reference: raw model output for the ``batch`` inputs.
        batch: number of inputs.
    """
    if output not in OUTPUTS:
        raise InputError(f"output={output!r} is not one of {OUTPUTS}; pick one of those.")
    callable_target = callable(target) and not isinstance(target, (torch.Tensor, np.ndarray))
    _check_output_shape(reference, callable_target)
    if callable_target:
        probe = Target(None, target, output, False, ["custom"])
        val = probe.select(reference, torch.arange(batch, device=reference.device))
        n = int(val.shape[1])
        multi = n > 1
        names = [f"custom[{i}]" for i in range(n)] if multi else ["custom"]
        return Target(None, target, output, multi, names)

    n_classes = 1 if reference.ndim == 1 else int(reference.shape[1])
    single_output = n_classes == 1
    device = reference.device

    def _idx(arr: Any, what: str) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(arr.cpu() if isinstance(arr, torch.Tensor) else arr))
        if t.dtype.is_floating_point:
            if not torch.all(t == t.round()):
                raise InputError(f"target {what} must hold integer class indices; got {t.tolist()[:8]}.")
            t = t.long()
        if t.dtype == torch.bool or not (t.dtype.is_floating_point or t.dtype in _INT_DTYPES):
            raise InputError(f"target {what} must hold integer class indices; got dtype {t.dtype}.")
        t = t.long()
        bad = (t < 0) | (t >= n_classes)
        if bool(bad.any()):
            first = t[bad].flatten()[0].item()
            raise InputError(
                f"target {what} has class index {first}, out of range for a model with "
                f"{n_classes} output(s); valid indices are 0..{n_classes - 1}."
            )
        return t.to(device)

    if target is None:
        if single_output:
            return Target(torch.zeros(batch, 1, dtype=torch.long, device=device), None, output, False, ["output"])
        target = "predicted"
    if isinstance(target, str):
        if target != "predicted":
            raise InputError(
                f"target={target!r} is not understood; use 'predicted', an int, a list of ints, "
                "one index per sample, or a callable."
            )
        pred = reference.argmax(dim=1) if reference.ndim == 2 else torch.zeros(batch, dtype=torch.long)
        return Target(pred.long().to(device)[:, None], None, output, False, ["predicted"])
    if isinstance(target, (bool, np.bool_)):
        raise InputError(f"target={target!r} is a boolean; pass a class index instead.")
    if isinstance(target, (int, np.integer)):
        idx = _idx([int(target)], f"={int(target)}")
        return Target(idx.expand(batch, 1).clone(), None, output, False, [f"class {int(target)}"])
    if isinstance(target, Sequence) and not isinstance(target, (torch.Tensor, np.ndarray)):
        if len(target) == 0:
            raise InputError("target is an empty list; give at least one class index.")
        idx = _idx(list(target), f"list {list(target)}")
        return Target(idx[None, :].expand(batch, -1).clone(), None, output, True,
                      [f"class {int(i)}" for i in idx.tolist()])
    if isinstance(target, (np.ndarray, torch.Tensor)):
        arr = target
        if arr.ndim == 0:
            return resolve_target(int(arr.item()), output, reference, batch)
        if arr.shape[0] != batch or arr.ndim > 2:
            raise InputError(
                f"target has shape {tuple(arr.shape)} but the batch has {batch} samples; pass one "
                f"index per sample (shape ({batch},)), ({batch}, n_targets), an int, or a list of "
                "ints to explain the same classes for every sample."
            )
        idx = _idx(arr, f"array of shape {tuple(arr.shape)}")
        if idx.ndim == 1:
            return Target(idx[:, None], None, output, False, ["per-sample"])
        return Target(idx, None, output, True, [f"target {j}" for j in range(idx.shape[1])])
    raise InputError(
        f"target of type {type(target).__name__} is not understood; use None, 'predicted', an "
        "int, a list of ints, an array with one index per sample, or a callable."
    )


_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
