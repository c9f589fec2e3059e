"""Review (stop 45) of the superpixel maps: per-sample inputs with a leading axis of 1
(``(1, C, H, W)``), which viz reads as one ``(C, H, W)`` map, drew a patch spanning the
channels with C times its credit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute import viz


class _Lin(torch.nn.Module):
    """Outputs ``(s, 0.5 - s)`` with ``s = sum(w * x)``: from a zero baseline a group's exact
    Shapley credit is the sum of ``w * x`` over its elements (negated for output 1)."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * self.w).flatten(1).sum(1)
        return torch.stack([s, 0.5 - s], 1)


def _map(fig: Any) -> np.ndarray:
    return np.asarray(fig.axes[0].images[0].get_array(), dtype=np.float64)


def _truth(contrib: np.ndarray, ids: np.ndarray, ch_axis: int) -> np.ndarray:
    """Per pixel: the credits of the distinct groups among its channels, summed (by hand)."""
    credit = {int(g): float(contrib[ids == g].sum()) for g in np.unique(ids)}
    ids_c = np.moveaxis(ids, ch_axis, -1)
    return np.array([[sum(credit[int(g)] for g in set(ids_c[r, c].tolist()))
                      for c in range(ids_c.shape[1])] for r in range(ids_c.shape[0])])


# per-sample shape with a leading 1, channel axis of the (C, H, W) / (H, W, C) map
SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "1x3x8x8": ((1, 3, 8, 8), 0),
    "1x4x6x6": ((1, 4, 6, 6), 0),
    "1x8x8x3 channels-last": ((1, 8, 8, 3), 2),
    "1x1x8x8 gray": ((1, 1, 8, 8), 0),
}


@pytest.mark.parametrize("case", list(SHAPES))
def test_superpixels_of_a_leading_one_axis_input_are_drawn_once_per_pixel(case: str) -> None:
    shape, ch = SHAPES[case]
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(shape, generator=gen, dtype=torch.float64)
    x = torch.randn((2, *shape), generator=gen, dtype=torch.float64)
    img = shape[1:]
    h, wd = [d for a, d in enumerate(img) if a != ch]
    patch = (np.arange(h)[:, None] // 4) * 2 + np.arange(wd)[None] // 4  # 4 patches spanning channels
    ids2 = np.expand_dims(patch, ch).repeat(img[ch], ch)
    ids = ids2[None]
    attr = tribute.explain(_Lin(w), x, "exact_shapley", target=[0, 1], groups=ids, baseline=0.0)
    for i in (0, 1, -1):
        contrib = (w * x[i]).numpy()[0]
        # efficiency of the credits drawn: they sum to f(x) - f(0)
        fx = float((w * x[i]).sum())
        assert float(attr.flat()[i, 0].sum()) == pytest.approx(fx, abs=1e-9)
        for t, sign in ((0, 1.0), (1, -1.0)):
            np.testing.assert_allclose(_map(attr.plot(i, target=t)), _truth(sign * contrib, ids2, ch),
                                       rtol=1e-9, atol=1e-12)
    one = tribute.explain(_Lin(w), x, "exact_shapley", target=0, groups=ids, baseline=0.0)
    grid = [np.asarray(ax.images[0].get_array()) for ax in viz.image_grid({"m": one}).axes if ax.images]
    assert len(grid) == 2
    for i, d in enumerate(grid):
        np.testing.assert_allclose(d, _truth((w * x[i]).numpy()[0], ids2, ch), rtol=1e-9, atol=1e-12)
