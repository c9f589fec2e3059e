"""rev52v: the first-pass probe (aud52v) reads only a ``Conv2d`` given one sample per row.

A ``(3, 16, 16)`` model whose first running ``Conv2d`` convolves each image row's ``(C, W)``
slice (the rows folded into the batch: ``(n * 16, 1, 3, 16)``) showed ``(1, 3, 16)``, read as an
``(H, W, C)`` image: occlusion's default windows became ``(1, 2, 16)`` (25 evaluations, 13.9 off
the closed form, scale 14.0), ``patches(2)`` was refused naming ``channel_axis=-1`` and the maps
recorded ``channel_axis=-1``. Truth: the model is linear, so occlusion of a ``(3, 2, 2)`` window
and a ``2 x 2`` patch's ablation are the sum of ``w * x`` over it (autograd)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute


class _RowFold(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.row = torch.nn.Conv2d(1, 1, 1, bias=False)
        self.conv = torch.nn.Conv2d(3, 1, 1, bias=False)
        g = torch.Generator().manual_seed(0)
        for p in self.parameters():
            torch.nn.init.normal_(p, generator=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        r = self.row(x.permute(0, 2, 1, 3).reshape(n * h, 1, c, w))  # one (C, W) slice per row
        r = r.reshape(n, h, c, w).permute(0, 2, 1, 3)
        return self.conv(r).sum((1, 2, 3))[:, None]


def _case(dtype: torch.dtype) -> tuple[torch.nn.Module, torch.Tensor, np.ndarray]:
    model = _RowFold().to(dtype)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xg).sum(), xg)
    wx = (g * x).detach().to(torch.float64).numpy()
    return model, x, wx.reshape(2, 3, 8, 2, 8, 2).sum((1, 3, 5))  # per 2x2 pixel block, all channels


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_convolution_over_rows_folded_into_the_batch_does_not_decide_the_channel_axis(
        dtype: torch.dtype) -> None:
    model, x, truth = _case(dtype)
    tol = 1e-10 if dtype == torch.float64 else 1e-3
    occ = tribute.explain(model, x, method="occlusion")
    v = np.asarray(occ.values, dtype=np.float64)
    assert occ.layout.channel_axis is None
    assert occ.n_evals is not None and int(np.max(occ.n_evals)) == 65  # 64 windows of (3, 2, 2) + 1
    np.testing.assert_allclose(v[:, 0, ::2, ::2], truth, atol=tol * 14)
    np.testing.assert_allclose(v, v[:, :1].repeat(3, 1), atol=tol)  # one value over a window's channels
    fa = tribute.explain(model, x, method="feature_ablation", groups=tribute.patches(2))
    fv = np.asarray(fa.values, dtype=np.float64)
    assert fv.shape == (2, 64)  # 8 x 8 patches of 2 x 2 pixels, all channels
    np.testing.assert_allclose(fv.reshape(2, 8, 8), truth, atol=tol * 14)
    assert sum(len(m._forward_pre_hooks) for m in model.modules()) == 0
