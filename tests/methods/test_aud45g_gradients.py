"""aud45g: gradient, LRP, DeepLIFT and CAM methods against truths computed outside tribute.

Regression (failed before the fix): Grad-CAM / Grad-CAM++ upsampled the layer map to the
input's *last two* axes. A channels-last ``(H, W, C)`` image (a model that permutes its input
to ``(C, H, W)``) got its ``8 x 6`` map resized to ``6 x 3`` (``(W, C)``) and repeated over
``H``: another map, with no warning. Now the map goes to ``(H, W)`` and is broadcast over
``C`` when the model's first ``Conv2d`` reads the last axis's channels, and a shape that reads
channels-last when the model does not tell is refused. Channels-first images are unchanged.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tribute
from tribute.errors import UnsupportedModelError
from tribute.methods.lrp import Composite, Epsilon, Pass
from tribute_testing import output_and_activation


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
    out, act = output_and_activation(model, layer, x)
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
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UnsupportedModelError, match=r"\(8, 6, 3\).*channels-last.*8 x 6 map"):
        tribute.explain(model, x, method, target=0, layer="r1", progress=False)
    # the model is left as it was: no hooks, flags and parameters unchanged
    assert all(not m._forward_hooks and not m._forward_pre_hooks and m.training for m in model.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


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


# ----------------------------------------------- Grad-CAM on channels-last layer outputs
class _SwinLike(nn.Module):
    """Patch embedding, then (batch, h, w, C) tokens through LayerNorm, Linear and GELU (a Swin
    stage's layout), mean-pooled into a head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 6, 2, stride=2)
        self.norm = nn.LayerNorm(6)
        self.mlp = nn.Linear(6, 6)
        self.act = nn.GELU()
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x).permute(0, 2, 3, 1)
        return self.head(self.act(self.mlp(self.norm(h))).mean((1, 2)))


class _Mixed(nn.Module):
    """Channels-first layers whose h and w equal the channel count, a GroupNorm, a max pool, a
    ConvNeXt-like channels-last LayerNorm/Linear permuted back, and a concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.r1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(8, 4, 1)
        self.gn = nn.GroupNorm(2, 4)
        self.r2 = nn.ReLU()
        self.ln = nn.LayerNorm(4)
        self.pw = nn.Linear(4, 4)
        self.blk_act = nn.GELU()
        self.c3 = nn.Conv2d(8, 6, 3, padding=1)
        self.r3 = nn.ReLU()
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.pool(self.r1(self.bn(self.c1(x))))
        b = self.r2(self.gn(self.c2(a)))
        b = self.blk_act(self.pw(self.ln(b.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)) + b
        return self.head(self.r3(self.c3(torch.cat([b, b], 1))).mean((2, 3)))


def _hand_cam_axis(model: nn.Module, x: torch.Tensor, layer: str, target: int, axis: int) -> torch.Tensor:
    """Grad-CAM by hand with the channels on ``axis`` of the layer's output; B x H x W."""
    out, a = output_and_activation(model, layer, x)
    (g,) = torch.autograd.grad(out[:, target].sum(), a)
    act, g = a.movedim(axis, 1), g.movedim(axis, 1)
    cam = torch.relu((g.mean((2, 3), keepdim=True) * act).sum(1, keepdim=True))
    hw = (int(x.shape[-2]), int(x.shape[-1]))
    if tuple(cam.shape[-2:]) != hw:
        cam = F.interpolate(cam, size=hw, mode="bilinear", align_corners=False)
    return cam[:, 0].detach()


_M = TypeVar("_M", bound=nn.Module)


def _seeded(model: _M, seed: int) -> _M:
    """``model`` in float64 and eval mode with seeded parameters (in place)."""
    model.double()
    model.eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    return model


