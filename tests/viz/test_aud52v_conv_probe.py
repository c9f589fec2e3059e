"""aud52v: the channel axis of a 3-D image input is read from the tensor the model's first
running ``Conv2d`` receives on the first forward pass (a one-shot pre-hook), not from its
``in_channels`` alone.

A CoordConv stem (a ``(3, 8, 4)`` image plus a coordinate channel into ``Conv2d(4)``) was drawn
3x8 (truth 8x4), a channels-last multispectral ``(16, 16, 8)`` image (permuted into ``Conv2d(8)``,
or space-to-depth into ``Conv2d(32)``) 16x8 (truth 16x16); patches of the latter grouped the
wrong axes (32 players for a truth of 64) and occlusion's default windows were whole columns.
Truth: ``w * x`` of the linear conv model by autograd, summed over the true channel axis (for
plots) or over each window / patch (a linear model's closed form).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.attribution import Layout
from tribute.errors import InputError
from tribute.viz._image import _recorded_axis, _reduce_map


class _Coord(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 1, 1, bias=False)
        torch.nn.init.normal_(self.conv.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        coord = torch.linspace(0, 1, w, dtype=x.dtype).expand(n, 1, h, w)
        return self.conv(torch.cat([x, coord], 1)).sum((1, 2, 3))[:, None]


class _Last(torch.nn.Module):
    def __init__(self, unshuffle: bool) -> None:
        super().__init__()
        self.unshuffle = unshuffle
        self.conv = torch.nn.Conv2d(32 if unshuffle else 8, 1, 1, bias=False)
        torch.nn.init.normal_(self.conv.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.permute(0, 3, 1, 2)
        if self.unshuffle:
            z = torch.nn.functional.pixel_unshuffle(z, 2)
        return self.conv(z).sum((1, 2, 3))[:, None]


_CASES = {"coordconv": (_Coord, (3, 8, 4), 0), "multispectral": (lambda: _Last(False), (16, 16, 8), -1),
          "space_to_depth": (lambda: _Last(True), (16, 16, 8), -1)}


def _wx(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x).sum(), x)
    return (g * x).detach().numpy()[0]


def _model(case: str, dtype: torch.dtype) -> tuple[torch.nn.Module, torch.Tensor, int]:
    make, shape, axis = _CASES[case]
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    return make().to(dtype), x, axis


@pytest.mark.parametrize("built", ["deferred", "at_construction"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", list(_CASES))
def test_maps_are_drawn_over_the_pixels_the_first_convolution_receives(case: str, dtype: torch.dtype,
                                                                      built: str) -> None:
    model, x, axis = _model(case, dtype)
    # per-sample targets: the game runs its reference pass when it is built (not deferred)
    target = None if built == "deferred" else np.zeros(len(x), dtype=np.int64)
    attr = tribute.explain(model, x, method="input_x_gradient", target=target)
    assert not attr.layout.multi_target
    assert _recorded_axis(attr) == axis
    drawn = _reduce_map(np.asarray(attr.values[0]), "m", True, _recorded_axis(attr))
    truth = _wx(model, x[:1]).sum(axis)
    assert drawn.shape == truth.shape
    np.testing.assert_allclose(drawn, truth, atol=1e-5 if dtype == torch.float32 else 1e-12)
    assert Layout.from_json(attr.layout.to_json()).channel_axis == axis  # saved and loaded


@pytest.mark.parametrize("case", ["multispectral", "space_to_depth"])
def test_patches_around_the_wrong_axis_are_refused_after_the_first_pass(case: str) -> None:
    model, x, axis = _model(case, torch.float64)
    model.train()
    with pytest.raises(InputError, match=r"groups=tribute.patches\(4\) took the per-sample shape "
                       r"\(16, 16, 8\) as \(C, H, W\).*Give groups=tribute.patches\(4, channel_axis=-1\)"):
        tribute.explain(model, x, method="feature_ablation", groups=tribute.patches(4), baseline=0.0)
    assert model.training
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
    attr = tribute.explain(model, x[:1], method="feature_ablation", groups=tribute.patches(4, channel_axis=axis),
                           baseline=0.0)
    wx = _wx(model, x[:1])
    ids = (np.arange(16)[:, None] // 4) * 4 + np.arange(16)[None, :] // 4
    truth = [wx[ids == j].sum() for j in range(16)]
    np.testing.assert_allclose(np.asarray(attr.values)[0], truth, atol=1e-12)


@pytest.mark.parametrize("case", list(_CASES))
def test_occlusions_default_windows_cover_the_pixels_the_model_reads(case: str) -> None:
    model, x, axis = _model(case, torch.float64)
    attr = tribute.explain(model, x[:1], method="occlusion", baseline=0.0)
    wx = _wx(model, x[:1])
    truth = np.zeros_like(wx)
    shape = wx.shape
    h, w = (shape[0], shape[1]) if axis == -1 else (shape[1], shape[2])
    ph, pw = -(-h // 8), -(-w // 8)
    for i in range(0, h, ph):
        for j in range(0, w, pw):
            sl = (slice(i, i + ph), slice(j, j + pw)) if axis == -1 else (slice(None), slice(i, i + ph), slice(j, j + pw))
            truth[sl] = wx[sl].sum()
    np.testing.assert_allclose(np.asarray(attr.values)[0], truth, atol=1e-12)


def test_ordinary_cnns_record_what_they_recorded_before() -> None:
    """Negative cases: channels-first (3, 8, 8) and channels-last (8, 8, 3) CNNs (the shape draws
    them right: nothing recorded), a square (4, 4, 4) whose both readings fit (nothing decided),
    and a padded input (no scale fits: the static rule's answer is kept)."""
    conv = torch.nn.Conv2d(3, 1, 1).double()
    cf = torch.nn.Sequential(conv, torch.nn.Flatten(), torch.nn.LazyLinear(1)).double()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    cf(x)
    assert tribute.explain(cf, x, method="saliency").layout.channel_axis is None

    class Perm(torch.nn.Module):
        def __init__(self, c: int, pad: int = 0) -> None:
            super().__init__()
            self.conv, self.pad = torch.nn.Conv2d(c, 1, 1).double(), pad

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            z = torch.nn.functional.pad(z.permute(0, 3, 1, 2), [self.pad] * 4)
            return self.conv(z).sum((1, 2, 3))[:, None]

    assert tribute.explain(Perm(3), x.permute(0, 2, 3, 1), method="saliency").layout.channel_axis is None
    assert tribute.explain(Perm(4), torch.randn(1, 4, 4, 4, dtype=torch.float64),
                           method="saliency").layout.channel_axis is None  # both readings fit
    assert tribute.explain(Perm(4, 1), torch.randn(1, 3, 5, 4, dtype=torch.float64),
                           method="saliency").layout.channel_axis == -1  # padded: the static rule's


@pytest.mark.parametrize("case", ["coordconv", "multispectral"])
def test_the_command_lines_drawing_takes_the_recorded_axis(case: str) -> None:
    from tribute.cli import plot_channel_axis

    model, x, axis = _model(case, torch.float64)
    attr = tribute.explain(model, x, method="input_x_gradient")
    assert plot_channel_axis(attr, model) == axis


def test_patches_larger_than_the_axes_in_channels_chose_name_the_other_layout() -> None:
    """A CoordConv stem's (3, 8, 4) images are read as (H, W, C) by its Conv2d(4)'s in_channels
    before any pass: patches(4) exceeded "the image size (3, 8)" with no word of the layout."""
    model, x, _ = _model("coordconv", torch.float64)
    with pytest.raises(InputError, match=r"exceeds the image size \(3, 8\).*if the images are \(C, H, W\), "
                       r"pass patches\(\.\.\., channel_axis=0\)"):
        tribute.explain(model, x, method="feature_ablation", groups=tribute.patches(4), baseline=0.0)
    with pytest.raises(InputError, match=r"exceeds the image size \(8, 4\)\.$"):
        tribute.explain(model, x, method="feature_ablation", groups=tribute.patches(5, channel_axis=0),
                        baseline=0.0)
