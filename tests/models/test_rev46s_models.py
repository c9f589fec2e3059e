"""rev46s: small46's clash rule in ``channels_last_by_model`` (None where another Conv2d reads the
first axis's count) also hit channels-last patches whose intermediate width equals their height,
and Grad-CAM's dropped guard misread a channels-first image of a model whose input is embedded by
a Linear registered after a mixing Conv2d. Truths: the layout the model is built for, and
Grad-CAM computed by hand from autograd."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError
from tribute.models.layout import channels_last_by_model, looks_channels_last
from tribute_testing import output_and_activation


class _Perm(nn.Module):
    """A channels-last model: (batch, H, W, C) permuted for its convolutions."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.permute(0, 3, 1, 2))


def _bands(c: int, widths: tuple[int, ...]) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    cin = c
    for w in widths:
        layers += [nn.Conv2d(cin, w, 3, padding=1), nn.ReLU()]
        cin = w
    return _Perm(nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 2))).double().eval()


@pytest.mark.parametrize(("shape", "widths"), [
    ((8, 8, 13), (8, 16)), ((8, 8, 13), (8, 8)), ((5, 5, 20), (5, 10)), ((11, 11, 30), (11, 22)),
    ((9, 9, 200), (9, 8)), ((16, 16, 32), (16, 8)), ((32, 32, 64), (32, 8)),
])
def test_channels_last_patches_whose_stem_writes_their_height_stay_channels_last(
        shape: tuple[int, int, int], widths: tuple[int, ...]) -> None:
    model = _bands(shape[-1], widths)
    model(torch.zeros(1, *shape, dtype=torch.float64))  # the model takes (H, W, C)
    assert channels_last_by_model(shape, model) is True
    assert looks_channels_last(shape, model) is True


def test_region_method_refuses_channels_last_multispectral_patches_again() -> None:
    model = _bands(13, (8, 16))
    x = torch.rand(2, 8, 8, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with pytest.raises(InputError, match="channel_axis=-1"):
        tribute.explain(model, x, "xrai", target=0, progress=False)
    attr = tribute.explain(model, x, "saliency", target=0, progress=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        tribute.evaluate(model, x, attr, "road", target=0, progress=False)
    assert [w for w in seen if "channels-last" in str(w.message)]


class _LinEmbed(nn.Module):
    """A mixing Conv2d(d, d) registered before the per-pixel Linear(C, d) that embeds the
    channels-first input: the first registered Conv2d reads d == W channels."""

    def __init__(self, c: int, d: int) -> None:
        super().__init__()
        self.mix = nn.Conv2d(d, d, 3, padding=1, groups=d)
        self.embed = nn.Linear(c, d)
        self.head = nn.Linear(d, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embed(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.head(self.mix(e).mean((2, 3)))


@pytest.mark.parametrize(("c", "h", "w"), [(3, 8, 8), (13, 6, 8), (1, 6, 6)])
def test_grad_cam_reads_a_channels_first_image_of_a_linear_embedding_model(c: int, h: int, w: int) -> None:
    torch.manual_seed(2)
    model = _LinEmbed(c, w).double().eval()
    x = torch.rand(2, c, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    got = np.asarray(tribute.explain(model, x, "grad_cam", target=1, layer="mix", relu=False,
                                     progress=False).values)
    out, act = output_and_activation(model, "mix", x)
    grad, = torch.autograd.grad(out[:, 1].sum(), act)
    cam = (grad.mean((2, 3), keepdim=True) * act).sum(1)  # (n, h, w): the layer keeps h x w
    truth = cam[:, None].expand(-1, c, -1, -1).detach().numpy()
    assert got.shape == truth.shape
    np.testing.assert_allclose(got, truth, rtol=1e-9, atol=1e-12)
