"""Chunked, counted, checked model evaluation."""

from __future__ import annotations

import contextlib
import contextvars
import math
import numbers
import warnings
import weakref
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn.modules import module as _module_mod

from ..errors import (
    InputError,
    ModelOutputError,
    TributeError,
    UnsupportedModelError,
    user_stacklevel,
)
from ..models import ModelAdapter
from ..targets import Target
from .memory import resolve_max_memory
from .progress import Progress, active_progress
from .tuning import BatchTuner, SchedulerFreeClock, is_warm, mark_warm, tuner_for

__all__ = ["BLOCK_BYTES", "Engine", "FirstPassRefusal", "Rows", "default_batch_size", "fixed_batch_size", "max_chunk_rows", "row_signature"]

#: Bytes of composed input rows per chunk (no gradients) before tuning; larger rows get
#: proportionally fewer per chunk.
_CHUNK_BYTES = 32 * 1024**2
_CHUNK_BYTES_GRAD = 8 * 1024**2
_MIN_ROWS, _MAX_ROWS = 16, 4096
#: The largest chunk the tuner tries, and the share of ``max_memory`` one chunk's composed
#: rows may take (gradients keep the rows, their graph and a gradient per row alive).
_TUNE_MAX_ROWS, _TUNE_MAX_ROWS_LARGE = 8192, 1024
#: The same on a CUDA device, where throughput keeps growing well past the CPU's sizes (an
#: H200 ran a small CNN on 8x8 digits 17% faster at 65,536 rows than at 8,192, a 13-feature
#: MLP 6x); a size that runs out of device memory ends the search below it.
_TUNE_MAX_ROWS_CUDA, _TUNE_MAX_ROWS_CUDA_LARGE = 65536, 8192
_CHUNK_SHARE, _CHUNK_SHARE_GRAD = 1 / 16, 1 / 64
_LARGE_MODEL = 5_000_000
#: Bytes of composed rows per block of a ``blocks=True`` run (see :meth:`Engine.run`): big
#: enough that the per-block tensor work is small per row, small enough to stay in cache next
#: to the model's activations (mlp13 at 4,096 rows per pass: the forward pass ran 1.3x slower
#: next to 1 MiB blocks than next to 512 KiB ones; 2,048 rows per pass: no difference).
BLOCK_BYTES = 512 * 1024


class FirstPassRefusal(InputError):
    """A game's first-pass probe (:attr:`Engine.first_pass`) saw, in a forward pass the model
    completed, that a decision taken before any pass was wrong (patches tiled around another
    axis than the one the model's first ``Conv2d`` reads as channels). Not the model's error:
    every pass and wrapper lets it through as it is."""


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
        checked: the rows' explained values (with their graph) when ``select`` returns something
            else, e.g. one entry of each row's gradient (Hessian rows): the check that rows are
            evaluated independently differentiates these. None: what ``select`` returns.
    """

    inputs: tuple[torch.Tensor, ...]
    sample: torch.Tensor
    extra: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    leaves: list[torch.Tensor] = field(default_factory=list)
    checked: torch.Tensor | None = None


Sink = Callable[[int, int, torch.Tensor, "list[torch.Tensor] | None"], None]


def default_batch_size(row_bytes: int, grad: bool, n_params: int = 0) -> int:
    """Rows per forward pass by bytes alone (no measurement; the engine tunes instead).

    Chunks hold about 32 MiB of composed inputs (8 MiB with gradients), between 16 and 4096
    rows; models with many parameters (deep activations per row) get at most 256 rows.
    """
    budget = _CHUNK_BYTES_GRAD if grad else _CHUNK_BYTES
    rows = budget // max(row_bytes, 1)
    cap = 256 if n_params > _LARGE_MODEL else _MAX_ROWS
    return int(max(_MIN_ROWS, min(rows, cap)))


def max_chunk_rows(row_bytes: int, grad: bool, max_memory: int, n_params: int = 0,
                   device: Any = None) -> int:
    """The most rows one chunk may hold under ``max_memory`` (and the tuner's upper limit).

    One chunk's composed rows take at most 1/16 of the cap (1/64 with gradients, which keep
    the rows, the autograd graph and one gradient per row alive); never more than 8192 rows
    (1024 for models with over five million parameters, whose activations dominate), or
    65,536 (8,192) for a model on a CUDA ``device``.
    """
    share = _CHUNK_SHARE_GRAD if grad else _CHUNK_SHARE
    rows = int(max_memory * share) // max(int(row_bytes), 1)
    large = n_params > _LARGE_MODEL
    if device is not None and torch.device(device).type == "cuda":
        top = _TUNE_MAX_ROWS_CUDA_LARGE if large else _TUNE_MAX_ROWS_CUDA
    else:
        top = _TUNE_MAX_ROWS_LARGE if large else _TUNE_MAX_ROWS
    return int(max(1, min(rows, top)))


def row_signature(values: Any, n_rows: int) -> tuple[Any, ...]:
    """The model-input signature of one row: ``(per-row shape, dtype, device)`` of every tensor
    or array in ``values`` whose first axis has ``n_rows`` entries (per-row model inputs), in
    order. Engines whose rows share it on the same model share their tuned batch size."""
    sig = []
    for v in values:
        if isinstance(v, torch.Tensor) and v.ndim > 0 and int(v.shape[0]) == n_rows:
            sig.append((tuple(int(d) for d in v.shape[1:]), str(v.dtype), str(v.device)))
        elif hasattr(v, "shape") and hasattr(v, "dtype") and len(v.shape) > 0 \
                and int(v.shape[0]) == n_rows:
            sig.append((tuple(int(d) for d in v.shape[1:]), str(v.dtype), "numpy"))
    return tuple(sig)


def own_work(threads: int) -> contextlib.AbstractContextManager[None]:
    """Run tribute's own per-chunk tensor work (composing rows, selecting targets, storing
    values) on one thread; the model's forward and backward keep the user's ``threads``.

    These are small, memory-bound operations: one thread is as fast on an idle machine and
    immune to the stalls of a shared one, where an intra-op parallel region waits for a
    descheduled worker (measured: 28 ms instead of 0.5 ms for a 4096 x 13 compose at a load
    average of 18 on 2 cores).
    """
    return _NO_CONTEXT if threads <= 1 else _one_thread(threads)


_NO_CONTEXT = contextlib.nullcontext()


@contextlib.contextmanager
def _one_thread(threads: int) -> Iterator[None]:
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


#: Rows per pass for engines without an explicit ``batch_size`` (None: self-tuned); set by
#: :func:`fixed_batch_size`.
_FIXED_ROWS: contextvars.ContextVar[int | None] = contextvars.ContextVar("tribute_fixed_rows",
                                                                        default=None)


@contextlib.contextmanager
def fixed_batch_size(rows: int) -> Iterator[None]:
    """Inside the block, engines without an explicit ``batch_size`` use ``rows`` per pass.

    The self-tuned size depends on timing, and a float model's outputs can differ in the last
    bits between chunk sizes (another BLAS or convolution kernel), so two runs with the same
    seed can differ by ~1e-15 (float64) to ~1e-7 (float32). Runs that must repeat exactly
    (``tribute bench``, dataset jobs) fix the rows per pass with this. An explicit
    ``batch_size=`` still wins.

    >>> from tribute.engine import fixed_batch_size
    >>> with fixed_batch_size(256):
    ...     pass  # every explain/evaluate here runs 256 rows per pass
    """
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise InputError(f"fixed_batch_size: rows={rows!r} must be a positive int (rows per pass).")
    token = _FIXED_ROWS.set(rows)
    try:
        yield
    finally:
        _FIXED_ROWS.reset(token)


#: Byte alignment of every chunk the model sees. BLAS kernels (MKL on AVX-512 among them) take
#: another code path for data that does not start on such a boundary, and round differently: a
#: chunk sliced out of a block at an odd offset gave outputs 1 ulp away from the same rows
#: composed on their own (which the allocator aligns to 64 bytes).
_ALIGN = 64


def _aligned(t: torch.Tensor) -> torch.Tensor:
    """``t`` itself when it starts on an :data:`_ALIGN`-byte boundary, else a fresh copy (which
    the allocator aligns), so a chunk's outputs do not depend on where it lies in its block."""
    return t if t.data_ptr() % _ALIGN == 0 else t.clone()


