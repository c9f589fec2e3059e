"""Which axis of an image holds its channels, where a per-sample shape alone cannot tell.

A per-sample shape ``(8, 6, 3)`` is an 8 x 6 RGB image held channels-last ``(H, W, C)`` or an
8-channel 6 x 3 image held channels-first ``(C, H, W)``. The metrics' shape rule (a last axis
of 1, 3 or 4 after two longer ones reads channels-last) warned on the second (small44). A torch
model with a 2-D convolution says which: the first ``Conv2d`` it registers reads
``in_channels`` channels, the length of one axis of the image only in the layout the model
uses. It is read from the module, without running the model (methods and metrics evaluate a
model only through its game).

The explorer reads a stronger signal of the same kind, the shape the first convolution
receives when it runs one row (:mod:`tribute.explorer.subjects`), because it may run the model
itself; it falls back to its own shape rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InputError

__all__ = ["CHANNEL_COUNTS", "channels_last", "channels_last_by_model", "first_conv_channels",
           "looks_channels_last"]

#: Channel counts of image layouts (gray, RGB, RGBA): a last axis of this size after two longer
#: ones reads as ``(H, W, C)`` by shape.
CHANNEL_COUNTS = (1, 3, 4)


#: Layers that keep the width of what they read: registered before the first ``Conv2d`` they
#: do not make it read an intermediate tensor of another width.
_WIDTH_KEEPING = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm,
                  torch.nn.InstanceNorm1d, torch.nn.InstanceNorm2d, torch.nn.InstanceNorm3d,
                  torch.nn.GroupNorm, torch.nn.LayerNorm)

#: Layers whose output channels a ``Conv2d`` may read.
_CONVS = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.ConvTranspose1d,
          torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)


def first_conv_channels(model: Any) -> int | None:
    """``in_channels`` of the first ``torch.nn.Conv2d`` registered in ``model``, where it reads
    the model's input; None for anything else (no torch module, no 2-D convolution) and where
    the module tree says it may read an intermediate tensor. A :class:`ModelAdapter` is read
    through its ``module``.

    Registration order is not forward order: a ``head = Conv2d(16, 2, 1)`` registered before
    the ``stem = Conv2d(3, 16, 3)`` that feeds it, or a ``Conv2d(16, ...)`` fed by a
    ``Linear`` registered before it, read 16 channels of an intermediate tensor, and the
    channels-first ``(3, 16, 16)`` images of such models were refused by the region methods
    as channels-last (rev44s). So the convolution is trusted only where no layer with
    parameters that may change the width (anything but a normalisation) is registered before
    it, and no other convolution writes as many channels as it reads.
    """
    module = model if isinstance(model, torch.nn.Module) else getattr(model, "module", None)
    if not isinstance(module, torch.nn.Module):
        return None
    mods = list(module.modules())
    at, first = next(((i, sub) for i, sub in enumerate(mods) if isinstance(sub, torch.nn.Conv2d)),
                     (0, None))
    if first is None:
        return None
    c = int(first.in_channels)
    if c < 1:  # a LazyConv2d reads 0 channels until its first call
        return None
    if any(sub is not module and not isinstance(sub, _WIDTH_KEEPING)
           and next(sub.parameters(recurse=False), None) is not None for sub in mods[:at]):
        return None  # a Linear, an embedding, another convolution ... may feed it
    if any(sub is not first and isinstance(sub, _CONVS) and int(sub.out_channels) == c for sub in mods):
        return None  # it may read that convolution's output
    return c


def _conv2d_reads(model: Any) -> list[int]:
    """``in_channels`` of every ``Conv2d`` of ``model``, in registration order."""
    module = model if isinstance(model, torch.nn.Module) else getattr(model, "module", None)
    if not isinstance(module, torch.nn.Module):
        return []
    return [int(sub.in_channels) for sub in module.modules() if isinstance(sub, torch.nn.Conv2d)]


def _fed_by_its_first(model: Any, count: int, c: int) -> bool:
    """Whether a ``Conv2d`` reading ``count`` channels may simply read the output of the first
    registered ``Conv2d`` (which reads ``c``): that one writes ``count`` channels, and no other
    convolutions together write the ``c`` channels it reads (the concatenated branches of a
    fuse registered first). A plain chain ``Conv2d(32, 16) -> Conv2d(16, 8)`` on channels-last
    ``(16, 16, 32)`` patches (rev46z)."""
    module = model if isinstance(model, torch.nn.Module) else getattr(model, "module", None)
    if not isinstance(module, torch.nn.Module):
        return False
    convs = [sub for sub in module.modules() if isinstance(sub, _CONVS)]
    first = next((sub for sub in convs if isinstance(sub, torch.nn.Conv2d)), None)
    if first is None or int(first.out_channels) != count:
        return False
    sums = 1  # bit s: some of the other convolutions together write s channels (s <= c)
    for sub in convs:
        if sub is not first and 0 < int(sub.out_channels) <= c:
            sums |= (sums << int(sub.out_channels)) & ((1 << (c + 1)) - 1)
    return not (sums >> c) & 1


def channels_last_by_model(shape: tuple[int, ...], model: Any) -> bool | None:
    """For a 3-D per-sample image shape: True where the model's first ``Conv2d`` reads as many
    channels as the last axis holds and not the first, False where it reads the first and not
    the last, None where it cannot tell (no convolution, both or neither axis match, or the
    clash below).

    The first registered ``Conv2d`` can read an intermediate tensor whose channel count equals
    an image's width by chance: a fuse ``Conv2d(8, ...)`` registered before the branches whose
    4 + 4 channels it reads made a channels-first ``(3, 8, 8)`` image channels-last (region
    methods and CRAFT refused it, the metrics warned; Grad-CAM mapped it to 3 x 8, rev45g).
    Where the last axis is not shorter than the other two (not an ordinary ``(H, W, C)``
    image) and another ``Conv2d`` of the model reads as many channels as the first axis holds,
    the model says both and this says None. Channels-last patches with many bands
    (``(5, 5, 20)``, a model that permutes them and no other ``Conv2d`` reading 5 channels) stay
    channels-last: Grad-CAM's own rule (an ``(H, W, C)`` image holds fewer channels than rows
    and columns) mapped them to 5 x 20 (small46: map error 0.0052 for a map up to 0.0053).
    Nor where that other ``Conv2d`` may read the first one's output (it writes the first axis's
    count and no other convolutions together write what it reads): a plain chain
    ``Conv2d(32, 16) -> Conv2d(16, 8)`` on channels-last ``(16, 16, 32)`` patches was read
    channels-first (XRAI segmented 16 x 32 images, Grad-CAM mapped the layer to 16 x 32; rev46z).
    """
    if len(shape) != 3:
        return None
    c = first_conv_channels(model)
    if c is None:
        return None
    first, last = int(shape[0]) == c, int(shape[-1]) == c
    if first == last:
        return None
    if last and c >= min(int(shape[0]), int(shape[1])) and int(shape[0]) in _conv2d_reads(model)[1:] \
            and not _fed_by_its_first(model, int(shape[0]), c):
        return None
    return last


def looks_channels_last(shape: tuple[int, ...], model: Any = None) -> bool:
    """Whether a per-sample image shape is channels-last ``(H, W, C)``: the model's answer
    (:func:`channels_last_by_model`) where it gives one, else the shape rule (3-D, a last axis
    of 1, 3 or 4 after two axes longer than 4: ``(28, 28, 1)``, ``(224, 224, 3)``)."""
    told = channels_last_by_model(tuple(shape), model)
    if told is not None:
        return told
    return len(shape) == 3 and int(shape[-1]) in CHANNEL_COUNTS \
        and int(shape[0]) > max(CHANNEL_COUNTS) and int(shape[1]) > max(CHANNEL_COUNTS)


def channels_last(channel_axis: Any, owner: str, shapes: Sequence[tuple[int, ...]] = ()) -> bool:
    """Whether ``channel_axis`` (of the batched image tensor, as CRAFT's and TCAV's
    ``channel_axis``) says channels-last: ``None`` or ``1`` -> ``(batch, C, H, W)`` /
    ``(batch, H, W)`` (False), ``-1`` or ``3`` -> ``(batch, H, W, C)`` (True; every per-sample
    shape must then be 3-D). :class:`InputError` naming ``owner`` otherwise (rev43m; shared by
    the metrics and the region methods, small44).
    """
    if channel_axis is None:
        return False
    if isinstance(channel_axis, (bool, np.bool_)) or not isinstance(channel_axis, (int, np.integer)) \
            or int(channel_axis) not in (1, 3, -1):
        raise InputError(f"{owner}: channel_axis={channel_axis!r} must be 1 (channels-first "
                         "(batch, C, H, W)), -1 (channels-last (batch, H, W, C)) or None.")
    last = int(channel_axis) in (3, -1)
    bad = [tuple(s) for s in shapes if last and len(s) != 3]
    if bad:
        raise InputError(f"{owner}: channel_axis={channel_axis!r} reads images (batch, H, W, C); "
                         f"the per-sample shape {bad[0]} is not (H, W, C). Leave channel_axis=None "
                         "for (batch, H, W) or (batch, C, H, W) images.")
    return last
