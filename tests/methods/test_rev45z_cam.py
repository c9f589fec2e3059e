"""rev45z: Grad-CAM refused channels-first images its model confirms (aud45g's channels-last guard)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tribute


def _net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    # a padded convolution: its map (34 x 6) is wider than the input's last axis (4)
    net = torch.nn.Sequential(torch.nn.Conv2d(8, 5, 3, padding=2), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(5 * 34 * 6, 2)).double()
    return net.eval()


def _by_hand(net: torch.nn.Sequential, x: torch.Tensor, target: int) -> torch.Tensor:
    act = net[1](net[0](x)).detach().requires_grad_(True)
    out = net[3](net[2](act))[:, target].sum()
    (grad,) = torch.autograd.grad(out, act)
    w = grad.mean((2, 3))  # B x C
    cam = torch.relu((w[:, :, None, None] * act).sum(1, keepdim=True)).detach()
    up = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return up.expand(-1, x.shape[1], -1, -1)


def test_channels_first_confirmed_by_first_conv_is_not_refused() -> None:
    net = _net()
    x = torch.randn(3, 8, 32, 4, dtype=torch.float64)  # (C, H, W) = (8, 32, 4): Conv2d(8, ...)
    attr = tribute.explain(net, x, method="grad_cam", layer="1", target=0)
    truth = _by_hand(net, x, 0)
    assert torch.allclose(torch.as_tensor(attr.values), truth, atol=1e-10)


def test_several_shapes_confirmed_channels_first() -> None:
    torch.manual_seed(1)
    for c, h, w in [(8, 16, 3), (5, 9, 1), (6, 12, 4), (16, 20, 3)]:
        net = torch.nn.Sequential(torch.nn.Conv2d(c, 4, 3, padding=2), torch.nn.ReLU(),
                                  torch.nn.Flatten(), torch.nn.Linear(4 * (h + 2) * (w + 2), 2))
        net = net.double().eval()
        x = torch.randn(2, c, h, w, dtype=torch.float64)
        attr = tribute.explain(net, x, method="grad_cam", layer="1", target=1)
        assert torch.allclose(torch.as_tensor(attr.values), _by_hand(net, x, 1), atol=1e-10)
