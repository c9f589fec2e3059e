"""Stop 41 (lead): TCAV's ``spatial="mean"`` reads a 4-D channels-last output (a Swin-style stage,
``batch x h x w x channels``) and a LayerNorm applied channels-first (timm's ``LayerNorm2d``) on
the axis that holds the channels. Before, any 4-D output of a module other than a convolution was
taken as ``batch x channels x h x w`` and a LayerNorm's output as channels-last, silently: the
"channel means" were means over the wrong axis.

Truth: the channel means computed by hand from the layer's output (mean over every axis but the
batch and the channel axis)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tribute.errors import InputError
from tribute.methods.tcav import _activations, tcav

H, W, C = 4, 5, 6


def _init(m: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))


class _Stage(nn.Module):
    """A Swin-style stage: ``batch x h x w x 3`` -> per-pixel Linear -> GELU -> LayerNorm, kept
    channels-last (``batch x h x w x C``)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, C, dtype=torch.float64)
        self.norm = nn.LayerNorm(C, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(nn.functional.gelu(self.proj(x.permute(0, 2, 3, 1))))


class _Swin(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stage = _Stage()
        self.head = nn.Linear(C, 2, dtype=torch.float64)
        _init(self, 41)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stage(x).mean((1, 2)))


class _LayerNorm2d(nn.LayerNorm):
    """timm's LayerNorm2d: a LayerNorm over the channels of ``batch x channels x h x w``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _ConvNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, C, 1, dtype=torch.float64)
        self.norm = _LayerNorm2d(C, dtype=torch.float64)
        self.head = nn.Linear(C, 2, dtype=torch.float64)
        _init(self, 42)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.conv(x)).mean((2, 3)))


def _sets(h: int = H, w: int = W) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(10, 3, h, w, generator=g, dtype=torch.float64)
    shift = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64).view(1, 3, 1, 1)
    concept = torch.randn(12, 3, h, w, generator=g, dtype=torch.float64) + shift
    random = torch.randn(24, 3, h, w, generator=g, dtype=torch.float64)
    return x, concept, random


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_a_channels_last_stage_is_averaged_over_its_pixels() -> None:
    model = _Swin()
    x, concept, random = _sets()
    acts = _activations(model, model.stage, concept, 5, "mean", None, "stage")
    with torch.no_grad():
        truth = model.stage(concept).mean((1, 2)).numpy()  # batch x h x w x C: the channel means
    assert acts.shape == (12, C)  # before: (12, 4), the means of the 4 rows over the columns and channels
    np.testing.assert_allclose(acts, truth, rtol=1e-13, atol=1e-14)
    auto = tcav(model, x, concept, random, layer="stage", target=1, spatial="mean", n_permutations=10)
    given = tcav(model, x, concept, random, layer="stage", target=1, spatial="mean", channel_axis=-1,
                 n_permutations=10)
    assert auto.cav.shape == (C,)
    assert np.array_equal(auto.cav, given.cav) and np.array_equal(auto.scores, given.scores)
    assert _no_hooks(model)


def test_a_layernorm_applied_channels_first_is_read_on_axis_1() -> None:
    model = _ConvNorm()
    _, concept, _ = _sets()
    acts = _activations(model, model.norm, concept, 5, "mean", None, "norm")
    with torch.no_grad():
        truth = model.norm(model.conv(concept)).mean((2, 3)).numpy()
    assert acts.shape == (12, C)  # before: (12, W), a LayerNorm taken as channels-last
    np.testing.assert_allclose(acts, truth, rtol=1e-13, atol=1e-14)


def test_an_activation_after_a_convolution_stays_channels_first() -> None:
    model = nn.Sequential(nn.Conv2d(3, C, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(C, 2)).double()
    _init(model, 43)
    _, concept, _ = _sets()
    acts = _activations(model, model[1], concept, 5, "mean", None, "1")
    with torch.no_grad():
        truth = torch.relu(model[0](concept)).mean((2, 3)).numpy()
    np.testing.assert_allclose(acts, truth, rtol=1e-13, atol=1e-14)


def test_equal_sizes_are_told_by_the_module_that_set_the_channels() -> None:
    # the stage's output is batch x 6 x 6 x 6 (h = w = channels): its LayerNorm tells channels-last;
    # a ReLU after a 16-channel convolution on 16 x 16 images stays channels-first
    model = _Swin()
    _, concept, _ = _sets(h=C, w=C)
    acts = _activations(model, model.stage, concept, 5, "mean", None, "stage")
    with torch.no_grad():
        truth = model.stage(concept).mean((1, 2)).numpy()
    np.testing.assert_allclose(acts, truth, rtol=1e-13, atol=1e-14)
    conv = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU()).double()
    _init(conv, 44)
    imgs = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    with torch.no_grad():
        truth = torch.relu(conv[0](imgs)).mean((2, 3)).numpy()
    np.testing.assert_allclose(_activations(conv, conv[1], imgs, 2, "mean", None, "1"), truth, rtol=1e-13,
                               atol=1e-14)


class _Raw(nn.Module):
    """``batch x T x 3`` times a weight matrix (no Linear module) -> ReLU: nothing sets the channels."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, C, generator=torch.Generator().manual_seed(45), dtype=torch.float64))
        self.act = nn.ReLU()
        self.head = nn.Linear(C, 2, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(x @ self.w).mean(1))


def test_a_layout_nothing_tells_is_refused_and_hooks_are_removed() -> None:
    model = _Raw()
    g = torch.Generator().manual_seed(9)
    x, concept, random = (torch.randn(n, 5, 3, generator=g, dtype=torch.float64) for n in (6, 8, 16))
    with pytest.raises(InputError, match=r"layer 'act'.*\(8, 5, 6\).*channel_axis=-1"):
        tcav(model, x, concept + 1.0, random, layer="act", target=1, spatial="mean", n_permutations=5)
    assert _no_hooks(model)
    got = tcav(model, x, concept + 1.0, random, layer="act", target=1, spatial="mean", channel_axis=-1,
               n_permutations=5)
    assert got.cav.shape == (C,)
    assert _no_hooks(model)
