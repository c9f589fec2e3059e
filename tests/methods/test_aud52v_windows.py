"""aud52v: occlusion's default windows and RISE's masks on a channels-last CNN.

Both read the last two axes of a sample as the pixels. On a CNN that reads ``(H, W, C)`` images
(its first ``Conv2d`` reads the last axis), occlusion's default window was ``H x ceil(W/8) x 1``
(whole columns of one channel: 25 evaluations for 16x16x3 where the image has 64 pixel windows;
credits 58 off for a scale of 23) and RISE's masks were drawn over columns x channels, the same
for every row (27 off for a scale of 63). Truth: the same linear model read channels-first with
the permuted image (and occlusion's closed form, the sum of ``w * x`` over each window).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.methods.occlusion import default_window


class _Lin(torch.nn.Module):
    def __init__(self, last: bool) -> None:
        super().__init__()
        self.last = last
        self.conv = torch.nn.Conv2d(3, 1, 3, padding=1, bias=False)
        torch.nn.init.normal_(self.conv.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.last:
            x = x.permute(0, 3, 1, 2)
        return self.conv(x).sum((1, 2, 3))[:, None]


def _pair(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    xf = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    return xf, xf.permute(0, 2, 3, 1).contiguous()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("method", ["occlusion", "rise"])
def test_a_channels_last_cnn_gets_the_windows_and_masks_of_its_pixels(method: str, dtype: torch.dtype) -> None:
    xf, xl = _pair(dtype)
    kw: dict[str, Any] = {"budget": 64, "seed": 3} if method == "rise" else {}
    af = tribute.explain(_Lin(False).to(dtype), xf, method=method, **kw)
    al = tribute.explain(_Lin(True).to(dtype), xl, method=method, **kw)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    np.testing.assert_allclose(np.asarray(al.values).transpose(0, 3, 1, 2), np.asarray(af.values), atol=tol)
    if method == "rise":
        np.testing.assert_allclose(np.asarray(al.stderr).transpose(0, 3, 1, 2), np.asarray(af.stderr), atol=tol)
    assert al.n_evals == af.n_evals


def test_occlusion_of_a_channels_last_cnn_equals_its_closed_form() -> None:
    _, xl = _pair(torch.float64)
    model = _Lin(True).double()
    x = xl[:1].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x).sum(), x)
    wx = (g * x).detach().numpy()[0]
    truth = np.zeros_like(wx)
    for i in range(0, 16, 2):
        for j in range(0, 16, 2):
            truth[i:i + 2, j:j + 2] = wx[i:i + 2, j:j + 2].sum()
    attr = tribute.explain(model, xl[:1], method="occlusion")
    np.testing.assert_allclose(np.asarray(attr.values)[0], truth, atol=1e-10)


def test_models_that_do_not_read_channels_last_keep_their_windows() -> None:
    """Negative cases: a channels-first CNN and a numpy callable (the model does not say)."""
    assert default_window((3, 16, 16)) == (3, 2, 2)
    assert default_window((16, 16, 3), -1) == (2, 2, 3)
    xf, xl = _pair(torch.float64)
    attr = tribute.explain(_Lin(False).double(), xf, method="occlusion")
    assert attr.n_evals == 65
    w = np.random.default_rng(0).normal(size=(16, 16, 3))
    attr = tribute.explain(lambda a: (a * w).sum((1, 2, 3))[:, None], xl.numpy(), method="occlusion",
                           baseline=0.0)
    assert attr.n_evals == 1 + 1 * 8 * 3  # (16, 2, 1) windows over the last two axes, as before
