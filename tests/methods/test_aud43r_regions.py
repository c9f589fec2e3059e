"""aud43r: region methods on elongated images (disk dilation wider than a side) and the
region growth against a plain re-implementation of XRAI's greedy (Kapishnikov et al. 2019).

Before the fix, ``dilate`` sliced with negative stops when the disk radius exceeded the image
height or width, and XRAI on a 4 x 300 image (default dilation 0.022 -> radius 7) raised a bare
numpy broadcasting ValueError.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.methods.regions.growth import grow_regions
from tribute.methods.regions.segmentation import dilate


def _brute_dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixel (y, x) is on when some on-pixel lies within Euclidean distance ``radius``."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    out = np.zeros_like(mask)
    for y in range(h):
        for x in range(w):
            out[y, x] = bool((((ys - y) ** 2 + (xs - x) ** 2) <= radius * radius).any())
    return out


def test_dilate_with_a_disk_wider_than_the_image_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for h, w, radius in [(4, 30, 6), (3, 3, 5), (30, 2, 4), (1, 9, 3), (5, 5, 1)]:
        mask = rng.random((h, w)) < 0.08
        mask[rng.integers(h), rng.integers(w)] = True
        got = dilate(mask[None], radius)[0]
        np.testing.assert_array_equal(got, _brute_dilate(mask, radius))


def test_xrai_runs_on_an_elongated_image() -> None:
    torch.manual_seed(0)
    lin = torch.nn.Linear(2 * 4 * 300, 2)
    net = torch.nn.Sequential(torch.nn.Flatten(), lin).double().eval()
    x = torch.randn(1, 2, 4, 300, dtype=torch.float64)
    attr = tribute.explain(net, x, method="xrai", steps=2, target=0)
    values = np.asarray(attr.values)
    assert values.shape == (1, 2, 4, 300)
    assert np.isfinite(values).all()
    # every pixel's value is the IG density of the region that added it: the map is constant
    # over channels, and the IG (exact for a linear model, baseline 0) is conserved per region
    ig = (lin.weight[0].detach().reshape(2, 4, 300) * x[0]).sum(0).numpy()
    np.testing.assert_allclose(values[0, 0], values[0, 1])
    rank = np.asarray(attr.extra["region_rank"]).reshape(4, 300)
    for r in np.unique(rank):
        sel = rank == r
        # regions with equal gains may share a rank: compare the sums, which add up either way
        np.testing.assert_allclose(values[0, 0][sel].sum(), ig[sel].sum(), atol=1e-9)


def _reference_growth(masks: np.ndarray, attr: np.ndarray, area: np.ndarray,
                      min_new: float) -> tuple[np.ndarray, np.ndarray]:
    """XRAI's greedy loop written out: drop masks with fewer than ``min_new`` new area, add the
    densest new part, rank the added regions by gain (stable), the uncovered rest last."""
    p = attr.shape[0]
    covered = np.zeros(p, dtype=bool)
    gain, step_of = np.zeros(p), np.full(p, -1)
    alive = list(range(masks.shape[0]))
    gains: list[float] = []
    while alive and not covered.all():
        best, best_d = -1, -np.inf
        for j in list(alive):
            new = masks[j] & ~covered
            if area[new].sum() < min_new or area[new].sum() <= 0:
                alive.remove(j)
                continue
            d = attr[new].sum() / area[new].sum()
            if d > best_d:
                best, best_d = j, d
        if best < 0:
            break
        new = masks[best] & ~covered
        gain[new], step_of[new] = best_d, len(gains)
        gains.append(float(best_d))
        covered |= new
        alive.remove(best)
    rest = ~covered
    if rest.any():
        gain[rest], step_of[rest] = attr[rest].sum() / area[rest].sum(), len(gains)
    pos = np.empty(len(gains) + 1, dtype=np.int64)
    pos[np.argsort(-np.asarray(gains), kind="stable")] = np.arange(len(gains))
    pos[len(gains)] = len(gains)
    return gain, pos[step_of]


def test_growth_matches_the_greedy_written_out_on_random_overlapping_regions() -> None:
    rng = np.random.default_rng(1)
    for trial in range(300):
        p, r = int(rng.integers(1, 12)), int(rng.integers(1, 6))
        masks = rng.random((r, p)) < rng.uniform(0.1, 0.7)
        attr = rng.normal(size=p)
        if trial % 3 == 0:
            attr = np.round(attr)  # ties between regions
        area = rng.integers(1, 4, size=p).astype(float) if trial % 2 else np.ones(p)
        min_new = float(rng.integers(0, 3))
        gain, rank = grow_regions(torch.from_numpy(masks), torch.from_numpy(attr),
                                  torch.from_numpy(area), min_new)
        want_gain, want_rank = _reference_growth(masks, attr, area, min_new)
        np.testing.assert_allclose(gain.numpy(), want_gain, atol=1e-12)
        np.testing.assert_array_equal(rank.numpy(), want_rank)


def test_channels_last_rgb_image_is_refused_with_a_channels_last_hint() -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 3, 2)).double().eval()
    x = torch.randn(1, 8, 8, 3, dtype=torch.float64)
    for method in ("xrai", "extremal_perturbation"):
        with pytest.raises(InputError, match=r"\(8, 8, 3\) looks channels-last"):
            tribute.explain(net, x, method=method, target=0, steps=2)