def _finish(out: torch.Tensor) -> None:
    """Waits until the accelerator computed ``out`` (a timed chunk's clock must include its
    forward pass: CUDA and MPS run it asynchronously, and without this a block's tuning chunks
    timed only the kernel launches; the CPU computes before returning)."""
    if out.device.type == "cuda":
        torch.cuda.synchronize(out.device)
    elif out.device.type == "mps":  # pragma: no cover - Apple GPUs only
        torch.mps.synchronize()


def _no_room(exc: BaseException, size: int, fixed: int | None) -> torch.cuda.OutOfMemoryError:
    """The device error of a chunk that cannot be made smaller, saying which setting to change
    (same type, so code that catches torch's error still does)."""
    how = (f"{fixed} rows per forward pass (batch_size=, or fixed_batch_size() around the "
           "call) do not fit; pass a smaller batch_size= or batch_size=None (tribute then "
           "finds the largest chunk that fits)"
           if fixed is not None else
           f"one row ({size} per pass) does not fit: free device memory, or run the model on "
           "a device with more")
    return torch.cuda.OutOfMemoryError(f"{how} ({exc})")


def _out_of_memory(tuner: BatchTuner, size: int) -> None:
    """A self-tuned chunk of ``size`` rows ran out of device memory (the memory cap bounds
    what tribute composes, not the model's activations): the cached blocks are released and
    the tuner keeps to smaller sizes from now on; the loop then sends the same rows again in a
    smaller chunk (nothing of the failed chunk was stored, and the rows it ran are counted)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    tuner.out_of_memory(size)


#: The largest forward pass each model completed in this process (rows): an error on a pass no
#: bigger is not about the batch's size. Models that cannot be weakly referenced as keys
#: (unhashable, e.g. a dataclass with ``__call__``, or ``__slots__`` without ``__weakref__``) are
#: kept by id with a weak reference to the model, or the model itself when it has none, so that
#: no later object can take over a freed model's id and its count (small42: one that did was
#: refused its smaller retry: "that many rows worked before"); only the
#: :data:`_OK_ROWS_BY_ID_MAX` most recent entries are kept (rev42a: holding the model in every
#: entry kept a freed dataclass-wrapped network and its memory alive).
_OK_ROWS: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_OK_ROWS_BY_ID: dict[int, tuple[Any, int]] = {}
_OK_ROWS_BY_ID_MAX = 8


def _by_id_owner(key: Any) -> Any:
    """What an id-keyed entry keeps of ``key``: a weak reference, else ``key`` in a 1-tuple."""
    try:
        return weakref.ref(key)
    except TypeError:
        return (key,)


def _owned_by(owner: Any, key: Any) -> bool:
    return (owner() if isinstance(owner, weakref.ref) else owner[0]) is key


def _note_ok_rows(key: Any, n: int) -> None:
    try:
        if _OK_ROWS.get(key, 0) < n:
            _OK_ROWS[key] = n
    except TypeError:
        old = _OK_ROWS_BY_ID.pop(id(key), None)  # re-inserted last: the most recent
        if old is None or not _owned_by(old[0], key):
            old = (_by_id_owner(key), 0)  # (another object's entry at this id is dropped)
        _OK_ROWS_BY_ID[id(key)] = (old[0], max(old[1], n))
        while len(_OK_ROWS_BY_ID) > _OK_ROWS_BY_ID_MAX:
            del _OK_ROWS_BY_ID[next(iter(_OK_ROWS_BY_ID))]


def _ok_rows(key: Any) -> int:
    try:
        return _OK_ROWS.get(key, 0)
    except TypeError:
        got = _OK_ROWS_BY_ID.get(id(key))
        return got[1] if got is not None and _owned_by(got[0], key) else 0


def _keep_first(exc: BaseException, refused: tuple[int, BaseException] | None) -> None:
    """The rows of a pass the model refused were sent again in smaller passes, and one of those
    failed too (``exc``): the first failure, often the real cause, rides along as a note and,
    unless ``exc`` has one, as its ``__cause__`` (before small42 only the last error surfaced)."""
    if refused is None or refused[1] is exc:
        return
    n, first = refused
    # notes are Python 3.11+ (PEP 678) and requires-python is >=3.10: there add_note raised
    # AttributeError in place of the model's error (rev42a)
    add_note = getattr(exc, "add_note", None)
    if add_note is not None:
        add_note(f"tribute: before this, a forward pass of {n} rows raised "
                 f"{type(first).__name__}({str(first)[:200]!r}); its rows were sent again in "
                 "smaller passes, which failed as above.")
    if exc.__cause__ is None:
        exc.__cause__ = first


def _forget_bound(tuner: BatchTuner | None) -> None:
    """Not even one row fit: the tuner's bound says nothing about later calls (memory may be
    free again), so they start a fresh search instead of one row per pass for good."""
    if tuner is not None and tuner.memory_bound:
        tuner._current = False


#: Rows of the chunk that checks a torch model's rows are evaluated independently (see
#: :meth:`Engine._checked_values`): the check runs that chunk's forward pass with autograd, so it
#: is kept small (the tuner's first chunk, a reference pass on a few inputs).
_CHECK_MAX_ROWS = 16
#: Torch models whose rows were checked to be evaluated independently of their batch
#: (kept as long as the model lives; by id for modules that cannot be weakly referenced).
_BATCH_CHECKED: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
_BATCH_CHECKED_BY_ID: set[int] = set()


def _is_checked(key: Any) -> bool:
    try:
        return key in _BATCH_CHECKED
    except TypeError:
        return id(key) in _BATCH_CHECKED_BY_ID


def _mark_checked(key: Any) -> None:
    try:
        _BATCH_CHECKED[key] = True
    except TypeError:
        _BATCH_CHECKED_BY_ID.add(id(key))


#: Module types that evaluate every element (every row) on its own whatever their settings and
#: keep the rank of their input (see :func:`_rowwise_by_construction`).
_ELEMENTWISE_TYPES: tuple[type, ...] = (
    torch.nn.Identity, torch.nn.Linear,
    torch.nn.ReLU, torch.nn.ReLU6, torch.nn.LeakyReLU, torch.nn.PReLU, torch.nn.ELU, torch.nn.SELU,
    torch.nn.CELU, torch.nn.GELU, torch.nn.SiLU, torch.nn.Mish, torch.nn.Sigmoid, torch.nn.Tanh,
    torch.nn.Softplus, torch.nn.Hardtanh, torch.nn.Hardswish, torch.nn.Hardsigmoid,
    torch.nn.LogSigmoid, torch.nn.Tanhshrink, torch.nn.Softsign, torch.nn.Dropout,
    torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d, torch.nn.AlphaDropout,
    torch.nn.GroupNorm,
)

#: Convolutions by their spatial dimensions: row-wise on batched input only (rank ``d + 2``); on
#: rank ``d + 1`` torch reads the input as one unbatched sample whose channels are the rows.
_CONV_DIMS: dict[type, int] = {
    torch.nn.Conv1d: 1, torch.nn.Conv2d: 2, torch.nn.Conv3d: 3, torch.nn.ConvTranspose1d: 1,
    torch.nn.ConvTranspose2d: 2, torch.nn.ConvTranspose3d: 3,
}

#: Pooling layers by their spatial dimensions: row-wise on rank ``d + 2`` and ``d + 1`` (unbatched
#: input is pooled per channel, here per row).
_POOL_DIMS: dict[type, int] = {
    torch.nn.MaxPool1d: 1, torch.nn.MaxPool2d: 2, torch.nn.MaxPool3d: 3, torch.nn.AvgPool1d: 1,
    torch.nn.AvgPool2d: 2, torch.nn.AvgPool3d: 3, torch.nn.AdaptiveAvgPool1d: 1,
    torch.nn.AdaptiveAvgPool2d: 2, torch.nn.AdaptiveAvgPool3d: 3, torch.nn.AdaptiveMaxPool1d: 1,
    torch.nn.AdaptiveMaxPool2d: 2, torch.nn.AdaptiveMaxPool3d: 3,
}

_BATCHNORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)


def _own_forward(module: torch.nn.Module) -> bool:
    """Whether ``module`` runs something besides its class's ``forward``: hooks, or a
    ``forward`` (or call implementation) set on the instance (``m.forward = ...``, as
    accelerate's hooks do), which ``Module.__call__`` runs instead of the class's."""
    return bool(module._forward_hooks or module._forward_pre_hooks
                or any(module.__dict__.get(name) is not None for name in _CALL_ATTRS))


#: Instance attributes ``Module.__call__`` would run instead of the class's forward.
_CALL_ATTRS = ("forward", "_call_impl", "_wrapped_call_impl", "_compiled_call_impl")


def _rowwise_by_construction(module: torch.nn.Module, ndim: int | None) -> bool:
    """True when ``module`` is a ``Sequential`` (nested ones included) of layers that evaluate
    each row on its own in eval mode, given its input's rank ``ndim`` (batch axis included; None:
    unknown, never true): element-wise layers, Linear and GroupNorm (of :data:`_ELEMENTWISE_TYPES`;
    their exact types, not subclasses, whose forward may differ), convolutions on batched input,
    pooling, ``Flatten`` from dimension 1 on, ``Softmax`` / ``LogSoftmax`` over a dimension other
    than 0, LayerNorm over fewer dimensions than the input's, BatchNorm with running statistics
    (tribute evaluates in eval mode), Embedding -- on inputs of rank 2 or more throughout (a rank-1
    batch is one vector to Linear, Softmax, LayerNorm). Anything else -- a custom ``forward``, a
    hook, an attention layer -- is checked on a pass (:meth:`Engine._checked_values`)."""
    if ndim is None or _module_mod._global_forward_hooks or _module_mod._global_forward_pre_hooks:
        return False  # register_module_forward_hook: runs on every module's output
    return _rowwise_rank(module, int(ndim)) is not None


def _rowwise_rank(module: torch.nn.Module, r: int) -> int | None:
    """The rank of a row-wise ``Sequential``'s output on input of rank ``r``; None: not row-wise
    by construction (see :func:`_rowwise_by_construction`)."""
    if type(module) is not torch.nn.Sequential or _own_forward(module):
        return None
    for child in module.children():
        kind = type(child)
        if r < 2 or _own_forward(child):
            return None
        if kind is torch.nn.Sequential:
            got = _rowwise_rank(child, r)
            if got is None:
                return None
            r = got
        elif kind in _ELEMENTWISE_TYPES:
            continue
        elif kind in _CONV_DIMS:
            if r != _CONV_DIMS[kind] + 2:
                return None
        elif kind in _POOL_DIMS:
            if r not in (_POOL_DIMS[kind] + 1, _POOL_DIMS[kind] + 2):
                return None
        elif kind is torch.nn.Flatten:
            start, end = int(getattr(child, "start_dim", 0)), int(getattr(child, "end_dim", -1))
            start, end = start + r if start < 0 else start, end + r if end < 0 else end
            if not 1 <= start <= end < r:
                return None
            r -= end - start
        elif kind in (torch.nn.Softmax, torch.nn.LogSoftmax):
            dim = getattr(child, "dim", None)
            if dim is None or not 1 <= (int(dim) + r if int(dim) < 0 else int(dim)) < r:
                return None
        elif kind is torch.nn.LayerNorm:
            if len(getattr(child, "normalized_shape", ())) >= r:
                return None
        elif kind in _BATCHNORMS:
            if not child.track_running_stats or child.running_mean is None:
                return None
        elif kind is torch.nn.Embedding:
            r += 1
        else:
            return None
    return r


def forget_batch_check(model: Any) -> None:
    """Check ``model`` (its torch module) again on the next call (see :meth:`Engine._checked_values`).

    Dataset jobs call it before every shard: the check's pass runs with autograd, whose kernels
    may differ from inference mode's in the last bits (``nn.MultiheadAttention``'s fast path), so
    a shard's bytes must not depend on whether an earlier shard in the same process was checked.
    """
    key = getattr(model, "module", None) if not isinstance(model, torch.nn.Module) else model
    if key is None:
        return
    try:
        _BATCH_CHECKED.pop(key, None)
    except TypeError:
        pass
    _BATCH_CHECKED_BY_ID.discard(id(key))


def _is_oom(exc: BaseException) -> bool:
    """A device or host allocation failure: torch's ``OutOfMemoryError``, or the plain
    ``RuntimeError`` other allocators raise (the CPU's ``DefaultCPUAllocator: can't allocate
    memory``, MPS' ``MPS backend out of memory``, CUDA's before torch 2.1, libraries that re-raise
    it as a ``RuntimeError``)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    if type(exc) is not RuntimeError:
        return False
    msg = str(exc).lower()
    return "out of memory" in msg or "can't allocate memory" in msg


