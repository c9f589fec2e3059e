"""Canonizers: reversible rewrites that make a model LRP-ready.

A canonizer's :meth:`Canonizer.apply` changes the model in place and returns a function that
undoes the change exactly (parameters are copied back bit for bit; replaced ``forward``
attributes and added hooks are removed). :func:`canonized` applies a list of them and always
undoes them, also after an exception.

- :class:`MergeBatchNorm` folds an eval-mode BatchNorm into the Linear/Conv right before it
  (``W' = W * s``, ``b' = (b - mu) * s + beta`` with ``s = gamma / sqrt(var + eps)``) and makes
  the BatchNorm the identity, so that the rules see the affine map the network computes.
- :class:`ResidualBlocks` rewrites ResNet blocks built like torchvision's ``BasicBlock`` /
  ``Bottleneck`` (attributes ``conv1, bn1, conv2, bn2, [conv3, bn3], relu, downsample``) so
  that the skip addition is an :class:`Add`, whose rule distributes relevance in proportion to
  the summands (``R_a = a / (a + b) * R``).
- :class:`NoInplace` turns ``inplace=True`` activations off for the duration (the rules need
  each layer's input intact in the backward pass).

Use :class:`Add` in your own residual blocks (``self.add(out, identity)`` instead of
``out + identity``) so that LRP sees the addition.

Reference: Guillemot et al. (2020), "Breaking Batch Normalization for better explainability
of Deep Neural Networks through Layer-wise Relevance Propagation"; Zennit's canonizers
(Anders et al. 2021) for the idea.
"""

from __future__ import annotations

import contextlib
import itertools
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ...errors import UnsupportedModelError

__all__ = ["Add", "Canonizer", "MergeBatchNorm", "NoInplace", "ResidualBlocks", "canonized"]

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
#: BatchNorms currently folded into their preceding layer (identity until undone).
MERGED: weakref.WeakSet[nn.Module] = weakref.WeakSet()
_AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class Add(nn.Module):
    """``a + b`` as a module, so that LRP can give the sum its own rule (:class:`~.rules.Norm`)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class Canonizer(ABC):
    """A reversible model rewrite: :meth:`apply` returns the function that undoes it."""

    @abstractmethod
    def apply(self, model: nn.Module) -> Callable[[], None]:
        """Rewrite ``model`` in place and return the function that restores it exactly."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NoInplace(Canonizer):
    """Set ``inplace=False`` on every module that has an ``inplace`` flag; restore it afterwards."""

    def apply(self, model: nn.Module) -> Callable[[], None]:
        changed = [m for m in model.modules() if getattr(m, "inplace", False) is True]
        for m in changed:
            m.inplace = False  # type: ignore[assignment]

        def undo() -> None:
            for m in changed:
                m.inplace = True  # type: ignore[assignment]

        return undo


