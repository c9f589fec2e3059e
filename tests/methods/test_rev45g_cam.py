"""rev45g: Grad-CAM's channel-axis reading (aud45g) on channels-first cases it misread.

Regressions (failed at aud45g's 9e724ae, passed at its base 194a6f3):
- A model whose first registered ``Conv2d`` is a fuse convolution (registered before the two
  branches whose concatenated 4 + 4 channels it reads) reads 8 channels, the width of a plain
  ``(3, 8, 8)`` image: the image was taken for channels-last ``(H, W, C) = (3, 8, 8)`` and its
  map went to 3 x 8 rows broadcast over the last axis (the whole map wrong).
- timm's ``LayerNorm2d`` (an ``nn.LayerNorm`` that normalises the channels of a
  ``(batch, C, h, w)`` map by permuting) with ``C == w``: read channels-last by its type.

Truth: Grad-CAM / Grad-CAM++ by hand from autograd gradients at the layer's output.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tribute
from tribute_testing import grad_cam_weights, output_and_activation, randn_init


class _FuseFirst(nn.Module):
    """The 1x1 fuse Conv2d(2 * half, 4) is registered before the branches it reads."""

    def __init__(self, cin: int, half: int) -> None:
        super().__init__()
        self.fuse = nn.Conv2d(2 * half, 4, 1)
        self.a = nn.Conv2d(cin, half, 3, padding=1)
        self.b = nn.Conv2d(cin, half, 5, padding=2)
        self.relu = nn.ReLU()
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.fuse(torch.cat([self.a(x), self.b(x)], 1)))
        return self.head(y.mean((2, 3)))


class _LayerNorm2d(nn.LayerNorm):
    """timm's LayerNorm2d: LayerNorm over the channels of a (batch, C, h, w) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class _LN2dNet(nn.Module):
    def __init__(self, c: int, h: int, w: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.ln = _LayerNorm2d(c)
        self.head = nn.Linear(c * h * w, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.ln(self.conv(x))).flatten(1))


def _hand(model: nn.Module, x: torch.Tensor, layer: str, target: torch.Tensor, pp: bool,
          relu: bool) -> torch.Tensor:
    """Grad-CAM (or ++) by hand, channels on axis 1, bilinear to the image, broadcast over C."""
    out, a = output_and_activation(model, layer, x)
    (g,) = torch.autograd.grad(out[torch.arange(x.shape[0]), target].sum(), a)
    a, g = a.detach(), g.detach()
    wts = grad_cam_weights(a, g, pp)
    cam = (wts * a).sum(1, keepdim=True)
    if relu:
        cam = cam.clamp_min(0)
    cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
    return cam.expand(-1, x.shape[1], -1, -1)


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp"])
@pytest.mark.parametrize(("cin", "h", "w", "half", "layer"),
                         [(3, 8, 8, 4, "relu"), (3, 8, 8, 4, "a"), (1, 6, 8, 4, "relu"), (3, 12, 16, 8, "b")])
def test_cam_reads_a_plain_image_as_channels_first_when_a_fuse_conv_is_registered_first(
        method: str, cin: int, h: int, w: int, half: int, layer: str) -> None:
    model = randn_init(_FuseFirst(cin, half), 3)
    x = torch.rand(3, cin, h, w, generator=torch.Generator().manual_seed(1), dtype=torch.float64) - 0.3
    target = torch.tensor([0, 2, 1])
    attr = tribute.explain(model, x, method, target=target, layer=layer, relu=False, progress=False)
    truth = _hand(model, x, layer, target, method == "grad_cam_pp", relu=False)
    got = torch.as_tensor(attr.values)
    assert got.shape == x.shape
    assert truth.abs().max() > 1e-3
    assert torch.allclose(got, truth, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp"])
@pytest.mark.parametrize(("c", "h", "w"), [(6, 6, 6), (6, 4, 6), (5, 8, 5), (6, 8, 5)])
def test_cam_reads_layernorm2d_channels_first_when_channels_equal_width(method: str, c: int, h: int, w: int) -> None:
    model = randn_init(_LN2dNet(c, h, w), 4)
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(2), dtype=torch.float64) - 0.3
    target = torch.tensor([1, 0])
    attr = tribute.explain(model, x, method, target=target, layer="ln", relu=False, progress=False)
    truth = _hand(model, x, "ln", target, method == "grad_cam_pp", relu=False)
    assert attr.extra["layer_shape"] == (c, h, w)
    assert truth.abs().max() > 1e-3
    assert torch.allclose(torch.as_tensor(attr.values), truth, rtol=0, atol=1e-12)
