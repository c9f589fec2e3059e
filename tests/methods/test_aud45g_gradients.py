"""aud45g: gradient, LRP, DeepLIFT and CAM methods against truths computed outside tribute.

Regression (failed before the fix): Grad-CAM / Grad-CAM++ upsampled the layer map to the
input's *last two* axes. A channels-last ``(H, W, C)`` image (a model that permutes its input
to ``(C, H, W)``) got its ``8 x 6`` map resized to ``6 x 3`` (``(W, C)``) and repeated over
``H``: another map, with no warning. Now the map goes to ``(H, W)`` and is broadcast over
``C`` when the model's first ``Conv2d`` reads the last axis's channels, and a shape that reads
channels-last when the model does not tell is refused. Channels-first images are unchanged.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tribute
from tribute.errors import UnsupportedModelError


class _Image(nn.Module):
    """Conv -> ReLU -> strided conv -> ReLU -> pool -> Linear; ``last``: reads (B, H, W, C).
    ``head_first`` registers the Linear before the convolutions, so the module tree does not
    tell the layout."""

    def __init__(self, cin: int, last: bool, head_first: bool = False, up: int | None = None) -> None:
        super().__init__()
        if head_first:
            self.head = nn.Linear(4, 2)
        self.up: nn.Module = nn.Upsample(scale_factor=up) if up else nn.Identity()
        self.c1 = nn.Conv2d(cin, 4, 3, padding=1)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.r2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        if not head_first:
            self.head = nn.Linear(4, 2)
        self.last = last
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.last:
            x = x.permute(0, 3, 1, 2)
        return self.head(self.pool(self.r2(self.c2(self.r1(self.c1(self.up(x)))))).flatten(1))


def _hand_cam(model: _Image, x: torch.Tensor, layer: str, target: torch.Tensor,
              hw: tuple[int, int]) -> torch.Tensor:
    """Grad-CAM by hand: relu(sum_c mean_hw(dS/dA_c) A_c), bilinear to ``hw``; B x H x W."""
    seen: dict[str, torch.Tensor] = {}
    h = getattr(model, layer).register_forward_hook(lambda m, i, o: seen.__setitem__("a", o))
    try:
        out = model(x)
    finally:
        h.remove()
    act = seen["a"]
    (g,) = torch.autograd.grad(out[torch.arange(x.shape[0]), target].sum(), act)
    cam = torch.relu((g.mean((2, 3), keepdim=True) * act).sum(1, keepdim=True))
    if tuple(cam.shape[-2:]) != hw:
        cam = F.interpolate(cam, size=hw, mode="bilinear", align_corners=False)
    return cam[:, 0].detach()


@pytest.mark.parametrize("layer", ["r1", "r2"])
def test_grad_cam_on_channels_last_images_maps_h_and_w(layer: str) -> None:
    model = _Image(3, last=True).double()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 8, 6, 3, generator=g, dtype=torch.float64)
    target = torch.tensor([0, 1, 1])
    attr = tribute.explain(model, x, "grad_cam", target=target, layer=layer, progress=False)
    truth = _hand_cam(model, x, layer, target, (8, 6))[..., None].expand(-1, -1, -1, 3)
    assert torch.as_tensor(attr.values).shape == (3, 8, 6, 3)
    assert torch.allclose(torch.as_tensor(attr.values), truth, rtol=0, atol=1e-12)
    assert float(truth.abs().max()) > 1e-3  # a map, not zeros


def test_grad_cam_pp_channels_last_equals_channels_first() -> None:
    """The same network fed the same images channels-first (a path checked against a hand
    Grad-CAM below) gives the same Grad-CAM++ map, permuted."""
    g = torch.Generator().manual_seed(1)
    x_last = torch.rand(2, 8, 6, 3, generator=g, dtype=torch.float64)
    last = _Image(3, last=True).double()
    first = _Image(3, last=False).double()
    kw: dict[str, Any] = {"target": torch.tensor([1, 0]), "layer": "r2", "progress": False}
    a_last = torch.as_tensor(tribute.explain(last, x_last, "grad_cam_pp", **kw).values)
    a_first = torch.as_tensor(tribute.explain(first, x_last.permute(0, 3, 1, 2), "grad_cam_pp", **kw).values)
    assert torch.allclose(a_last, a_first.permute(0, 2, 3, 1), rtol=0, atol=1e-12)
    assert float(a_first.abs().max()) > 1e-4


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp"])
def test_cam_refuses_channels_last_shapes_the_model_does_not_confirm(method: str) -> None:
    model = _Image(3, last=True, head_first=True).double()
    x = torch.rand(2, 8, 6, 3, dtype=torch.float64)
    with pytest.raises(UnsupportedModelError, match=r"\(8, 6, 3\).*channels-last.*8 x 6 map"):
        tribute.explain(model, x, method, target=0, layer="r1", progress=False)


@pytest.mark.parametrize(("shape", "kw"), [
    ((3, 8, 8), {}), ((1, 8, 8), {}), ((4, 16, 16), {}), ((3, 4, 4), {"up": 4}),
    ((8, 16, 4), {}), ((3, 8, 3), {}), ((3, 6, 6), {"head_first": True}),
    ((3, 5, 4), {"up": 2}), ((1, 6, 6), {"head_first": True}), ((3, 10, 7), {}),
    ((4, 8, 4), {"up": 2, "head_first": True}),
])
def test_grad_cam_channels_first_images_unchanged(shape: tuple[int, int, int], kw: dict[str, Any]) -> None:
    """Neighbours of the refusal: channels-first images, also with a last axis of 3 or 4,
    upsampling inside the model, or a module tree that does not tell the layout."""
    model = _Image(shape[0], last=False, **kw).double()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, *shape, generator=g, dtype=torch.float64)
    target = torch.tensor([0, 1])
    attr = tribute.explain(model, x, "grad_cam", target=target, layer="r1", progress=False)
    truth = _hand_cam(model, x, "r1", target, (shape[1], shape[2]))[:, None].expand(-1, shape[0], -1, -1)
    assert torch.allclose(torch.as_tensor(attr.values), truth, rtol=0, atol=1e-12)