def _cross_row(vals: torch.Tensor, leaves: list[torch.Tensor], n: int) -> int | None:
    """A row of the chunk whose explained values have a finite, non-zero gradient with respect
    to *another* row's leaves, or None. A model that evaluates every row on its own has exactly
    zero gradients there (no path joins the rows).

    One backward pass: the middle row ``n // 2`` is checked (a batch statistic, a cumulative sum
    over the batch either way, a dependence on the first or the last row all reach it); a
    2-row chunk checks both rows."""
    leaves = [x for x in leaves if x.requires_grad and x.ndim > 0 and int(x.shape[0]) == n]
    if not leaves or not vals.requires_grad or vals.ndim != 2 or int(vals.shape[0]) != n:
        return None
    # distinct weights per target: outputs that sum to a constant (probabilities) do not cancel
    w = torch.arange(1, vals.shape[1] + 1, dtype=vals.dtype, device=vals.device)
    for r in ((0, 1) if n == 2 else (n // 2,)):
        grads = torch.autograd.grad((vals[r] * w).sum(), leaves, retain_graph=True,
                                    allow_unused=True)
        for g in grads:
            if g is None:
                continue
            other = torch.cat([g[:r], g[r + 1:]]).detach()
            other = other[torch.isfinite(other)]
            if other.numel() and bool((other != 0).any()):
                return r
    return None


def _inplace_error(module: Any, exc: RuntimeError) -> UnsupportedModelError:
    """PyTorch's bare "modified by an inplace operation" as an error naming the model's
    in-place modules and the fix (two ``ReLU(inplace=True)`` in a row: the second overwrites
    the output the first one's gradient needs)."""
    found: list[str] = []
    if isinstance(module, torch.nn.Module):
        found = [f"{path or 'the model itself'!r} ({type(m).__name__})"
                 for path, m in module.named_modules() if getattr(m, "inplace", False) is True]
    where = (f"its in-place module(s) {', '.join(found[:6])}{' ...' if len(found) > 6 else ''}"
             if found else "an in-place operation in its forward (x.relu_(), x += ...)")
    first = str(exc).split(". Hint:")[0]
    return UnsupportedModelError(
        f"the model's gradient cannot be computed: {where} overwrite(s) a tensor that the "
        f"backward pass needs (PyTorch: {first}). Set inplace=False on those modules (e.g. "
        "for m in model.modules(): m.inplace = False where hasattr(m, 'inplace'), which "
        "leaves the forward values unchanged unless the model reads the overwritten tensor "
        "again), or use the out-of-place form (x = x.relu()) in forward."
    )


def _scalar_rows_hint(inputs: tuple[Any, ...]) -> str:
    """A hint when every row the model got is one number: a 1-D input (``X[0]`` of a table)
    is read as one sample per entry, and a torch MLP then takes the whole pass as one sample
    (aud51g: ``Linear(5, ...)`` on ``X[0]`` said "shape (3,) for a batch of 5 rows" and
    suggested wrapping a function of one row, not ``X[None]``). Both readings of a 1-D input
    are named: one sample of features (``X[None]``) or samples of one feature
    (``X[:, None]``)."""
    tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
    if not tensors or any(x.ndim != 1 for x in tensors):
        return ""
    # rev51g: two readings, both named: Linear(1, k) on 6 numbers (6 samples of one feature)
    # was told only X[None], which it refuses ("1x6 and 1x4"); X[:, None] runs
    return (" Each row the model got is a single number: a 1-D input is read as one sample "
            "per entry. If it is one sample of features, give it a batch axis: X[None] (or "
            "X.reshape(1, -1)); if it is samples of one feature each, give it a feature axis: "
            "X[:, None] (or X.reshape(-1, 1)).")


def _batch_dependent(r: int, n: int, start: int, describe_row: Callable[[int], str] | None,
                     fixed: int | None, inputs: tuple[Any, ...] = ()) -> ModelOutputError:
    where = describe_row(start + r) if describe_row else f"row {start + r}"
    now = f"; now {fixed} per pass" if fixed is not None else ""
    return ModelOutputError(
        f"the model's output for {where} changes with the other rows of its batch: its gradient "
        f"with respect to the other {n - 1} row(s) of a {n}-row forward pass is not zero."
        f"{_scalar_rows_hint(inputs)} "
        "tribute evaluates many coalitions per forward pass, so the credits would depend on "
        "how the rows are batched. Typical causes: BatchNorm with track_running_stats=False "
        "(it normalises by batch statistics even in eval mode), a layer that normalises, "
        "pools or attends over the batch axis. Make the model evaluate each row on its own, "
        f"or pass batch_size=1 to evaluate every row alone (one row per forward pass{now})."
    )


class Engine:
    """Evaluates model rows in bounded chunks and counts them.

    Args:
        model: the adapted model.
        target: the resolved target (selects ``rows x targets`` from outputs).
        batch_size: rows per forward pass; None tunes it (see :mod:`tribute.engine.tuning`).
        progress: ``True``/``False`` forces the progress bar on/off; None shows it on a
            terminal for runs longer than two seconds.
        max_memory: bytes tribute may allocate (see :mod:`tribute.engine.memory`); None: half
            the memory available when the engine is made (and at most half the free memory
            of the model's CUDA device).
    """

    def __init__(self, model: ModelAdapter, target: Target | None = None,
                 batch_size: int | None = None, progress: bool | None = None,
                 max_memory: int | str | None = None) -> None:
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1
        ):
            raise InputError(
                f"batch_size={batch_size!r} must be a positive int (rows per forward pass) or "
                "None for the automatic, self-tuned size."
            )
        self.model = model
        self.target = target
        self.batch_size = None if batch_size is None else int(batch_size)  # np.int64(4) as 4
        self.progress = progress
        self.max_memory = resolve_max_memory(max_memory, getattr(model, "device", None))
        self.n_rows = 0
        self.n_passes = 0
        known = getattr(model, "n_params", None)  # TorchModel counts them once (issue #9)
        self._n_params = int(known) if isinstance(known, int) else (
            sum(p.numel() for p in model.module.parameters()) if model.module is not None else 0
        )
        self._rate: float | None = None  # rows/s of this engine's last long run (estimates)
        #: The model-input signature of the rows this engine's game sends (shapes and dtypes
        #: of one row's inputs; set by the game): the tuned batch size is shared by every
        #: engine whose rows have the same signature on the same model (every method, feature
        #: and component games alike). None: rows are told apart by their size in bytes.
        self.tune_key: Hashable | None = None
        self._tuners: dict[tuple[Any, ...], BatchTuner] = {}
        self._warm: dict[bool, bool] = {}  # runs completed, per gradients (see mark_warm)
        self._batch_checked = False  # the model's rows were checked to be independent
        self._check_small = False  # a check pass ran out of memory: checks at most 16 rows
        self._mark_pending = False  # a checking pass raised: mark the model once a plain one runs
        self._failed: tuple[BaseException, int] | None = None  # the model's last raise, its rows
        #: a game's one-shot look at the model's first completed forward pass (the feature
        #: game's convolution probe, aud52v): ``watch(inputs)`` is a context manager around the pass
        #: (its hooks are removed when it ends, also on an exception) and ``settle()`` runs
        #: after it, counted; it may raise :class:`FirstPassRefusal`. None: nothing to look at.
        self.first_pass: Any = None
        self._last_refused = 0  # rows of the last pass taken for too big (see _too_big)
        self._sunk = 0  # rows of a gradient block stored so far (see _run_grad_block)

    def set_max_memory(self, max_memory: int | str | None) -> None:
        """Change the memory cap (None: the default share of the available memory)."""
        self.max_memory = resolve_max_memory(max_memory, getattr(self.model, "device", None))

    def _model_key(self) -> Any:
        if self.model.module is not None:
            return self.model.module
        fn = getattr(self.model, "fn", self.model)
        return getattr(fn, "__self__", fn)

    def tuner(self, row_bytes: int, grad: bool, tune_key: Hashable | None = None) -> BatchTuner:
        """The process-wide batch-size tuner for this model and rows (``tune_key``, else the
        engine's :attr:`tune_key`, else the row size); ``row_bytes`` bounds the chunks."""
        key = tune_key if tune_key is not None else (
            self.tune_key if self.tune_key is not None else int(row_bytes))
        # a call asks several times (cost estimate, reference pass, each run): the lookup is
        # kept per (key, gradients, row size, memory cap) while the tuner it found is current
        memo = (key, bool(grad), int(row_bytes), self.max_memory)
        hit = self._tuners.get(memo)
        if hit is not None and hit.current:
            return hit
        cap = max_chunk_rows(row_bytes, grad, self.max_memory, self._n_params,
                             getattr(self.model, "device", None))
        t = self._tuners[memo] = tuner_for(self._model_key(), key, grad, cap)
        return t

    def fixed_rows(self) -> int | None:
        """Rows per pass when not tuned: ``batch_size``, else :func:`fixed_batch_size`'s."""
        return self.batch_size if self.batch_size is not None else _FIXED_ROWS.get()

    def chunk_rows(self, row_bytes: int, grad: bool) -> int:
        """Rows of the next chunk: the fixed size when there is one, else the tuner's."""
        fixed = self.fixed_rows()
        if fixed is not None:
            return fixed
        return self.tuner(row_bytes, grad).propose()

    def throughput(self, row_bytes: int, grad: bool = False) -> float | None:
        """Rows per second measured for this model and rows: the tuned rate, or the pace
        of this engine's last run of at least 256 rows; None when nothing reliable was measured
        (a few warm-up rows say little about a model's throughput)."""
        if self.fixed_rows() is None:
            rate = self.tuner(row_bytes, grad).rate()
            if rate is not None:
                return rate
        return self._rate

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
        tune_key: Hashable | None = None,
        blocks: bool = False,
        chunk: Callable[[int, int], None] | None = None,
        block_bytes: int | None = None,
        block_cap: int | None = None,
        check: bool | Callable[[], list[torch.Tensor]] = True,
    ) -> None:
        """Evaluate rows ``0..n_rows-1`` chunk by chunk.

        Args:
            n_rows: rows in the virtual table.
            build: composes rows ``[start, stop)``.
            sink: receives ``(start, stop, values rows x targets, grads)``; ``grads`` holds,
                per leaf, a ``rows x targets x *leaf_shape`` tensor (gradient runs only).
            row_bytes: bytes of one composed row (bounds the chunks under ``max_memory``).
            grad: compute gradients of every target w.r.t. ``Rows.leaves``.
            select: maps raw outputs to ``rows x targets`` (defaults to the engine's target).
            describe_row: names a row in error messages (e.g. "sample 3, coalition 17").
            tune_key: which tuned batch size the rows use (default: :attr:`tune_key`, else
                ``row_bytes``); rows with other per-row work (e.g. several model rows per
                point) pass their own.
            blocks: ``build`` may compose many chunks at once (its rows carry no
                ``extra``/``kwargs``/``leaves``; per-chunk state such as hooks is set by
                ``chunk``). With ``grad``, the leaves of every pass are its slices of the
                block's inputs (floating point): the model gets a copy of each (an in-place
                edit in the model never reaches a leaf) and the gradients are taken w.r.t.
                the inputs themselves, each pass with its own backward pass, and ``sink``
                still gets every pass's rows on their own (a game's sums keep their order).
                Once the batch size is known (fixed or tuned), rows are then composed, selected,
                checked and stored per *block* of up to :data:`BLOCK_BYTES` of composed rows
                (and the memory cap's share of one chunk), and only the forward passes run per
                chunk: the per-chunk tensor work that costs as much as a small model's forward
                pass (issue #9) is paid once per block. The chunks the model sees, and so the
                values, are the same.
            chunk: called with the rows ``[a, b)`` of each forward pass right before it (in
                both modes, after ``build`` composed rows covering them): a component game
                points its hooks at that chunk's slice of the block's masks there, so the hooks
                see exactly the rows of the pass.
            block_bytes: bytes ``build`` composes per row in a block (sizes the blocks, see
                :meth:`block_rows`); default ``row_bytes``. Games whose ``row_bytes`` also
                counts what the model allocates per row during a pass (component games: the
                hooked activations) give the bytes of the rows they compose: their blocks
                then hold several chunks, as a feature game's do.
            block_cap: bytes of composed rows one block may hold (see :meth:`block_rows`);
                default :data:`BLOCK_BYTES`. Games whose passes read only their slice of the
                block (component games: the hooks edit the pass's own activations) give a
                larger cap: fewer blocks, the same chunks.
            check: whether this run's passes may check that the model evaluates its rows
                independently (see :meth:`_checked_values`): True (a run with ``chunk`` is then
                not checked); False: never (a pass whose values explain nothing, such as a
                component game's capture of activations, would mark the model checked without
                checking it); a callable (component games): checked with its floating-point
                inputs as leaves, in gradient passes too, and the tensors the callable returns,
                called right before the checking pass's forward pass (after ``chunk``; the game
                makes the masks its hooks read leaves there). After a checking pass that could
                not run, ``build`` and ``chunk`` are called again before the plain pass (its
                hooks see one fresh pass).
        """
        if n_rows <= 0:
            return
        if grad and torch.is_inference_mode_enabled():
            # eng45: the rows' inference tensors cannot be saved for backward; torch raised
            # "element 0 of tensors does not require grad" from the first pass
            raise InputError(
                "a gradient method was called under torch.inference_mode(): gradients of the "
                "explained output w.r.t. the inputs cannot be taken there (tribute turns "
                "gradients on where it needs them, also under torch.no_grad()). Call it outside "
                "the inference_mode block, or use a perturbation method (feature_ablation, "
                "kernel_shap, ...), which runs under inference_mode.")
        if grad and not torch.is_grad_enabled():
            # the caller's torch.no_grad(): a gradient run composes its rows from their leaves
            # with gradients on, as it does by default (eng45: the composed rows had no
            # grad_fn, and torch raised "element 0 of tensors does not require grad")
            with torch.enable_grad():
                return self.run(n_rows, build, sink, row_bytes=row_bytes, grad=grad, desc=desc,
                                select=select, describe_row=describe_row, tune_key=tune_key,
                                blocks=blocks, chunk=chunk, block_bytes=block_bytes,
                                block_cap=block_cap, check=check)
        fixed = self.fixed_rows()
        tuner = None if fixed is not None else self.tuner(row_bytes, grad, tune_key)
        if tuner is not None:
            tuner.resume(n_rows)
        scope = active_progress()
        bar = scope if scope is not None else Progress(n_rows, desc, self.progress)
        if scope is not None:
            scope.rows_begin()
        # the pace of this run, for estimates of later calls (:meth:`throughput`): on the
        # tuner's clock (run-queue waits left out, as in the tuned rates), and without the
        # first chunk of a model's first run (lazy initialisation, first-touch memory: a cost
        # later calls do not pay). It prices a call whenever the tuner gives no rate (a fixed
        # batch_size; passes all cost per pass). eng49: a model with a 1 s lazy initialisation
        # and quick passes, feature ablation on 600 x 16 at batch_size=100, was priced from its
        # reference pass at 457 rows/s, "est. 22 s", for a call of 5.3 s wall (0.8 s CPU) at a
        # load of 18. Runs under 256 rows set no pace (clock readings of ~3 us each, spared)
        pace = SchedulerFreeClock() if n_rows >= 256 else None
        cold = pace is not None and not is_warm(self._model_key(), grad)
        t_run, paced_from, start = pace.now() if pace is not None else 0.0, 0, 0
        threads = torch.get_num_threads()
        clock: SchedulerFreeClock | None = None  # times tuning chunks (opened when needed)
        block_ok = blocks
        check_rows = self._check_rows(row_bytes, grad)  # passes this big may check the model
        # rev47o / aud48c: a component game's hooked passes were never checked (chunk), and its
        # capture passes (values of zeros) marked the model checked without checking it
        more = check if callable(check) else None
        checkable = bool(check) and (chunk is None or more is not None)
        # the first self-tuned pass the model refused (its rows, its error): the tuner keeps below
        refused: tuple[int, BaseException] | None = None
        try:
            while start < n_rows:
                if cold and start > 0 and pace is not None:  # the model's warm-up chunk is done
                    cold, t_run, paced_from = False, pace.now(), start
                size = fixed if tuner is None else tuner.propose()
                assert size is not None
                # read the clock while tuning only, and only for a chunk the tuner can use: it
                # ignores chunks of less than half their size (a run's short tail, a reference
                # pass on a few inputs), so those run untimed (no clock, and in block mode in
                # a block of their own as before): the same chunks, the same tuner state
                timing = tuner is not None and not tuner.done and 2 * (n_rows - start) >= size
                if timing and clock is None:
                    clock = SchedulerFreeClock()
                if block_ok:
                    # tuning: one chunk per block, its forward pass timed (what a block pays
                    # per chunk; composing and storing are paid per block, per row)
                    per_row = row_bytes if block_bytes is None else block_bytes
                    stop = min(start + (size if timing else self.block_rows(size, per_row,
                                                                           block_cap)),
                               n_rows)
                    after = None
                    if timing and tuner is not None and 0 < n_rows - stop and \
                            2 * (n_rows - stop) < size:
                        # a short tail after the timed chunk rides in its block when the loop
                        # would send it next as one untimed chunk anyway (decided once the
                        # chunk is recorded): one block fewer per still-tuning call
                        stop, after = n_rows, self._tail_rule(tuner, size, n_rows - start - size)
                    try:
                        run_block = self._run_grad_block if grad else self._run_block
                        spent, done = run_block(start, stop, size, build, sink, select,
                                                describe_row, threads, bar, scope,
                                                clock if timing else None, chunk, after,
                                                fixed, check_rows if checkable else 0, more)
                    except Exception as exc:
                        if grad:  # the passes before the failed one are stored: not sent again
                            start = self._sunk
                        if not _is_oom(exc):
                            if self._too_big(exc, tuner, size):
                                refused = refused or (self._last_refused, exc)
                                continue
                            if refused:
                                _forget_bound(tuner)
                                _keep_first(exc, refused)
                            raise
                        if tuner is None or size <= 1:
                            _forget_bound(tuner)
                            _keep_first(exc, refused)
                            raise _no_room(exc, size, fixed) from exc
                        done = -1  # nothing of the block was stored: retried smaller below
                    if done < 0:
                        assert tuner is not None
                        _out_of_memory(tuner, size)
                        continue
                    if timing and tuner is not None and after is None:
                        tuner.record(size, done - start, spent)
                    start = done
                    continue
                stop = min(start + size, n_rows)
                t0 = clock.now() if timing and clock is not None else 0.0
                try:
                    with own_work(threads):
                        rows = build(start, stop)
                        if chunk is not None:
                            chunk(start, stop)
                    check = checkable and self._check_wanted(stop - start, rows.inputs, check_rows)
                    got = None
                    if grad:
                        with torch.enable_grad():
                            vals, grads = self._pass(rows, stop - start, select, True, start,
                                                     describe_row, threads,
                                                     check=fixed if check else False,
                                                     more=more if check else None)
                    elif check and (got := self._checked_values(
                            rows.inputs, rows, stop - start, select, start, describe_row,
                            threads, fixed, more)) is not None:
                        vals, grads = got[1], None
                    else:
                        if check and more is not None:  # the checking pass's hooks ran: afresh
                            with own_work(threads):
                                rows = build(start, stop)
                                if chunk is not None:
                                    chunk(start, stop)
                        with torch.inference_mode():
                            vals, grads = self._pass(rows, stop - start, select, False, start,
                                                     describe_row, threads)
                except Exception as exc:
                    if not _is_oom(exc):
                        rows = vals = grads = None  # type: ignore[assignment]
                        if self._too_big(exc, tuner, size):
                            refused = refused or (self._last_refused, exc)
                            continue
                        if refused:
                            _forget_bound(tuner)
                            _keep_first(exc, refused)
                        raise
                    if tuner is None or size <= 1:
                        _forget_bound(tuner)
                        _keep_first(exc, refused)
                        raise _no_room(exc, size, fixed) from exc
                    oom = True
                else:
                    oom = False
                if oom:  # outside the handler: the failed pass's tensors are released first
                    assert tuner is not None
                    rows = vals = grads = None  # type: ignore[assignment]
                    _out_of_memory(tuner, size)
                    continue
                with own_work(threads):
                    sink(start, stop, vals, grads)
                if timing and tuner is not None and clock is not None:
                    tuner.record(size, stop - start, clock.now() - t0)
                bar.update(stop - start)
                if scope is not None:
                    scope.project()
                start = stop
            if refused is not None and tuner is not None:
                warnings.warn(
                    f"the model raised {type(refused[1]).__name__}({str(refused[1])[:200]!r}) on "
                    f"a self-tuned forward pass of {refused[0]} rows; tribute sends it at most "
                    f"{tuner.cap} rows per pass from now on (those rows were sent again; pass "
                    "batch_size= to choose the size).", RuntimeWarning,
                    stacklevel=user_stacklevel())
            if tuner is not None and not tuner.done:
                tuner.settle(n_rows)
            if not self._warm.get(grad, False):
                mark_warm(self._model_key(), grad)  # later tuners need no warm-up chunk
                self._warm[grad] = True
        finally:
            if scope is not None:
                scope.rows_end()
            if clock is not None:
                clock.close()
            if scope is None:
                bar.close()
            elif scope.planned and scope.done >= scope.planned_rows:
                scope.phase("solving")
        if pace is not None:
            if not cold:
                self._rate = (n_rows - paced_from) / max(pace.now() - t_run, 1e-9)
            elif self._rate is None:
                # the warm-up chunk was the whole run (a batch_size of all its rows): its pace,
                # warm-up included, is all there is; unset, a call that is one or two such
                # chunks was announced only once its rows had run (rev49n: a model sleeping
                # 2.5 ms per row, 300 inputs x 16 features at batch_size=8192, "est. 13 s"
                # after all 5,100 rows, 14.4 s; main warned "est. 16 s" before them)
                self._rate = n_rows / max(pace.now() - t_run, 1e-9)
            pace.close()

    def _too_big(self, exc: BaseException, tuner: BatchTuner | None, size: int) -> bool:
        """Whether the model's exception ``exc`` on a self-tuned pass of ``size`` rows is taken
        for a model that cannot take that many rows (a fixed-size buffer, an assertion on the
        batch, a kernel's launch limit): the model raised it itself (not tribute's checks), no
        pass of ``size`` rows or more has worked on this model and its rows, and a smaller size
        is left. The failed pass is then counted, the tuner keeps below ``size`` for good (as
        after running out of memory; a run that completes warns with the size), and the loop
        sends the same rows again in a smaller chunk: every value comes from a pass the model completed
        (a model that raises at every size still raises its own error, at the smallest one).
        Before, the error surfaced raw or not depending on how far the timing-driven search
        had grown the chunks."""
        failed, self._failed = self._failed, None
        if tuner is None or failed is None or failed[0] is not exc or failed[1] <= 1 \
                or isinstance(exc, (InputError, ModelOutputError, UnsupportedModelError)):
            return False
        n = failed[1]  # the pass's rows (a run's last chunk may hold fewer than ``size``)
        if n <= max([_ok_rows(self._model_key()), *tuner.rates]):
            return False  # that many rows worked before: the error is not about the batch size
        self.n_rows += self._model_rows(n)
        self.n_passes += 1
        self._last_refused = n
        _out_of_memory(tuner, n)
        return True

    def _check_wanted(self, n: int, inputs: tuple[Any, ...] = (),
                      most: int = _CHECK_MAX_ROWS) -> bool:
        """Whether the next forward pass of ``n`` rows checks that the model evaluates its rows
        independently (see :meth:`_checked_values`): once per torch model and process, on the
        first pass of 2 to ``most`` rows (:meth:`_check_rows`; 0: a run whose passes are not
        checked, see :meth:`run`'s ``check``)."""
        if self._check_small and most:
            most = _CHECK_MAX_ROWS
        if self._batch_checked or not 2 <= n <= most \
                or self.model.module is None:
            return False
        if _is_checked(self._model_key()):
            self._batch_checked = True
            return False
        ndim = inputs[0].ndim if len(inputs) == 1 and isinstance(inputs[0], torch.Tensor) else None
        if _rowwise_by_construction(self.model.module, ndim):  # no pass needed (nor its cost)
            self._batch_checked = True
            return False
        return True

    def _check_rows(self, row_bytes: int, grad: bool) -> int:
        """The most rows of a pass that may check the model's rows (:meth:`_check_wanted`): any
        gradient pass (its graph is built anyway; the check adds one backward of one row); a
        plain pass up to what a gradient chunk may hold under ``max_memory``, and at least
        :data:`_CHECK_MAX_ROWS` (aud47o: the bound was 16 rows for every pass, so with a fixed
        ``batch_size`` over 16 and more than 16 rows per pass no pass was ever checked, and a
        batch-mean model's kernel_shap credits on 40 inputs moved from -0.1765 at
        ``batch_size=64`` to -0.1561 at 1000 with no error)."""
        if grad:
            return 1 << 62
        return max(_CHECK_MAX_ROWS, max_chunk_rows(row_bytes, True, self.max_memory, self._n_params,
                                                   getattr(self.model, "device", None)))

    def _done_checking(self) -> None:
        self._batch_checked = True
        _mark_checked(self._model_key())

    def _checked_values(self, inputs: tuple[Any, ...], rows: Rows, n: int,
                        select: Callable[[torch.Tensor, Rows], torch.Tensor] | None, start: int,
                        describe_row: Callable[[int], str] | None, threads: int,
                        fixed: int | None, more: Callable[[], list[torch.Tensor]] | None = None,
                        ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """One forward pass of ``n`` rows (``inputs``; ``rows`` gives their samples, extra and
        keyword arguments) run with autograd instead of inference mode, returning the detached
        raw outputs and explained values, after checking that a middle row's values do
        not depend on the other rows (their gradients with respect to the other
        rows' floating-point inputs are all zero).

        A model whose output for one row depends on the rest of its batch (BatchNorm without
        running statistics, a layer over the batch axis) would make every credit depend on
        how tribute batches coalitions -- the self-tuned size, ``batch_size``, the order of a
        call's rows -- and is refused. The rows are the call's own (nothing is evaluated
        twice); None (the caller then runs the plain pass) when nothing can be checked: no
        floating-point per-row input, or a model that cannot run with autograd. ``more`` (see
        :meth:`run`'s ``check``) gives further leaves, made right before the forward pass."""
        leaves: list[torch.Tensor] = []
        args: list[Any] = []
        with torch.inference_mode(False):
            for x in inputs:
                if isinstance(x, torch.Tensor) and x.is_floating_point() and x.ndim > 0 \
                        and int(x.shape[0]) == n:
                    leaf = x.detach().clone().requires_grad_(True)
                    leaves.append(leaf)
                    args.append(leaf.clone())  # a model that edits its input edits a copy
                else:
                    args.append(x)
            if more is not None:
                leaves.extend(more())
        if not leaves:
            # aud50c: nothing checked (token ids): not marked, or a later call that can check
            # (a component game's masks are leaves) went unchecked on a batch-mean model
            self._batch_checked = True
            return None
        with torch.inference_mode(False), torch.enable_grad():
            try:
                out = self._forward(tuple(args), rows.extra, rows.kwargs, n)
            except (ModelOutputError, FirstPassRefusal):
                raise
            except Exception as exc:  # e.g. numpy inside the forward: no check, the plain pass runs
                if _is_oom(exc):  # any allocator's
                    if fixed is None or n <= _CHECK_MAX_ROWS:
                        raise  # self-tuned: backed off by the caller, checked again
                    # a fixed batch_size over 16 rows (rev47o): this pass's autograd graph (every
                    # layer's activations) did not fit where the user's inference pass may. The
                    # plain pass runs, and this call checks passes of up to 16 rows only, as
                    # before aud47o (the call failed with "do not fit" instead)
                    self._check_small = True
                    return None
                if more is not None and isinstance(exc, TributeError):
                    raise  # a component game's hook refused the pass: the plain pass would too
                # the model saw the rows (aud48c: a numpy call inside forward failed the checking
                # pass, and its rows were missing from n_rows: 30 counted where the model saw 36)
                self.n_rows += self._model_rows(n)
                self.n_passes += 1
                # aud50c: marked checked here, a model that raised on bad inputs (a shape error
                # the plain pass raised again) stayed marked; the user's next call on a batch
                # of a batch-mean model went unchecked (kernel_shap off by up to 0.05, silent).
                # Not checked again in this call; marked once a plain pass runs (_forward)
                self._batch_checked = True
                self._mark_pending = True
                return None
            vals = self._values(out, rows, n, select, True, start, describe_row, threads)
            try:
                r = _cross_row(vals, leaves, n)
            except Exception:  # not differentiable (an in-place edit autograd refuses): unchecked
                r = None
        if r is not None:
            raise _batch_dependent(r, n, start, describe_row, fixed, inputs)
        self._done_checking()
        return out.detach(), vals.detach()

    def block_rows(self, size: int, row_bytes: int, block_cap: int | None = None) -> int:
        """Rows per block of a ``blocks=True`` run at ``size`` rows per chunk: a whole number
        of chunks holding at most ``block_cap`` (default :data:`BLOCK_BYTES`) of composed rows
        and the memory cap's share of one chunk (as many bytes as one untuned chunk may take),
        at least one chunk."""
        most = BLOCK_BYTES if block_cap is None else int(block_cap)
        cap = min(most, int(self.max_memory * _CHUNK_SHARE)) // max(int(row_bytes), 1)
        return max(size, (cap // size) * size)

    @staticmethod
    def _tail_rule(tuner: BatchTuner, size: int, tail: int) -> Callable[[float], bool]:
        """For a block of one timed chunk of ``size`` rows and a ``tail`` of fewer than half
        as many: records the chunk's seconds, then says whether the loop would send the tail
        next as one untimed chunk (the next size holds it, and the tuner is done or would
        ignore it: see :meth:`BatchTuner.record`), so it may run in the same block: the same
        chunks and the same tuner state as in a block of its own."""

        def after(seconds: float) -> bool:
            tuner.record(size, size, seconds)
            nxt = tuner.propose()
            return tail <= nxt and (tuner.done or 2 * tail < nxt)

        return after

    def _run_block(self, start: int, stop: int, size: int, build: Callable[[int, int], Rows],
                   sink: Sink, select: Callable[[torch.Tensor, Rows], torch.Tensor] | None,
                   describe_row: Callable[[int], str] | None, threads: int,
                   bar: Progress, scope: Progress | None,
                   clock: SchedulerFreeClock | None = None,
                   chunk: Callable[[int, int], None] | None = None,
                   after: Callable[[float], bool] | None = None,
                   fixed: int | None = None,
                   check_rows: int = _CHECK_MAX_ROWS,
                   more: Callable[[], list[torch.Tensor]] | None = None) -> tuple[float, int]:
        """Rows ``[start, stop)`` composed at once, sent to the model ``size`` rows at a time;
        values selected, checked and stored once for the block. Returns the seconds the
        forward passes took by ``clock`` (0.0 without one) and the end of the rows done
        (``stop``); ``chunk`` (see :meth:`run`) is called before each forward pass.

        With ``after`` (tuning: a timed chunk of ``size`` rows and a short tail): only the first
        pass is timed, ``after(seconds)`` records it and says whether the tail runs here as
        one more pass; if not, the block ends after the first chunk (the tail's rows are
        composed again by the next block)."""
        with own_work(threads):
            rows = build(start, stop)
        if rows.extra or rows.kwargs or rows.leaves:
            raise RuntimeError("blocks=True: rows must not carry extra, kwargs or leaves")
        n = stop - start
        inputs = rows.inputs
        outs: list[torch.Tensor] = []
        spent = 0.0
        with torch.inference_mode():
            t0 = clock.now() if clock is not None else 0.0
            for a in range(0, n, size):
                b = min(a + size, n)
                part = inputs if n <= size else tuple(_aligned(x[a:b]) for x in inputs)
                if chunk is not None:
                    chunk(start + a, start + b)
                check = self._check_wanted(b - a, part, check_rows)
                got = self._checked_values(
                    part, Rows(inputs=part, sample=rows.sample[a:b]), b - a, select, start + a,
                    describe_row, threads, fixed, more) if check else None
                if got is None and check and more is not None and chunk is not None:
                    chunk(start + a, start + b)  # the checking pass's hooks ran: afresh
                outs.append(self._forward(part, (), {}, b - a) if got is None else got[0])
                bar.update(b - a)
                if scope is not None:
                    scope.project()
                if after is not None:
                    if clock is not None:
                        _finish(outs[-1])
                        spent = clock.now() - t0
                    if not after(spent):
                        n, stop = b, start + b  # the tail goes to the next block
                        rows = Rows(inputs=tuple(x[:b] for x in inputs), sample=rows.sample[:b])
                        break
                    after = None
            if clock is not None and not spent:
                _finish(outs[-1])
                spent = clock.now() - t0
            out = outs[0] if len(outs) == 1 else torch.cat(outs)
            del outs
            vals = self._values(out, rows, n, select, False, start, describe_row, threads)
        with own_work(threads):
            sink(start, stop, vals.detach(), None)
        return spent, stop

    def _run_grad_block(self, start: int, stop: int, size: int,
                        build: Callable[[int, int], Rows], sink: Sink,
                        select: Callable[[torch.Tensor, Rows], torch.Tensor] | None,
                        describe_row: Callable[[int], str] | None, threads: int,
                        bar: Progress, scope: Progress | None,
                        clock: SchedulerFreeClock | None = None,
                        chunk: Callable[[int, int], None] | None = None,
                        after: Callable[[float], bool] | None = None,
                        fixed: int | None = None,
                        check_rows: int = _CHECK_MAX_ROWS,
                        more: Callable[[], list[torch.Tensor]] | None = None,
                        ) -> tuple[float, int]:
        """:meth:`_run_block` with gradients: rows ``[start, stop)`` composed at once, then
        per pass of ``size`` rows its slice of every input made a leaf, a copy of it sent to
        the model, the values and gradients of that pass taken as :meth:`run` takes them
        without blocks (the same pass: same rows, same size, one backward) and handed to
        ``sink`` right away. What a block saves is the per-pass cost of composing rows
        (issue #9: mlp13 integrated gradients paid it once per pass of 4,096 rows). Returns
        the seconds the passes (and their sinks) took by ``clock`` and the end of the rows
        done; ``after`` as in :meth:`_run_block`."""
        self._sunk = start
        with own_work(threads):
            rows = build(start, stop)
        if rows.extra or rows.kwargs or rows.leaves:
            raise RuntimeError("blocks=True: rows must not carry extra, kwargs or leaves")
        n = stop - start
        inputs = rows.inputs
        spent = 0.0
        t0 = clock.now() if clock is not None else 0.0
        for a in range(0, n, size):
            b = min(a + size, n)
            # a leaf per input (a view of the block, detached); the model gets a fresh copy
            leaves = [(x if n <= size else x[a:b]).detach().requires_grad_(True) for x in inputs]
            part = Rows(inputs=tuple(x.clone() for x in leaves), sample=rows.sample[a:b],
                        leaves=leaves)
            if chunk is not None:
                chunk(start + a, start + b)
            check = bool(check_rows) and self._check_wanted(b - a, part.inputs, check_rows)
            vals, grads = self._pass(part, b - a, select, True, start + a, describe_row,
                                     threads, check=fixed if check else False,
                                     more=more if check else None)
            with own_work(threads):
                sink(start + a, start + b, vals, grads)
            self._sunk = start + b
            bar.update(b - a)
            if scope is not None:
                scope.project()
            if after is not None:
                if clock is not None:
                    _finish(vals)
                    spent = clock.now() - t0
                if not after(spent):
                    return spent, start + b  # the tail goes to the next block
                after = None
        if clock is not None and not spent:
            spent = clock.now() - t0
        return spent, stop

    def _model_rows(self, n: int) -> int:
        """The model rows ``n`` engine rows cost: ``n`` times the adapter's
        ``sequences_per_row`` (a dual encoder embeds a text pair's two texts separately, so
        ``n_rows`` counted each pair once while the model saw two sequences, rev45t)."""
        k = getattr(self.model, "sequences_per_row", 1)
        return n * (int(k) if isinstance(k, int) and k > 1 else 1)

    def _forward(self, inputs: tuple[torch.Tensor, ...], extra: tuple[Any, ...],
                 kwargs: dict[str, Any], n: int) -> torch.Tensor:
        """One forward pass of ``n`` rows, counted; the output's batch axis is checked. A pass
        that runs out of device memory is counted too (the model saw its rows; the engine then
        sends them again in a smaller chunk, counted again)."""
        probe, self.first_pass = self.first_pass, None
        try:
            if probe is None:
                out = self.model(inputs, extra, kwargs)
            else:
                with probe.watch(inputs):
                    out = self.model(inputs, extra, kwargs)
        except Exception as exc:
            self.first_pass = probe  # (the pass failed: the next one looks)
            if _is_oom(exc):
                self.n_rows += self._model_rows(n)
                self.n_passes += 1
            else:
                self._failed = (exc, n)  # see _too_big
            if self._mark_pending:
                # rev50c: the plain pass after a raising checking pass raised too: the failure
                # was the rows' (a pass too big for a model taking at most 5 rows), not
                # autograd's, so the model is not marked and a later, smaller pass of this call
                # checks it (a batch-mean model's self-tuned feature_ablation gave silent credits)
                self._mark_pending = False
                self._batch_checked = False
            raise
        self.n_rows += self._model_rows(n)
        self.n_passes += 1
        _note_ok_rows(self._model_key(), n)
        if self._mark_pending:  # a checking pass raised and this plain pass ran: not checkable
            self._mark_pending = False
            _mark_checked(self._model_key())
        if out.ndim == 0 or out.shape[0] != n:
            raise ModelOutputError(
                f"model returned shape {tuple(out.shape)} for a batch of {n} rows; the first axis "
                f"must be the batch axis (one output row per input row).{_scalar_rows_hint(inputs)}"
                " tribute calls the model on batches: a function of one row needs wrapping, e.g. "
                "model=lambda X: np.stack([f(row) for row in X])."
            )
        if probe is not None:
            probe.settle()
        return out

    def _values(self, out: torch.Tensor, rows: Rows, n: int,
                select: Callable[[torch.Tensor, Rows], torch.Tensor] | None, grad: bool,
                start: int, describe_row: Callable[[int], str] | None,
                threads: int) -> torch.Tensor:
        """The explained ``rows x targets`` values of raw outputs, checked to be finite."""
        with own_work(threads if not grad else 1):  # with gradients, select is in the graph
            if select is not None:
                vals = select(out, rows)
            else:
                assert self.target is not None
                vals = self.target.select(out, rows.sample)
            # one reduction per chunk: a NaN or Inf anywhere makes the sum non-finite (a sum
            # that merely overflows is told apart below)
            all_finite = vals.numel() == 0 or math.isfinite(float(vals.detach().sum()))
            if not all_finite:
                finite = torch.isfinite(vals)
                all_finite = bool(finite.all())
        if not all_finite:
            bad = int((~finite).any(dim=1).nonzero()[0, 0])
            where = describe_row(start + bad) if describe_row else f"row {start + bad}"
            kind = "NaN" if bool(torch.isnan(vals).any()) else "Inf"
            raise ModelOutputError(
                f"model output is {kind} at {where} (the input composed for that coalition). "
                "Check the baseline/background for values the model cannot handle, or clamp "
                "the model's output (e.g. use output='log_prob' instead of log of a probability)."
            )
        return vals

    def _pass(self, rows: Rows, n: int, select: Callable[[torch.Tensor, Rows], torch.Tensor] | None,
              grad: bool, start: int, describe_row: Callable[[int], str] | None,
              threads: int = 1, check: int | bool | None = False,
              more: Callable[[], list[torch.Tensor]] | None = None,
              ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """One forward pass (and backward, with ``grad``). ``check`` (gradient runs; the
        fixed rows per pass, or None when tuned; False: no check) first checks that the
        explained values of the chunk's first and last rows do not depend on the other rows'
        leaves (see :meth:`_checked_values`); with ``more`` (see :meth:`run`'s ``check``) also
        on the rows' floating-point inputs and the tensors ``more`` gives."""
        inputs, seen = rows.inputs, list(rows.leaves)
        if check is not False and more is not None:
            # aud48c: a component game's rows carry its masks as leaves, which a layer mixing
            # the batch before the hooked module does not reach: the inputs are leaves too
            inputs = tuple(x.detach().clone().requires_grad_(True)
                           if isinstance(x, torch.Tensor) and x.is_floating_point() and x.ndim > 0
                           and int(x.shape[0]) == n and not x.requires_grad else x for x in inputs)
            seen += [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]
            seen += more()
        out = self._forward(inputs, rows.extra, rows.kwargs, n)
        vals = self._values(out, rows, n, select, grad, start, describe_row, threads)
        if not grad:
            return vals.detach(), None
        leaves = rows.leaves
        if not leaves:
            raise RuntimeError("gradient run without leaves")  # programming error, not user input
        if check is not False:
            # aud49g: Hessian rows' select returns derivatives of the sum over the pass's rows,
            # blind to a batch mean before ReLUs (zero second derivatives): the check passed,
            # marked the model checked, and later calls on batches went unchecked
            probe = vals if rows.checked is None else rows.checked
            every = [*seen, *(x for x in leaves if all(x is not y for y in seen))]
            try:
                r = _cross_row(probe, every, n)
            except Exception:  # not differentiable twice over (an in-place edit): unchecked
                r = None
            if r is not None:
                raise _batch_dependent(r, n, start, describe_row,
                                       check if isinstance(check, int) else None, inputs)
            # aud49g: a pass with no leaf of one row per row (DeepLIFT's points carry their
            # input and baseline rows: 2n) checked nothing; it marked the model checked, and
            # later calls on batches of a batch-mixing model went unchecked
            if any(x.requires_grad and x.ndim > 0 and int(x.shape[0]) == n for x in every):
                self._done_checking()
        per_target: list[tuple[torch.Tensor | None, ...]] = []
        n_t = vals.shape[1]
        try:
            for t in range(n_t):
                per_target.append(tuple(torch.autograd.grad(
                    vals[:, t].sum(), leaves, retain_graph=t < n_t - 1, allow_unused=True
                )))
        except RuntimeError as exc:
            if "modified by an inplace operation" not in str(exc):
                raise
            raise _inplace_error(self.model.module, exc) from None
        grads = []
        for i, leaf in enumerate(leaves):
            stacked: list[torch.Tensor] = []
            for target_grads in per_target:
                gi = target_grads[i]
                stacked.append(gi if gi is not None else torch.zeros_like(leaf))
            # one target: a view with the target axis (the same values, no copy)
            grads.append((stacked[0].unsqueeze(1) if n_t == 1 else torch.stack(stacked, dim=1))
                         .detach())
        return vals.detach(), grads
