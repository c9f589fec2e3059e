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

__all__ = ["CHANNEL_COUNTS", "channels_last", "channels_last_by_model", "conv_input_channel_axis",
           "first_conv_channels", "looks_channels_last", "map_channel_axis", "plot_channel_axis_by_model"]

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


def _scaled(h: int, w: int, h2: int, w2: int) -> bool:
    """Whether ``(h2, w2)`` is ``(h, w)`` at one integer scale (kept, pooled or upsampled alike
    along both axes)."""
    if h2 <= 0 or w2 <= 0:
        return False
    if h % h2 == 0 and w % w2 == 0 and h // h2 == w // w2:
        return True
    return h2 % h == 0 and w2 % w == 0 and h2 // h == w2 // w


def conv_input_channel_axis(shape: tuple[int, ...], conv_input: tuple[int, ...]) -> int | None:
    """The channel axis (``0`` or ``-1``) of a 3-D per-sample input ``shape`` that the model's
    first running ``Conv2d`` shows by the ``(C', H', W')`` tensor it receives: ``0`` where its
    ``H' x W'`` is the last two axes at one scale (``(C, H, W)``), ``-1`` where it is the first two
    (``(H, W, C)``); None where both or neither are (a square ``(8, 8, 8)``, a padded or resized
    image).

    This reads the tensor the convolution is given, not its ``in_channels``: a CoordConv stem
    (a ``(3, 8, 4)`` image plus a coordinate channel into ``Conv2d(4)``) receives ``(4, 8, 4)``,
    channels first, where ``in_channels`` matched the last axis; a channels-last multispectral
    ``(16, 16, 8)`` image permuted into ``Conv2d(8)`` receives ``(8, 16, 16)``, channels last, and
    a space-to-depth one (``pixel_unshuffle(2)``) ``(32, 8, 8)``, the same pixels at half scale
    (aud52v: drawn 3x8 and 16x8, patches tiled over the wrong axes)."""
    if len(shape) != 3 or len(conv_input) < 2:
        return None
    h2, w2 = int(conv_input[-2]), int(conv_input[-1])
    first = _scaled(int(shape[1]), int(shape[2]), h2, w2)
    last = _scaled(int(shape[0]), int(shape[1]), h2, w2)
    if first == last:
        return None
    return 0 if first else -1


