"""rev46z: small46's layout rule (``channels_last_by_model`` says None where the last axis is not
the short one and another Conv2d reads the first axis's count) also hit a plain CNN chain on
channels-last patches with many bands: ``(16, 16, 32)`` patches, a model that permutes them for
``Conv2d(32, 16)`` then ``Conv2d(16, 8)``. The second convolution reads 16 channels, the first
one's output, not the image: the model says channels-last (before small46 it did), but the rule
said None, so XRAI segmented 16 x 32 images of 16 channels (before: refused naming the fix), the
metrics read the patches channels-first, and Grad-CAM mapped the layer onto 16 x 32.

Truth for Grad-CAM: the map by hand from the layer's activation and gradient (torch autograd),
already h x w (no upsampling), broadcast over the bands.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError
from tribute.models.layout import channels_last_by_model, looks_channels_last
from tribute_testing import output_and_activation


class _Chain(nn.Module):
    """Channels-last ``(h, w, bands)`` patches, permuted for a chain of two convolutions."""

    def __init__(self, bands: int, mid: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(bands, mid, 3, padding=1)
        self.c2 = nn.Conv2d(mid, 8, 3, padding=1)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.c1(x.permute(0, 3, 1, 2)))
        return self.head(torch.relu(self.c2(y)).mean((2, 3)))


@pytest.mark.parametrize(("shape", "mid"), [((16, 16, 32), 16), ((8, 8, 16), 8), ((8, 12, 16), 8),
                                            ((32, 32, 64), 32), ((5, 5, 20), 5)])
def test_a_conv_chain_on_channels_last_patches_stays_channels_last(
        shape: tuple[int, int, int], mid: int) -> None:
    model = _Chain(shape[-1], mid)
    assert channels_last_by_model(shape, model) is True
    assert looks_channels_last(shape, model) is True


def test_xrai_refuses_channels_last_patches_of_a_conv_chain() -> None:
    model = _Chain(32, 16).double().eval()
    x = torch.rand(1, 16, 16, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with pytest.raises(InputError, match="channels-last"):
        tribute.explain(model, x, "xrai", target=0, progress=False)


def test_grad_cam_maps_a_conv_chain_layer_to_h_by_w() -> None:
    h, w, bands = 16, 16, 32
    torch.manual_seed(0)
    model = _Chain(bands, 16).double().eval()
    x = torch.rand(2, h, w, bands, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out, act = output_and_activation(model, "c1", x)
    (g,) = torch.autograd.grad(out[:, 0].sum(), act)
    a, g = act.detach(), g.detach()
    cam = (g.mean((2, 3), keepdim=True) * a).sum(1)  # h x w already
    truth = cam[..., None].expand(-1, h, w, bands)
    got = torch.as_tensor(tribute.explain(model, x, "grad_cam", target=0, layer="c1", relu=False,
                                          progress=False).values)
    assert truth.abs().max() > 1e-4
    assert torch.allclose(got, truth, rtol=0, atol=1e-12)
