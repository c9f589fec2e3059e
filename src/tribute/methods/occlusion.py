"""Sliding-window occlusion (Zeiler & Fergus 2014), with Captum's ``Occlusion`` definition.

A window of input *elements* is replaced by the baseline and the drop of the explained output is
credited to every element of the window; an element's credit is the mean drop over the windows
that cover it::

    phi_e = mean_{windows w containing e} [ v(x) - v(x with w removed) ]

Windows slide over each attributed input separately (the other inputs stay intact). Along every
axis of one sample (``window[j]`` elements wide, moved by ``stride[j]``) there are
``ceil((size_j - window_j) / stride_j) + 1`` positions starting at ``0, stride_j, 2 stride_j ...``;
the last window is cut at the border. This is exactly Captum's ``Occlusion`` (parity is tested).

Occlusion defines its own players (the windows), so it needs a dense feature game
(``groups=None``, every element a player) and returns one credit per element.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..attribution import Attribution
from ..errors import InputError, UnsupportedModelError
from ..games.base import VALUE_BLOCK_ELEMENTS, Game
from ..games.features import FeatureGame
from ..params import NONE, Interval, SequenceOf, declare
from .base import Cost, Method, Tags, coalition_cost, register

__all__ = ["Occlusion", "default_window", "window_positions"]


WindowArg = int | Sequence[int] | Sequence[Sequence[int]] | None

_SIZE = Interval(int, 1)
#: What ``window`` and ``stride`` accept (their lengths are checked against the input shapes).
#: A sequence may be a list, tuple, range, ``torch.Size`` or 1-D numpy array; whole floats
#: (``3.0``) count as ints there and are converted with ``int`` where used.
WINDOW = (NONE, _SIZE, SequenceOf(_SIZE, description="a tuple of ints >= 1 (one per axis)"),
          SequenceOf(SequenceOf(_SIZE), description="a tuple of such tuples (one per input)"))


def default_window(shape: tuple[int, ...], channel_axis: int | None = None) -> tuple[int, ...]:
    """Window used when none is given: one element for 1-D inputs; for ``(..., H, W)`` inputs
    all leading (channel) axes and ``ceil(H/8) x ceil(W/8)`` pixels (an ~8x8 grid of windows);
    for an ``(H, W, C)`` sample (``channel_axis=-1``: the model reads it channels-last,
    :meth:`FeatureGame.image_channel_axis`) ``ceil(H/8) x ceil(W/8)`` pixels and all channels
    (before, ``H x ceil(W/8) x 1``: whole columns of one channel, aud52v)."""
    if len(shape) < 2:
        return tuple(1 for _ in shape)
    if channel_axis == -1 and len(shape) == 3:
        return (math.ceil(shape[0] / 8), math.ceil(shape[1] / 8), shape[2])
    lead = tuple(shape[:-2])
    return (*lead, math.ceil(shape[-2] / 8), math.ceil(shape[-1] / 8))


def window_positions(size: int, window: int, stride: int) -> int:
    """Number of window positions along one axis (Captum's shift count)."""
    return math.ceil((size - window) / stride) + 1


def _per_input(value: WindowArg, n_inputs: int, name: str) -> list[Any]:
    """Split a window/stride argument (checked against :data:`WINDOW`) into one entry per
    input (None stays None)."""
    if value is None or isinstance(value, (int, numbers.Integral)):
        return [value] * n_inputs
    seq = list(value)
    if seq and not isinstance(seq[0], numbers.Real):  # one tuple (or list, array...) per input
        if len(seq) != n_inputs:
            raise InputError(
                f"method 'occlusion': {name}={value!r} has {len(seq)} entries but there are "
                f"{n_inputs} inputs; give one {name} per input (a tuple of tuples) or one for all."
            )
        return seq
    return [tuple(seq)] * n_inputs


def _resolve(shape: tuple[int, ...], window: Any, stride: Any, i: int, multi: bool,
             channel_axis: int | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    where = f" for input {i} (per-sample shape {shape})" if multi else f" for inputs of per-sample shape {shape}"
    win = default_window(shape, channel_axis) if window is None else (
        (int(window),) * len(shape) if isinstance(window, numbers.Integral)
        else tuple(int(v) for v in window))
    if len(win) != len(shape):
        raise InputError(
            f"method 'occlusion': window={win} has {len(win)} axes{where}; give one size per axis "
            f"of one sample, e.g. window={(1,) * max(len(shape) - 2, 0) + (3, 3) if len(shape) >= 2 else (1,)}."
        )
    if any(w > s for w, s in zip(win, shape)):
        raise InputError(f"method 'occlusion': window={win} is larger than the input{where}; "
                         "give at most the input's size along every axis.")
    if stride is None:
        st = win
    elif isinstance(stride, numbers.Integral):
        st = (int(stride),) * len(shape)
    else:
        st = tuple(int(v) for v in stride)
    if len(st) != len(shape):
        raise InputError(f"method 'occlusion': stride={stride!r} has {len(st)} axes{where}; give "
                         "one int for all axes or one per axis of one sample.")
    if any(s > w and sz > w for s, w, sz in zip(st, win, shape)):
        raise InputError(
            f"method 'occlusion': stride={st} is larger than window={win}{where}: some elements "
            "would never be occluded. Use stride <= window along every axis."
        )
    return win, st


def _window_masks(shape: tuple[int, ...], win: tuple[int, ...], st: tuple[int, ...],
                  lo: int, hi: int) -> torch.Tensor:
    """``(hi - lo) x prod(shape)`` 0/1 indicators of windows ``lo..hi-1``.

    Windows are numbered row-major over the window grid (the last axis moves fastest).
    """
    counts = [window_positions(s, w, t) for s, w, t in zip(shape, win, st)]
    # built in numpy (small index arithmetic: ~20 dispatched torch ops cost ~0.1 ms per call,
    # most of occlusion's fixed cost over feature ablation on a small model, issue #9); the
    # entries are exact 0/1 products, the same float64 values the torch ops gave
    # per axis: positions x size indicator of the elements each window position covers
    axis_ind = []
    for s, w, t, c in zip(shape, win, st, counts):
        start = np.arange(c)[:, None] * t
        e = np.arange(s)[None]
        axis_ind.append(((e >= start) & (e < start + w)).astype(np.float64))
    idx = np.arange(lo, hi)
    out = np.ones((idx.size, 1), dtype=np.float64)
    rem = idx
    pos = []
    for c in reversed(counts):
        pos.append(rem % c)
        rem = rem // c
    pos.reverse()
    for ind, p in zip(axis_ind, pos):
        out = (out[:, :, None] * ind[p][:, None, :]).reshape(idx.size, -1)
    return torch.from_numpy(np.ascontiguousarray(out))


def _window_owner(shape: tuple[int, ...], win: tuple[int, ...],
                  st: tuple[int, ...]) -> torch.Tensor | None:
    """For windows that tile the input (no two overlap: ``stride == window``, or one position,
    along every axis), the index of the one window covering each element (row-major over the
    window grid, as in :func:`_window_masks`), ``prod(shape)`` long; None when windows overlap.

    Feature ablation's 1-element windows are the common case (a 13-feature table: the window
    masks, the ``einsum`` of the drops and the coverage sum cost ~0.1 ms per call, issue #9).
    """
    counts = [window_positions(s, w, t) for s, w, t in zip(shape, win, st)]
    if any(t != w and c > 1 for w, t, c in zip(win, st, counts)):
        return None
    idx = np.zeros(1, dtype=np.int64)
    for s, t, c in zip(shape, st, counts):
        idx = (idx[:, None] * c + np.minimum(np.arange(s) // t, c - 1)[None]).reshape(-1)
    return torch.from_numpy(idx)


@register
class Occlusion(Method):
    """Sliding-window occlusion: mean output drop over the windows covering each element.

    Every window position is removed once (set to the baseline) and ``v(x) - v(x without the
    window)`` is added to each element of the window; each element's sum is divided by the
    number of windows covering it. Costs ``windows + 1`` evaluations per input (one window per
    evaluation, all inputs' windows together). With 1-element windows it is feature ablation:
    ``w * (x - baseline)`` on a linear model. Same definition as Captum's ``Occlusion`` (where
    ``sliding_window_shapes`` is ``window`` and ``strides`` is ``stride``).

    Needs every element to be a player (``groups=None``): occlusion builds its own windows of
    elements. For fixed superpixels use ``feature_ablation`` with ``groups=...`` instead: with
    non-overlapping windows (``stride == window``) aligned to the superpixels, occlusion gives
    every element of a window the window's full drop, which feature ablation gives the group.

    Args:
        window: window size per axis of one sample, e.g. ``(1, 3, 3)`` for ``(C, H, W)`` images;
            an int for the same size on every axis; a tuple of tuples for several inputs.
            default=None (1 element on 1-D inputs; all channels x ``ceil(H/8) x ceil(W/8)``
            pixels on images, ``(H, W, C)`` ones where the model reads them channels-last).
        stride: step per axis (int, tuple, or a tuple per input); must not exceed the window.
            default=None (equal to the window: non-overlapping windows).

    Reference: Zeiler & Fergus (2014), "Visualizing and Understanding Convolutional Networks".
    """

    name = "occlusion"
    tags = Tags(family="perturbation", exact=True, games=("feature",), dense_output=True)
    paper = "Zeiler & Fergus (2014), Visualizing and Understanding Convolutional Networks"
    constraints = declare({"window": WINDOW, "stride": WINDOW})

    def __init__(self, window: WindowArg = None, stride: WindowArg = None) -> None:
        self.window = window
        self.stride = stride

    # ----------------------------------------------------------------- windows
    def reads_player_count(self) -> str | None:
        def sizes(w: Any) -> list[int]:  # ints, whole floats, arrays, ranges, tuples of them
            if isinstance(w, numbers.Real):
                return [int(float(w))]
            if isinstance(w, (np.ndarray, torch.Tensor)):
                return [int(v) for v in np.ravel(np.asarray(w))]
            return [v for x in w for v in sizes(x)]

        wide = self.window is not None and max(sizes(self.window), default=1) > 1
        return "its windows run past the end of a shorter text" if wide else None

    def _geometry(self, game: Game) -> list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        fg = _dense_feature_game(game, self.name)
        shapes = fg.input_shapes()
        multi = len(shapes) > 1
        wins = _per_input(self.window, len(shapes), "window")
        strides = _per_input(self.stride, len(shapes), "stride")
        axis = fg.take_image_channel_axis("occlusion's default windows") if self.window is None else None
        return [(s, *_resolve(s, w, t, i, multi, axis)) for i, (s, w, t) in enumerate(zip(shapes, wins, strides))]

    def n_windows(self, game: Game) -> int:
        """Window positions over all inputs (evaluations = this + 1)."""
        return sum(math.prod(window_positions(s, w, t) for s, w, t in zip(shape, win, st))
                   for shape, win, st in self._geometry(game))

    def min_budget(self, game: Game) -> int:
        return self.n_windows(game) + 1

    # ------------------------------------------------------------------ method
    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        geometry = self._geometry(game)
        n = game.n_players
        full = game.full()  # B x T
        phi = torch.zeros(game.n_samples, game.n_targets, n, dtype=torch.float64)
        cover = torch.zeros(n, dtype=torch.float64)
        offset = 0
        for shape, win, st in geometry:
            size = math.prod(shape)
            total = math.prod(window_positions(s, w, t) for s, w, t in zip(shape, win, st))

            owner = _window_owner(shape, win, st)

            def make(lo: int, hi: int, shape: tuple[int, ...] = shape, win: tuple[int, ...] = win,
                     st: tuple[int, ...] = st, offset: int = offset, size: int = size,
                     owner: torch.Tensor | None = owner) -> torch.Tensor:
                masks = torch.ones(hi - lo, n, dtype=torch.float64)
                if owner is not None:  # tiling windows: window k removes the elements it owns
                    masks[:, offset : offset + size] = \
                        owner[None] != torch.arange(lo, hi)[:, None]
                else:
                    masks[:, offset : offset + size] -= _window_masks(shape, win, st, lo, hi)
                return masks

            for blk in game.value_stream(total, make):
                drop = full[:, None, :] - blk.values  # B x k x T
                # one reduction: finite drops (an inf drop makes the einsum's inf * 0 a NaN)
                if owner is not None and math.isfinite(float(drop.sum())):
                    # each element lies in exactly one window: its credit is that window's
                    # drop (the einsum below sums it times 1 and the other drops times 0:
                    # the same value, exactly), taken by one gather instead of a product
                    if blk.start == 0 and blk.stop == total:  # every window in one block
                        phi[:, :, offset : offset + size] += \
                            drop.permute(0, 2, 1).index_select(2, owner)
                        cover[offset : offset + size] += 1.0
                    else:
                        sel = ((owner >= blk.start) & (owner < blk.stop)).nonzero().flatten()
                        phi[:, :, offset + sel] += \
                            drop.permute(0, 2, 1)[:, :, owner[sel] - blk.start]
                        cover[offset + sel] += 1.0
                    continue
                ind = 1.0 - blk.masks[:, offset : offset + size]
                phi[:, :, offset : offset + size] += torch.einsum("bkt,kd->btd", drop, ind)
                cover[offset : offset + size] += ind.sum(0)
            offset += size
        # elements no window covers (impossible with stride <= window) keep credit 0
        phi = phi / cover.clamp(min=1.0)
        params = {**self.get_params(),
                  "window": [list(w) for _, w, _ in geometry],
                  "stride": [list(t) for _, _, t in geometry]}
        return game.attribution(phi, self.name, params)

    budget_rule = "window positions + 1"

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """One evaluation per window position plus ``v(N)``; window masks in blocks of
        ``VALUE_BLOCK_ELEMENTS`` entries."""
        n = int(game.n_players)
        k = self.n_windows(game) + 1
        block = max(1, VALUE_BLOCK_ELEMENTS // max(n, 1))
        return coalition_cost(game, k, mask_rows=min(k, block), design=min(k, block) * n * 8,
                              note=f"{k:,} windows in blocks of {min(k, block):,} x {n:,} elements")


def _dense_feature_game(game: Game, name: str) -> FeatureGame:
    if not isinstance(game, FeatureGame):
        raise UnsupportedModelError(
            f"method {name!r} slides windows over the elements of tensor or array inputs; these "
            f"players are {getattr(game, 'player_kind', 'not input elements')}s of a "
            f"{type(game).__name__} (tokens, words, components...). Use 'feature_ablation' (one "
            "player removed at a time), which is occlusion with a window of one player.")
    if not game.layout.dense:
        raise InputError(
            f"method {name!r} builds its own windows of input elements, so it cannot use "
            "groups=...; call it with groups=None and set window=/stride= (e.g. window=(1, 4, 4), "
            "stride=4 for 4x4 patches), or use method='feature_ablation' to remove fixed groups."
        )
    return game