@pytest.mark.parametrize("layer", ["norm", "mlp", "act"])
def test_grad_cam_reads_a_channels_last_layer_output(layer: str) -> None:
    """Before: the (batch, 4, 6, 6) output's h=4 was read as channels and (6, C=6) as the
    map: errors as large as the map itself (0.006 for a map up to 0.006)."""
    model = _seeded(_SwinLike(), 3)
    x = torch.rand(2, 3, 8, 12, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    attr = tribute.explain(model, x, "grad_cam", target=0, layer=layer, progress=False)
    truth = _hand_cam_axis(model, x, layer, 0, 3)
    assert attr.extra["layer_shape"] == (6, 4, 6)
    got = torch.as_tensor(attr.values)
    assert torch.allclose(got, truth[:, None].expand_as(got), rtol=0, atol=1e-12)
    assert float(truth.max()) > 1e-4


@pytest.mark.parametrize(("layer", "axis"), [
    ("c1", 1), ("bn", 1), ("r1", 1), ("pool", 1), ("c2", 1), ("gn", 1), ("r2", 1),
    ("ln", 3), ("pw", 3), ("blk_act", 1), ("c3", 1), ("r3", 1),
])
def test_grad_cam_channel_axis_of_mixed_layers(layer: str, axis: int) -> None:
    """Neighbours: channels-first layers (also with C == h == w, after a permute back, after a
    concatenation) keep axis 1; the ConvNeXt-like LayerNorm / Linear on (batch, h, w, C) read
    the last axis."""
    model = _seeded(_Mixed(), 6)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    attr = tribute.explain(model, x, "grad_cam", target=1, layer=layer, progress=False)
    truth = _hand_cam_axis(model, x, layer, 1, axis)
    got = torch.as_tensor(attr.values)
    assert torch.allclose(got, truth[:, None].expand_as(got), rtol=0, atol=1e-12)


# ---------------------------------------------- LRP-0 / AttnLRP epsilon=0 at exact zeros
def _two_layers(act: nn.Module, seed: int, bias2: bool = True) -> tuple[nn.Sequential, nn.Linear, nn.Linear]:
    """Linear(4, 6, no bias) -> act -> Linear(6, 2), seeded; returns the model and its layers."""
    l1, l2 = nn.Linear(4, 6, bias=False), nn.Linear(6, 2, bias=bias2)
    model = _seeded(nn.Sequential(l1, act, l2), seed)
    return model, l1, l2


def _relu_net(seed: int) -> tuple[nn.Sequential, nn.Linear, nn.Linear]:
    """The ReLU net; unit 0 reads x0 - x1 (zero when x0 == x1)."""
    model, l1, l2 = _two_layers(nn.ReLU(), seed)
    with torch.no_grad():
        l1.weight[0] = torch.tensor([1.0, -1.0, 0.0, 0.0], dtype=torch.float64)
    return model, l1, l2


def _hand_lrp0(l1: nn.Linear, l2: nn.Linear, x: torch.Tensor, target: int) -> torch.Tensor:
    """LRP-0 written out: R_h = h * W2[t] (the bias absorbs its share), R_x = x * W1^T (R_h / z)
    over the units with z != 0 (a unit with z == 0 has h == 0 and R_h == 0: it passes nothing)."""
    w1, w2 = l1.weight.detach(), l2.weight.detach()
    z = x @ w1.T
    rh = z.clamp(min=0) * w2[target]
    ratio = torch.where(z != 0, rh / torch.where(z != 0, z, torch.ones_like(z)), torch.zeros_like(z))
    return x * (ratio @ w1)


def test_lrp0_dead_unit_at_exactly_zero_passes_nothing() -> None:
    """Before: a hidden unit with z == 0 exactly (x0 == x1 here) gave 0 / 0 and NaN for every
    input of the sample; LRP-0's limit (and epsilon=1e-12's value) gives the unit nothing."""
    model, l1, l2 = _relu_net(11)
    x = torch.tensor([[1.0, 1.0, 0.5, -0.3], [0.4, -0.2, 0.9, 0.1], [-0.7, -0.7, 0.2, 0.8]],
                     dtype=torch.float64)
    comp = Composite([(nn.ReLU, Pass()), (nn.Linear, Epsilon(0.0))], name="lrp0")
    attr = tribute.explain(model, x, "lrp", composite=comp, target=1, progress=False)
    got = torch.as_tensor(attr.values)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, _hand_lrp0(l1, l2, x, 1), rtol=0, atol=1e-12)
    near = tribute.explain(model, x, "lrp", composite="epsilon_plus", epsilon=1e-12, target=1,
                           progress=False)
    assert torch.allclose(got, torch.as_tensor(near.values), rtol=0, atol=1e-9)


def test_lrp0_sample_with_zero_output_gets_zero_relevance() -> None:
    """f(x) == 0 (a zero input into bias-free layers): relevance 0, which the rules' linearity
    gives; before, the pass's 1 / f(x) made the sample NaN. The other samples are unchanged."""
    model, _, _ = _two_layers(nn.ReLU(), 12, bias2=False)
    x = torch.rand(3, 4, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    x[1] = 0.0
    attr = tribute.explain(model, x, "lrp", composite="epsilon_plus", epsilon=0.0, target=0,
                           progress=False)
    got = torch.as_tensor(attr.values)
    assert torch.equal(got[1], torch.zeros(4, dtype=torch.float64))
    assert attr.gap is not None and float(abs(attr.gap[1]).max()) == 0.0
    # bias-free ReLU net: LRP-0 is gradient x input (Montavon et al. 2019), computed by autograd
    xx = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xx)[:, 0].sum(), xx)
    assert torch.allclose(got, (x * g).detach(), rtol=0, atol=1e-12)


def test_attnlrp_epsilon_zero_activation_at_exactly_zero() -> None:
    """AttnLRP's identity rule y / x at x == 0 (GELU(0) == 0) with epsilon=0: 0 / 0 made the
    sample NaN. Truth: the rule written out, R_x = x * W1^T (W2[t] * y / x) over x != 0
    (the epsilon -> 0 limit: a unit with y == 0 passes nothing)."""
    model, l1, l2 = _two_layers(nn.GELU(), 14)
    with torch.no_grad():
        l1.weight[0] = torch.tensor([1.0, -1.0, 0.0, 0.0], dtype=torch.float64)
    x = torch.tensor([[0.3, 0.3, -0.5, 0.2], [0.0, 0.0, 0.0, 0.0], [0.8, -0.1, 0.4, 0.6]],
                     dtype=torch.float64)
    attr = tribute.explain(model, x, "attnlrp", epsilon=0.0, target=0, progress=False)
    w1, w2 = l1.weight.detach(), l2.weight.detach()
    z = x @ w1.T
    y = F.gelu(z)
    ratio = torch.where(z != 0, y / torch.where(z != 0, z, torch.ones_like(z)), torch.zeros_like(z))
    truth = x * ((w2[0] * ratio) @ w1)
    got = torch.as_tensor(attr.values)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, truth, rtol=0, atol=1e-12)
    assert float(truth[0].abs().max()) > 1e-3
