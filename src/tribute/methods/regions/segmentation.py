"""Over-segmentation of images for the region methods (numpy only, no scikit-image).

:func:`felzenszwalb` is the graph-based segmentation of Felzenszwalb & Huttenlocher (2004),
"Efficient Graph-Based Image Segmentation" (IJCV 59(2)): pixels are the vertices of an
8-connected grid graph whose edge weights are the Euclidean colour distance between
neighbours (after a Gaussian blur of width ``sigma``); edges are visited in increasing weight
and two components ``C1, C2`` are merged when the edge weight is at most
``min(Int(C1) + k / |C1|, Int(C2) + k / |C2|)``, where ``Int(C)`` is the largest weight of
the minimum spanning tree of ``C`` (the predicate of Section 3 of the paper); components
smaller than ``min_size`` are merged into a neighbour afterwards (the paper's post-processing,
visiting edges again in increasing weight).

:func:`multiscale_segments` runs it at several scales ``k`` (XRAI's 50 ... 1200) and returns
every segment of every scale as a boolean mask, optionally dilated by a disk (XRAI dilates
its segments so that region edges are not left out).

Reference test: ``tests/methods/test_regions.py`` checks the merge predicate on images whose
segmentation is known in closed form (piecewise-constant images, a scale too small or too
large to merge anything).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["dilate", "felzenszwalb", "gaussian_blur", "multiscale_segments"]


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a ``C x H x W`` image (edge-replicated; ``sigma=0``: copy)."""
    img = np.asarray(image, dtype=np.float64)
    if sigma <= 0:
        return img.copy()
    radius = max(1, math.ceil(4.0 * sigma))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (t / sigma) ** 2)
    kernel /= kernel.sum()
    out = img
    for axis in (1, 2):
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        acc = np.zeros_like(out)
        for i, w in enumerate(kernel):
            sl = [slice(None)] * 3
            sl[axis] = slice(i, i + n)
            acc += w * padded[tuple(sl)]
        out = acc
    return out


def _grid_edges(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(a, b, weight)`` of the 8-connected grid of a ``C x H x W`` image, sorted by weight."""
    _, h, w = image.shape
    idx = np.arange(h * w).reshape(h, w)
    heads, tails, weights = [], [], []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        # pixel (y, x) and its neighbour (y + dy, x + dx), for every y, x where both exist
        x0, x1 = max(0, -dx), w - max(0, dx)
        a = idx[0 : h - dy, x0:x1]
        b = idx[dy:h, x0 + dx : x1 + dx]
        d = image[:, 0 : h - dy, x0:x1] - image[:, dy:h, x0 + dx : x1 + dx]
        heads.append(a.ravel())
        tails.append(b.ravel())
        weights.append(np.sqrt((d**2).sum(0)).ravel())
    a_all, b_all, w_all = (np.concatenate(v) for v in (heads, tails, weights))
    order = np.argsort(w_all, kind="stable")
    return a_all[order], b_all[order], w_all[order]


def _find(parent: list[int], x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression
        parent[x], x = root, parent[x]
    return root


def felzenszwalb(image: np.ndarray, scale: float = 100.0, sigma: float = 0.8,
                 min_size: int = 20) -> np.ndarray:
    """Felzenszwalb-Huttenlocher segmentation of one image.

    Args:
        image: ``H x W`` or ``C x H x W`` array (any real values).
        scale: the paper's ``k``; larger values give larger segments. default=100.
        sigma: width of the Gaussian blur applied first (pixels). default=0.8 (the paper's).
        min_size: components with fewer pixels are merged into a neighbour. default=20.

    Returns:
        ``H x W`` int64 labels ``0..n_segments-1`` (numbered in raster order of first pixel).
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[None]
    if img.ndim != 3:
        raise ValueError(f"image has shape {img.shape}; expected (H, W) or (C, H, W).")
    _, h, w = img.shape
    n = h * w
    a_idx, b_idx, wts = _grid_edges(gaussian_blur(img, sigma))
    parent = list(range(n))
    size = [1] * n
    thresh = [float(scale)] * n  # Int(C) + k / |C|, with Int = 0 for single pixels
    k = float(scale)
    a_list, b_list, w_list = a_idx.tolist(), b_idx.tolist(), wts.tolist()
    for a, b, wt in zip(a_list, b_list, w_list):
        ra, rb = _find(parent, a), _find(parent, b)
        if ra != rb and wt <= thresh[ra] and wt <= thresh[rb]:
            if size[ra] < size[rb]:
                ra, rb = rb, ra
            parent[rb] = ra
            size[ra] += size[rb]
            thresh[ra] = wt + k / size[ra]  # edges come sorted: wt is the new Int(C)
    if min_size > 1:
        for a, b in zip(a_list, b_list):
            ra, rb = _find(parent, a), _find(parent, b)
            if ra != rb and (size[ra] < min_size or size[rb] < min_size):
                if size[ra] < size[rb]:
                    ra, rb = rb, ra
                parent[rb] = ra
                size[ra] += size[rb]
    roots = np.fromiter((_find(parent, i) for i in range(n)), dtype=np.int64, count=n)
    _, labels = np.unique(roots, return_inverse=True)
    # renumber in raster order of each segment's first pixel (deterministic, readable)
    first = np.full(labels.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(n))
    rank = np.empty_like(first)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[labels].reshape(h, w)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of ``... x H x W`` masks by a disk of ``radius`` pixels (0: copy)."""
    m = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return m.copy()
    h, w = m.shape[-2:]
    out = m.copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx > radius * radius or (dy == 0 and dx == 0):
                continue
            if abs(dy) >= h or abs(dx) >= w:  # shifted off the image (a disk wider than a side)
                continue
            ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
            xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
            out[..., yd, xd] |= m[..., ys, xs]
    return out


def multiscale_segments(image: np.ndarray, scales: tuple[float, ...], sigma: float,
                        min_size: int, dilation: int) -> np.ndarray:
    """Every segment of :func:`felzenszwalb` at each scale, as ``n_masks x H x W`` bool masks.

    Segments are dilated by a disk of ``dilation`` pixels; duplicates (the same mask at two
    scales) are kept once, in order of first appearance.
    """
    masks: list[np.ndarray] = []
    seen: set[bytes] = set()
    for k in scales:
        labels = felzenszwalb(image, scale=k, sigma=sigma, min_size=min_size)
        seg = labels[None] == np.arange(labels.max() + 1)[:, None, None]
        seg = dilate(seg, dilation)
        for m in seg:
            key = np.packbits(m).tobytes()
            if key not in seen:
                seen.add(key)
                masks.append(m)
    return np.stack(masks)