def _read_from_input(model: Any, count: int, c: int) -> bool:
    """Whether a layer of ``model`` other than its first ``Conv2d`` (which reads ``c``) reads
    ``count`` channels as from the input: a ``Conv2d`` or ``Linear`` reading ``count`` where no
    other layer writes ``count`` (a width nothing makes), or whose outputs the first ``Conv2d``
    reads (``c`` is one reader's output count or the sum of the ``Conv2d`` readers': a fuse
    over branches)."""
    module = model if isinstance(model, torch.nn.Module) else getattr(model, "module", None)
    if not isinstance(module, torch.nn.Module):
        return False
    mods = list(module.modules())
    first = next((sub for sub in mods if isinstance(sub, torch.nn.Conv2d)), None)
    readers = [sub for sub in mods if sub is not first and (
        (isinstance(sub, torch.nn.Conv2d) and int(sub.in_channels) == count)
        or (isinstance(sub, torch.nn.Linear) and int(sub.in_features) == count))]
    if not readers:
        return False
    outs = [int(r.out_channels) if isinstance(r, torch.nn.Conv2d) else int(r.out_features) for r in readers]
    if c in outs or c == sum(int(r.out_channels) for r in readers if isinstance(r, torch.nn.Conv2d)):
        return True
    # a reader writing as many as it reads (a branch Conv2d(8, 8) on 8-band images) is no sign
    # of an intermediate width; another layer writing the count is (Conv2d(13, 8) -> Conv2d(8, 16))
    return not any(not any(sub is r for r in readers) and (
        (isinstance(sub, _CONVS) and int(sub.out_channels) == count)
        or (isinstance(sub, torch.nn.Linear) and int(sub.out_features) == count)
        or (isinstance(sub, torch.nn.Embedding) and int(sub.embedding_dim) == count)) for sub in mods)


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
    image) and another ``Conv2d`` (or a ``Linear``: a per-pixel embedding registered after a
    mixing ``Conv2d``) reads as many channels as the first axis holds, as from the input
    (:func:`_read_from_input`), the model says both and this says None. A count that another
    layer writes is an intermediate width: a channels-last ``(8, 8, 13)`` patch of a model
    ``Conv2d(13, 8) -> Conv2d(8, 16)`` stays channels-last (rev46s: keyed on any ``Conv2d``
    reading 8, region methods ran silently on 8 x 13 images of 8 channels, xrai error 0.0031
    for credits up to 0.0015, where BASE refused with the right advice). Channels-last patches with many bands
    (``(5, 5, 20)``, a model that permutes them and no other ``Conv2d`` reading 5 channels) stay
    channels-last: Grad-CAM's own rule (an ``(H, W, C)`` image holds fewer channels than rows
    and columns) mapped them to 5 x 20 (small46: map error 0.0052 for a map up to 0.0053).
    """
    if len(shape) != 3:
        return None
    c = first_conv_channels(model)
    if c is None:
        return None
    first, last = int(shape[0]) == c, int(shape[-1]) == c
    if first == last:
        return None
    if last and c >= min(int(shape[0]), int(shape[1])) and _read_from_input(model, int(shape[0]), c):
        return None
    return last


#: Axis lengths a plotted map's channels may have (:func:`tribute.viz.image`'s rule): a 3-D map
#: whose first and last axes both have one of them reads two ways by its shape alone.
PLOT_CHANNEL_SIZES = (1, 2, 3, 4)


def plot_channel_axis_by_model(shapes: Sequence[tuple[int, ...]], model: Any) -> int | None:
    """The channel axis (``0`` or ``-1``) to draw a one-input model's 3-D per-sample maps by,
    where their shape alone reads two ways (the first and last axes both 1-4 long, not one of
    them the only gray channel: :func:`tribute.viz.image` refuses such a map without
    ``channel_axis``) and the model's first ``Conv2d`` says which
    (:func:`channels_last_by_model`); None everywhere else, where a plot draws by the shape as
    before.

    The first ``Conv2d`` may read a tensor the model made from its input, its ``in_channels``
    matching an image axis by chance: a space-to-depth stem (``PixelUnshuffle(4)``) gives a
    gray ``(1, 16, 16)`` image's ``Conv2d(16, ...)``, an RGB ``(3, 48, 48)`` one's
    ``Conv2d(48, ...)``; CoordConv's two coordinate channels give a ``(3, 8, 5)`` image's
    ``Conv2d(5, ...)``. Recorded for every shape, the last axis was taken as channels and those
    maps, drawn right by their shape before, were drawn 1x16, 3x48 and 3x8 (rev51v). With
    several inputs the convolution may read another input than the first: a ``(4, 4, 3)``
    table read by a ``Linear`` next to a ``(3, 8, 8)`` image was drawn as a 4x4 image of 3
    channels where it was refused before (rev51v).
    """
    if len(shapes) != 1 or len(shapes[0]) != 3:
        return None
    shape = tuple(int(d) for d in shapes[0])
    first, last = shape[0] in PLOT_CHANNEL_SIZES, shape[-1] in PLOT_CHANNEL_SIZES
    if not (first and last) or (shape[0] == 1) != (shape[-1] == 1):
        return None  # the shape reads one way (or is no image): drawn by it
    told = channels_last_by_model(shape, model)
    return None if told is None else (-1 if told else 0)


def map_channel_axis(shape: tuple[int, ...], channel_axis: int | None, name: str) -> int:
    """The channel axis (0 or -1) of a 3-D map of shape ``shape`` as :func:`tribute.viz.image`
    draws it: ``channel_axis`` where given; else, where only one reading is possible, the
    length-1 axis at one end (the gray channel) next to a 2-4 long one at the other, or the only
    end axis 1-4 long (channels first unless only the last axis looks like channels); refused
    (``ValueError``) where both are (the first and the last axis both 1-4 long: a (4, 6, 3) map
    is 4 channels of 6x3 or a 4x6 image of 3 channels; the old rule took the first and drew a
    channels-last map summed over its rows, a 6x3 picture of a 4x6 image: audit aud50v). Shared
    by viz and the bench report's gallery."""
    if channel_axis is not None:
        return 0 if channel_axis == 0 else -1
    first, last = shape[0] in PLOT_CHANNEL_SIZES, shape[-1] in PLOT_CHANNEL_SIZES
    if first and last and (shape[0] == 1) != (shape[-1] == 1):
        # one gray channel, not a one-pixel-high (1, W, C) or -wide (H, 1, C) picture
        return 0 if shape[0] == 1 else -1
    if first and last:
        raise ValueError(
            f"{name} has shape {tuple(shape)}, which reads two ways: {shape[0]} channels of a "
            f"{shape[1]}x{shape[2]} image (C, H, W), or a {shape[0]}x{shape[1]} image of "
            f"{shape[2]} channels (H, W, C). Say which with channel_axis=0 (channels first) or "
            "channel_axis=-1 (channels last)"
        )
    return -1 if (not first and last) else 0


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
