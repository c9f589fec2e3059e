"""Images whose cause is planted: a pattern on a background, and DiFull digit grids."""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
from scipy import ndimage

from ._base import PER_SAMPLE_KEYS, Dataset, register
from ._real import _digits_raw, patch_groups, resize_images

PATTERN = 6
#: The cause: a 6 × 6 plus with bars two pixels wide (20 pixels).
PLUS = np.zeros((PATTERN, PATTERN), dtype=bool)
PLUS[2:4, :] = True
PLUS[:, 2:4] = True
#: The distractor: the 6 × 6 square outline (also 20 pixels, so brightness does not tell them
#: apart).
RING = np.ones((PATTERN, PATTERN), dtype=bool)
RING[1:-1, 1:-1] = False


def _place(rng: np.random.Generator, n: int, size: int,
           apart: bool) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (``n × 2`` each) of two patterns per image, uniformly at random; with
    ``apart`` the pairs are redrawn (both corners: rejection sampling, so every valid pair is
    equally likely) until the two boxes are at least one pixel apart."""
    hi = size - PATTERN + 1
    a, b = rng.integers(0, hi, size=(n, 2)), rng.integers(0, hi, size=(n, 2))
    if not apart:
        return a, b
    for _ in range(1000):
        clash = np.all(np.abs(a - b) <= PATTERN, axis=1)
        if not clash.any():
            return a, b
        k = int(clash.sum())
        a[clash], b[clash] = rng.integers(0, hi, size=(k, 2)), rng.integers(0, hi, size=(k, 2))
    raise RuntimeError("planted_images: could not place the patterns apart; use size >= 16")


def _draw(X: np.ndarray, rows: np.ndarray, pos: np.ndarray, template: np.ndarray,
          value: float) -> None:
    """Write ``value`` into all channels of ``X[rows]`` where ``template`` is set, at ``pos``."""
    dy, dx = np.nonzero(template)
    r = pos[:, :1] + dy[None]  # k × pixels
    c = pos[:, 1:] + dx[None]
    X[rows[:, None], :, r, c] = value


def _decoys(rng: np.random.Generator, k: int) -> np.ndarray:
    """``k`` random 6 × 6 shapes of ``PLUS.sum()`` pixels each, none of them the plus or the ring
    (``k × 6 × 6`` bool)."""
    size = int(PLUS.sum())
    shapes = np.argsort(rng.random((k, PATTERN * PATTERN)), axis=1) < size
    shapes = shapes.reshape(k, PATTERN, PATTERN)
    bad = np.all(shapes == PLUS, axis=(1, 2)) | np.all(shapes == RING, axis=(1, 2))
    shapes[bad] = np.roll(shapes[bad], 1, axis=2)  # (astronomically rare) never the plus
    return shapes


def _background(rng: np.random.Generator, shape: tuple[int, ...],
                kind: str) -> np.ndarray:
    if kind == "noise":
        return np.clip(rng.normal(0.3, 0.12, size=shape), 0.0, 0.7)
    if kind == "texture":
        field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=(0, 0, 1.5, 1.5))
        lo = field.min(axis=(1, 2, 3), keepdims=True)
        hi = field.max(axis=(1, 2, 3), keepdims=True)
        return np.asarray(0.7 * (field - lo) / (hi - lo))
    raise ValueError(f"planted_images: background must be 'noise' or 'texture', got {kind!r}")


def planted_images(n: int = 1000, size: int = 32, channels: int = 1,
                   background: Literal["noise", "texture"] = "noise",
                   distractor: bool = True, patch: int = 4, decoy: bool = True,
                   seed: int = 0) -> Dataset:
    """Binary images: class 1 iff a plus-shaped pattern is planted somewhere.

    Every image has a background in ``[0, 0.7]`` (``"noise"``: clipped Gaussian pixels;
    ``"texture"``: smoothed noise). Class-1 images contain the 6 × 6 :data:`PLUS` (value 1.0 in
    every channel) at a uniformly random position; with ``decoy=True`` each class-0 image holds
    a decoy there instead: a random shape of 20 of the box's 36 pixels, drawn afresh per image
    (same value, same pixel count). Only the plus' *shape* then tells the classes apart: not
    the number of saturated pixels, and not the absence of one fixed other shape. With
    ``distractor=True`` *every* image also contains the 6 × 6 :data:`RING` (same value, same
    pixel count), at least one pixel apart from the plus or the decoy; being present in both
    classes it carries no information about the label, so positive credit on it is wrong. In
    the spirit of BAM (Yang & Kim, 2019, "Benchmarking Attribution Methods with Relative
    Feature Importance") and ChaosMining's vision tasks.

    The ring is irrelevant *to the data*, not to every model trained on it: a CNN learns that
    a saturated non-plus shape (a decoy) means class 0, and the ring is such a shape. The
    benchmark's CNN (``tribute.bench`` case ``planted_images``) gives it a small *negative*
    effect: replacing the ring by fresh background raises the class-1 logit by 0.6 (the plus
    by fresh background lowers it by 3.2); exact Shapley values of the three groups plus /
    ring / background (class-1 minus class-0 logit, baseline 0, 200 held-out class-1 images)
    are +5.1 / -1.6 / +0.04. Metrics on the positive part or on the ranking of ``|credit|``
    against the plus are not misled by it; a signed truth for the ring is negative, not zero.

    Without the decoy a class-1 image holds 40 saturated pixels and a class-0 image 20, so a
    model may count bright pixels, and then the ring matters as much as the plus (a CNN trained
    that way loses half its class-1 probability when the ring alone is removed): the ring is
    then *not* irrelevant and the ground truth below is not what the model uses. With one
    fixed decoy shape a model may instead learn "no decoy" and ignore the plus. Keep
    ``decoy=True`` for benchmarks; ``decoy=False`` reproduces the confounded data.

    Ground truth is the plus' pixel mask (all channels). **Class-0 images have an all-False
    mask**: nothing in them causes class 1; metrics normalised by mask size should skip them
    (or explain class 1 only). Labels are exactly balanced (``n // 2`` positives).

    Args:
        n: Number of images; default=1000.
        size: Side length (>= 16); default=32.
        channels: 1 (grey) or 3 (colour noise, white patterns); default=1.
        background: ``"noise"`` or ``"texture"``; default="noise".
        distractor: Plant the ring in every image; default=True.
        patch: Side of the square patches in ``groups``; default=4.
        decoy: Plant a random 20-pixel decoy in every class-0 image; default=True.
        seed: Seed; default=0.

    Returns:
        Classification :class:`Dataset`: ``X`` float32 ``n × C × size × size``, ``y`` int64,
        ``ground_truth`` bool like ``X``, ``groups`` patch map ``C × size × size``.
        Per-sample ``meta["pattern_box"]`` (the plus), ``meta["decoy_box"]`` (the decoy) and
        ``meta["distractor_box"]`` (the ring) hold ``(row, col, height, width)`` (all ``-1``
        when absent).
    """
    if size < 16 or channels < 1 or n < 2:
        raise ValueError(f"planted_images: need size >= 16, channels >= 1, n >= 2; got "
                         f"size={size}, channels={channels}, n={n}")
    rng = np.random.default_rng(seed)
    y = rng.permutation((np.arange(n) < n // 2).astype(np.int64))
    X = _background(rng, (n, channels, size, size), background).astype(np.float32)
    none = np.full((n, 2), -1)
    # the plus (class 1) or the decoy (class 0), and the ring
    pos_shape, pos_ring_all = _place(rng, n, size, apart=distractor)
    pos_pattern = np.where(y[:, None] == 1, pos_shape, none)
    pos_decoy = np.where(y[:, None] == 0, pos_shape, none) if decoy else none
    pos_distractor = pos_ring_all if distractor else none
    pos_ring = pos_distractor[pos_distractor[:, 0] >= 0]
    _draw(X, np.flatnonzero(pos_distractor[:, 0] >= 0), pos_ring, RING, 1.0)
    neg = np.flatnonzero(pos_decoy[:, 0] >= 0)
    for i, shape in zip(neg, _decoys(rng, neg.size)):
        _draw(X, np.array([i]), pos_decoy[i:i + 1], shape, 1.0)
    pos = np.flatnonzero(y == 1)
    _draw(X, pos, pos_pattern[pos], PLUS, 1.0)
    gt = np.zeros(X.shape, dtype=bool)
    _draw(gt, pos, pos_pattern[pos], PLUS, True)

    def boxes(p: np.ndarray) -> np.ndarray:
        hw = np.where(p[:, :1] >= 0, PATTERN, -1)
        return np.concatenate([p, hw, hw], axis=1).astype(np.int64)

    return Dataset(
        name="planted_images" if background == "noise" else "planted_images_texture",
        X=X,
        y=y,
        task="classification",
        ground_truth=gt,
        groups=patch_groups(size, size, patch, channels),
        meta={
            "params": {"n": n, "size": size, "channels": channels, "background": background,
                       "distractor": distractor, "patch": patch, "decoy": decoy, "seed": seed},
            "n_classes": 2,
            "pattern_box": boxes(pos_pattern),
            "decoy_box": boxes(pos_decoy),
            "distractor_box": boxes(pos_distractor),
            PER_SAMPLE_KEYS: ("pattern_box", "decoy_box", "distractor_box"),
            "note": "class-0 images have an all-False ground-truth mask",
        },
    )


def difull_grid(n: int = 500, grid: int = 2, cell: int = 16, active_cell: int = 0,
                seed: int = 0) -> Dataset:
    """A ``grid × grid`` mosaic of digits, labelled by the digit in one designated cell.

    The DiFull setting of Rao et al. (2022, "Towards Better Understanding Attribution
    Methods"): paired with :class:`~tribute.datasets.DiFullModel` (see
    :func:`~tribute.datasets.difull_model`), whose output is computed from the designated
    cell only, so by construction no other pixel can influence it and any credit outside that
    cell is an error of the attribution method. Each mosaic shows ``grid**2`` *distinct*
    classes (digits from scikit-learn, upsampled to ``cell × cell``), so the grid pointing
    game of the same paper applies too.

    Args:
        n: Number of mosaics; default=500.
        grid: Cells per side (``grid**2 <= 10``); default=2.
        cell: Side of one cell in pixels (>= 8); default=16.
        active_cell: Designated cell, row-major in ``0 .. grid**2 - 1``; default=0 (top left).
        seed: Seed; default=0.

    Returns:
        Classification :class:`Dataset`: ``X`` float32 ``n × 1 × (grid·cell) × (grid·cell)``,
        ``y`` the designated cell's digit, ``ground_truth`` that cell's mask, ``groups`` the
        cell index map. ``meta["cell_labels"]`` (``n × grid**2``) holds every cell's digit.
    """
    if grid < 1 or grid * grid > 10 or cell < 8 or not 0 <= active_cell < grid * grid:
        raise ValueError(f"difull_grid: need 1 <= grid, grid**2 <= 10, cell >= 8 and "
                         f"0 <= active_cell < grid**2; got grid={grid}, cell={cell}, "
                         f"active_cell={active_cell}")
    rng = np.random.default_rng(seed)
    images, target = _digits_raw()
    k = grid * grid
    labels = rng.permuted(np.tile(np.arange(10), (n, 1)), axis=1)[:, :k]
    order = np.argsort(target, kind="stable")
    counts = np.bincount(target, minlength=10)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pick = order[starts[labels] + (rng.random((n, k)) * counts[labels]).astype(np.int64)]
    cells = resize_images(images[pick.ravel(), None], cell).reshape(n, grid, grid, cell, cell)
    X = cells.transpose(0, 1, 3, 2, 4).reshape(n, 1, grid * cell, grid * cell)
    ids = patch_groups(grid * cell, grid * cell, cell)
    gt = np.broadcast_to(ids == active_cell, X.shape).copy()
    return Dataset(
        name="difull_grid",
        X=np.ascontiguousarray(X),
        y=labels[:, active_cell].astype(np.int64),
        task="classification",
        ground_truth=gt,
        groups=ids,
        meta={
            "params": {"n": n, "grid": grid, "cell": cell, "active_cell": active_cell,
                       "seed": seed},
            "n_classes": 10,
            "grid": grid,
            "cell": cell,
            "active_cell": active_cell,
            "cell_labels": labels.astype(np.int64),
            PER_SAMPLE_KEYS: ("cell_labels",),
        },
    )


register("planted_images")(planted_images)
register("difull_grid")(difull_grid)

register("planted_images_texture")(functools.partial(planted_images, background="texture"))
