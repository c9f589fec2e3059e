"""rev51v: ``Layout.channel_axis`` is recorded only where a one-input map's shape reads two ways.

aud51v recorded the channel axis the model's first ``Conv2d`` reads for every 3-D input, and
plots drew by it even where the shape reads one way. That convolution may read a tensor the
model made from its input, its ``in_channels`` equal to an image axis by chance: a space-to-depth
stem (``PixelUnshuffle(4)`` -> ``Conv2d(16)``) on gray ``(1, 16, 16)`` images and CoordConv
(``cat(x, 2 coordinate channels)`` -> ``Conv2d(5)``) on ``(3, 8, 5)`` images recorded ``-1`` and
were drawn 1x16 and 3x8 (truth 16x16 and 8x5, drawn so before). With two inputs, a ``(4, 4, 3)``
table read by a ``Linear`` recorded the image convolution's ``-1`` and was drawn as a 4x4 image
where it was refused before. Truth: input x gradient summed over the input's real channel axis
(axis 0: both models read ``C x H x W``), drawn by ``viz.image(..., channel_axis=0)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute import viz
from tribute.cli import plot_channel_axis, render_views
from tribute_testing import gallery_maps


class _Unshuffle(torch.nn.Module):
    """A space-to-depth stem: ``(C, H, W)`` -> ``PixelUnshuffle(f)`` -> ``Conv2d(C f^2)``."""

    def __init__(self, c: int, f: int, hw: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.u = torch.nn.PixelUnshuffle(f)
        self.conv = torch.nn.Conv2d(c * f * f, 2, 1)
        self.lin = torch.nn.Linear(2 * (hw // f) ** 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.tanh(self.conv(self.u(x))).flatten(1))


class _Coord(torch.nn.Module):
    """CoordConv: ``(C, H, W)`` and two coordinate channels -> ``Conv2d(C + 2)``."""

    def __init__(self, c: int, h: int, w: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(c + 2, 2, 1)
        self.lin = torch.nn.Linear(2 * h * w, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        yy = torch.linspace(0, 1, h, dtype=x.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
        xx = torch.linspace(0, 1, w, dtype=x.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
        return self.lin(torch.tanh(self.conv(torch.cat([x, yy, xx], 1))).flatten(1))


class _Two(torch.nn.Module):
    """A ``(4, 4, 3)`` table read by a ``Linear`` and a ``(3, 8, 8)`` image read by a ``Conv2d(3)``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 2, 1)
        self.lin = torch.nn.Linear(2 * 64 + 48, 2)

    def forward(self, aux: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.cat([self.conv(img).flatten(1), aux.flatten(1)], 1))


def _drawn(fig: Any) -> np.ndarray:
    return np.asarray(fig.axes[0].images[-1].get_array(), dtype=np.float64)


_CASES = [("unshuffle", (1, 16, 16)), ("coordconv", (3, 8, 5))]


def _model(kind: str, shape: tuple[int, int, int]) -> torch.nn.Module:
    m = _Unshuffle(shape[0], 4, shape[1]) if kind == "unshuffle" else _Coord(*shape)
    return m.double().eval()


@pytest.mark.parametrize("kind, shape", _CASES)
def test_a_shape_that_reads_one_way_is_drawn_by_it_whatever_the_first_conv_reads(
        kind: str, shape: tuple[int, int, int]) -> None:
    model = _model(kind, shape)
    x = torch.randn(1, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    attr = tribute.explain(model, x, "input_x_gradient", target=0, progress=False)
    assert attr.layout.channel_axis is None
    truth = _drawn(viz.image(attr.values[0].detach().numpy(), channel_axis=0))
    assert truth.shape == shape[1:]
    np.testing.assert_array_equal(_drawn(attr.plot()), truth)
    # the CLI draws by the same rule
    assert plot_channel_axis(attr, model) is None
    assert render_views(attr)[0] == render_views(attr, channel_axis=0)[0]


def test_a_second_inputs_convolution_says_nothing_of_the_first_input() -> None:
    model = _Two().double().eval()
    g = torch.Generator().manual_seed(2)
    aux = torch.randn(1, 4, 4, 3, dtype=torch.float64, generator=g)
    img = torch.randn(1, 3, 8, 8, dtype=torch.float64, generator=g)
    attr = tribute.explain(model, (aux, img), "input_x_gradient", target=0, progress=False)
    assert attr.layout.channel_axis is None
    with pytest.raises(ValueError, match="reads two ways"):
        attr.plot()


def test_the_bench_gallery_draws_a_space_to_depth_models_gray_images_by_their_shape(
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model("unshuffle", (1, 16, 16))
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    seen, (gallery, attr) = gallery_maps(model, x, monkeypatch)
    assert gallery.get("figure") is not None
    truth = attr.values.detach().numpy().sum(1)
    scale = np.percentile(np.abs(truth.reshape(2, -1)), 99.5, axis=1).reshape(2, 1, 1)
    np.testing.assert_allclose(seen["input_x_gradient"], np.clip(truth / scale, -1, 1), atol=1e-12)