def _bn_pairs(model: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """(affine, batchnorm) pairs: consecutive in a Sequential, or ``convN``/``bnN`` attributes."""
    pairs: list[tuple[nn.Module, nn.Module]] = []
    for mod in model.modules():
        if isinstance(mod, nn.Sequential):
            kids = list(mod.children())
            pairs += [(a, b) for a, b in itertools.pairwise(kids) if isinstance(a, _AFFINE) and isinstance(b, _BN)]
        elif _is_block(mod):
            for i in (1, 2, 3):
                a, b = getattr(mod, f"conv{i}", None), getattr(mod, f"bn{i}", None)
                if isinstance(a, _AFFINE) and isinstance(b, _BN):
                    pairs.append((a, b))
    seen: set[int] = set()
    out = []
    for a, b in pairs:
        if id(b) not in seen:
            seen.add(id(b))
            out.append((a, b))
    return out


class MergeBatchNorm(Canonizer):
    """Fold eval-mode BatchNorms into the preceding Linear/Conv; the BatchNorm becomes the identity.

    Pairs are found structurally: an affine layer directly followed by a BatchNorm inside an
    ``nn.Sequential``, and ``convN``/``bnN`` pairs of ResNet-style blocks (see
    :class:`ResidualBlocks`). The returned undo copies the original parameters back exactly
    and removes the identity hooks (a bias created for a bias-free layer is removed again).
    """

    def apply(self, model: nn.Module) -> Callable[[], None]:
        pairs = _bn_pairs(model)
        paths = {m: p for p, m in model.named_modules()}
        for _, bn in pairs:
            if bn.training or getattr(bn, "running_mean", None) is None:
                raise UnsupportedModelError(
                    f"lrp: BatchNorm {paths.get(bn, '?')!r} is in training mode or keeps no running "
                    "statistics; LRP folds BatchNorm into the preceding layer and needs eval-mode "
                    "running statistics (call model.eval(); track_running_stats=True)."
                )
        saved: list[tuple[nn.Module, torch.Tensor, torch.Tensor | None]] = []
        handles: list[Any] = []

        def undo() -> None:
            for h in handles:
                h.remove()
            for _, bn in pairs:
                MERGED.discard(bn)
            with torch.no_grad():
                for mod, w, b in reversed(saved):
                    m: Any = mod
                    m.weight.copy_(w)
                    if b is None:
                        del m.bias
                        m.register_parameter("bias", None)
                    else:
                        m.bias.copy_(b)

        try:
            with torch.no_grad():
                for lin, bn in pairs:
                    lm: Any = lin
                    bm: Any = bn
                    w0 = lm.weight.detach().clone()
                    b0 = None if lm.bias is None else lm.bias.detach().clone()
                    saved.append((lin, w0, b0))
                    scale = (bm.weight if bm.weight is not None else 1.0) / torch.sqrt(bm.running_var + bm.eps)
                    shift = bm.bias if bm.bias is not None else torch.zeros_like(bm.running_mean)
                    if b0 is None:
                        lm.bias = nn.Parameter(torch.zeros(lm.weight.shape[0], dtype=w0.dtype, device=w0.device),
                                               requires_grad=False)
                    view = (-1,) + (1,) * (w0.ndim - 1)
                    lm.weight.copy_(w0 * scale.reshape(view))
                    lm.bias.copy_((lm.bias - bm.running_mean) * scale + shift)
                    handles.append(bn.register_forward_hook(_identity))
                    MERGED.add(bn)
        except BaseException:
            undo()
            raise
        return undo


def _identity(module: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
    return args[0]


def _is_block(mod: nn.Module) -> bool:
    return all(hasattr(mod, a) for a in ("conv1", "bn1", "conv2", "bn2", "relu", "downsample"))


def _block_forward(block: Any, add: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(x: torch.Tensor) -> torch.Tensor:
        out = block.relu(block.bn1(block.conv1(x)))
        out = block.bn2(block.conv2(out))
        if hasattr(block, "conv3"):
            out = block.bn3(block.conv3(block.relu(out)))
        identity = x if block.downsample is None else block.downsample(x)
        result: torch.Tensor = block.relu(add(identity, out))
        return result

    return forward


class ResidualBlocks(Canonizer):
    """Make the skip addition of torchvision-style ResNet blocks an :class:`Add` module.

    A block qualifies when it has ``conv1, bn1, conv2, bn2, relu, downsample`` (and
    ``conv3, bn3`` for bottlenecks) and computes
    ``relu(bn2(conv2(relu(bn1(conv1(x))))) [then conv3/bn3] + downsample(x))`` — the structure
    of ``torchvision.models.resnet.BasicBlock``/``Bottleneck``. Its ``forward`` is replaced by
    an instance attribute for the duration, and an ``Add`` child ``lrp_add`` is attached; both
    are removed by the undo.
    """

    def apply(self, model: nn.Module) -> Callable[[], None]:
        blocks = [m for m in model.modules() if _is_block(m)]
        done: list[nn.Module] = []

        def undo() -> None:
            for b in done:
                b.__dict__.pop("forward", None)
                if "lrp_add" in b._modules:
                    del b._modules["lrp_add"]

        try:
            for b in blocks:
                if "forward" in b.__dict__ or "lrp_add" in b._modules:
                    continue
                add = Add()
                b.add_module("lrp_add", add)
                done.append(b)
                b.__dict__["forward"] = _block_forward(b, add)
        except BaseException:
            undo()
            raise
        return undo


#: What every built-in composite applies.
DEFAULT_CANONIZERS: tuple[Canonizer, ...] = (NoInplace(), MergeBatchNorm(), ResidualBlocks())


@contextlib.contextmanager
def canonized(model: nn.Module, canonizers: Sequence[Canonizer]) -> Iterator[nn.Module]:
    """Apply ``canonizers`` in order; undo them in reverse order on exit, also after an exception."""
    undos: list[Callable[[], None]] = []
    try:
        for c in canonizers:
            undos.append(c.apply(model))
        yield model
    finally:
        for u in reversed(undos):
            u()
