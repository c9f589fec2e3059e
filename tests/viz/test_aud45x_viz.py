"""Audit (stop 45) of the views, read back from the drawn artists against numbers computed
here: superpixel (grouped) credits on multi-channel images."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute import viz


def _drawn(fig: Any) -> list[np.ndarray]:
    """The array of every heat map drawn (one per panel), in axes order."""
    return [np.asarray(ax.images[-1].get_array()) for ax in fig.axes if ax.images]


class _Linear(torch.nn.Module):
    """Two outputs ``+-sum(w * x)``: feature ablation from a zero baseline credits a group
    with the sum of ``w * x`` over its elements (closed form)."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * self.w).flatten(1).sum(1)
        return torch.stack([s, -s], 1)


def _truth(w: np.ndarray, x: np.ndarray, ids: np.ndarray, ch_axis: int, sign: float = 1.0) -> np.ndarray:
    """Per pixel: the sum of the credits of the distinct groups among the pixel's channels,
    with each group's credit the sum of ``w * x`` over its elements (by hand)."""
    contrib = sign * w * x
    credit = {int(g): float(contrib[ids == g].sum()) for g in np.unique(ids)}
    ids_c = np.moveaxis(ids, ch_axis, -1)
    h, wd = ids_c.shape[:2]
    out = np.zeros((h, wd))
    for r in range(h):
        for c in range(wd):
            out[r, c] = sum(credit[int(g)] for g in set(ids_c[r, c].tolist()))
    return out


def _patch_ids(c: int, h: int, w: int, p: int, last: bool = False) -> np.ndarray:
    """Square p x p superpixels spanning every channel, numbered in reading order."""
    rows, cols = np.meshgrid(np.arange(h) // p, np.arange(w) // p, indexing="ij")
    hw = rows * (-(-w // p)) + cols
    return np.repeat(hw[..., None], c, -1) if last else np.repeat(hw[None], c, 0)


CASES: dict[str, tuple[tuple[int, ...], str, int]] = {
    # input shape per sample, grouping, channel axis
    "rgb patches": ((3, 8, 8), "patch", 0),
    "rgba patches": ((4, 6, 6), "patch", 0),
    "two-channel patches": ((2, 4, 6), "patch", 0),
    "gray patches (one channel)": ((1, 8, 8), "patch", 0),
    "channels-last rgb patches": ((8, 8, 3), "patch_last", 2),
    "one group per channel and patch": ((3, 8, 8), "per_channel", 0),
    "channels 0-1 together, 2 apart": ((3, 4, 4), "mixed", 0),
}


def _ids(shape: tuple[int, ...], kind: str) -> np.ndarray:
    if kind == "patch":
        return _patch_ids(shape[0], shape[1], shape[2], 2)
    if kind == "patch_last":
        return _patch_ids(shape[2], shape[0], shape[1], 2, last=True)
    base = _patch_ids(1, shape[1], shape[2], 2)[0]
    n = int(base.max()) + 1
    if kind == "per_channel":
        return np.stack([base + k * n for k in range(shape[0])])
    return np.stack([base, base, base + n])  # mixed


@pytest.mark.parametrize("case", list(CASES))
def test_superpixel_credit_is_drawn_once_per_pixel_not_once_per_channel(case: str) -> None:
    # the old code summed the channels of to_input_shape(), where every element carries its
    # group's whole credit: a 3-channel patch was drawn with 3x its credit (-25.27 for -8.42)
    shape, kind, ch = CASES[case]
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(shape, generator=gen, dtype=torch.float64)
    x = torch.rand((3, *shape), generator=gen, dtype=torch.float64) + 0.5
    ids = _ids(shape, kind)
    attr = tribute.explain(_Linear(w), x, "feature_ablation", target=0,
                           groups=torch.as_tensor(ids), baseline=0.0)
    for i in (0, 2, -1):
        truth = _truth(w.numpy(), x[i].numpy(), ids, ch)
        np.testing.assert_allclose(_drawn(attr.plot(i))[0], truth, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(_drawn(attr.plot(i, kind="image", signed=False))[0],
                                   _truth_abs(w.numpy(), x[i].numpy(), ids, ch), rtol=1e-10, atol=1e-12)
    grid = _drawn(viz.image_grid({"fa": attr}))
    for i, d in enumerate(grid):
        np.testing.assert_allclose(d, _truth(w.numpy(), x[i].numpy(), ids, ch), rtol=1e-10, atol=1e-12)
    one = tribute.explain(_Linear(w), x[1:2], "feature_ablation", target=0,
                          groups=torch.as_tensor(ids), baseline=0.0)
    np.testing.assert_allclose(_drawn(viz.image(one))[0], _truth(w.numpy(), x[1].numpy(), ids, ch),
                               rtol=1e-10, atol=1e-12)


def _truth_abs(w: np.ndarray, x: np.ndarray, ids: np.ndarray, ch_axis: int) -> np.ndarray:
    """The unsigned view: the sum of |credit| of the distinct groups at each pixel."""
    contrib = w * x
    credit = {int(g): abs(float(contrib[ids == g].sum())) for g in np.unique(ids)}
    ids_c = np.moveaxis(ids, ch_axis, -1)
    return np.array([[sum(credit[int(g)] for g in set(ids_c[r, c].tolist()))
                      for c in range(ids_c.shape[1])] for r in range(ids_c.shape[0])])


def test_superpixels_of_each_target_and_sample_own_groups() -> None:
    shape = (3, 4, 4)
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(shape, generator=gen, dtype=torch.float64)
    x = torch.rand((2, *shape), generator=gen, dtype=torch.float64) + 0.5
    ids = _ids(shape, "patch")
    # several targets: target 1 is -sum(w x), every credit negated
    attr = tribute.explain(_Linear(w), x, "feature_ablation", target=[0, 1],
                           groups=torch.as_tensor(ids), baseline=0.0)
    for t, sign in ((0, 1.0), (1, -1.0)):
        np.testing.assert_allclose(_drawn(attr.plot(1, target=t))[0],
                                   _truth(w.numpy(), x[1].numpy(), ids, 0, sign), rtol=1e-10)
    # one grouping per sample: sample 0 2x2 patches, sample 1 halves (left/right) of channels
    # 0-1 together and of channel 2 alone
    half = (np.arange(4) >= 2).astype(np.int64)[None, None, :] + np.zeros(shape, dtype=np.int64)
    half[2] += 2
    per = np.stack([ids, half])
    attr = tribute.explain(_Linear(w), x, "feature_ablation", target=0,
                           groups=torch.as_tensor(per), baseline=0.0)
    for i in (0, 1):
        np.testing.assert_allclose(_drawn(attr.plot(i))[0],
                                   _truth(w.numpy(), x[i].numpy(), per[i], 0), rtol=1e-10)


def test_dense_maps_still_sum_their_channels() -> None:
    # every element its own player: a pixel's credit is the sum of its channels' credits
    shape = (3, 4, 4)
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(shape, generator=gen, dtype=torch.float64)
    x = torch.rand((2, *shape), generator=gen, dtype=torch.float64)
    attr = tribute.explain(_Linear(w), x, "feature_ablation", target=0, baseline=0.0)
    np.testing.assert_allclose(_drawn(attr.plot(1))[0], (w * x[1]).sum(0).numpy(), rtol=1e-10)
