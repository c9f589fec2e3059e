"""Audit aud52c (stop 52): concepts against truths computed outside tribute.

A layer whose producer's positions are reshaped (timm's ``SwinTransformerBlock``: ``x.reshape(B,
-1, C)``, ``x + mlp(norm2(x))``, ``x.reshape(B, H, W, C)``) has an output of another shape than its
last Linear's, so the channel count that Linear set was not read, and the ``batch x h x w x C``
output was taken in PyTorch's image layout: TCAV's ``spatial="mean"`` averaged over the height
(a CAV of length h = 4 for C = 6 channels, score 1.000 where the channel means give 0.000), CRAFT
factorised the height axis (concepts of length 4), Grad-CAM weighted rows as channels (a map sum
0.438 for 0.616), silently. Truth: the channel means by hand (mean over every axis but the batch
and the last), and the same calls with ``channel_axis=-1``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError
from tribute.methods.tcav import _activations

H, W, C = 4, 5, 6


def _init(m: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)


class _Mlp(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(c, 8)
        self.fc2 = nn.Linear(8, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class _SwinBlock(nn.Module):
    """timm's SwinTransformerBlock layout (window attention left out: a Linear in its place)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm1, self.attn, self.norm2, self.mlp = nn.LayerNorm(c), nn.Linear(c, c), nn.LayerNorm(c), _Mlp(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        x = x + self.attn(self.norm1(x))
        x = x.reshape(b, -1, c)
        x = x + self.mlp(self.norm2(x))
        return x.reshape(b, h, w, c)


class _Swin(nn.Module):
    def __init__(self, c: int = C) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, c, 1)
        self.block = _SwinBlock(c)
        self.act = nn.ReLU()
        self.head = nn.Linear(c, 3)
        self.double()
        _init(self, 52)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.block(self.embed(x).permute(0, 2, 3, 1))).mean((1, 2)))


def _sets() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    x = torch.rand(12, 3, H, W, generator=g, dtype=torch.float64)
    concept = torch.rand(10, 3, H, W, generator=g, dtype=torch.float64) + 0.3
    random = torch.rand(20, 3, H, W, generator=g, dtype=torch.float64)
    return x, concept, random


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("layer", ["block", "act"])
def test_tcav_mean_reads_a_reshaped_swin_block_channels_last(layer: str) -> None:
    model = _Swin()
    x, concept, random = _sets()
    mod = model.get_submodule(layer)
    acts = _activations(model, mod, concept, 4, "mean", None, layer)
    with torch.no_grad():
        out = model.block(model.embed(concept).permute(0, 2, 3, 1))
        truth = (out if layer == "block" else torch.relu(out)).mean((1, 2)).numpy()
    assert acts.shape == (10, C)  # before: (10, H), the means of the rows
    np.testing.assert_allclose(acts, truth, rtol=1e-13, atol=1e-14)
    auto = tribute.tcav(model, x, concept, random, layer=layer, target=1, spatial="mean", n_random=3,
                        test="welch", n_permutations=0)
    given = tribute.tcav(model, x, concept, random, layer=layer, target=1, spatial="mean", channel_axis=-1,
                         n_random=3, test="welch", n_permutations=0)
    assert auto.cav.shape == (C,)
    assert np.array_equal(auto.cav, given.cav) and np.array_equal(auto.scores, given.scores)
    assert _no_hooks(model)


def test_craft_and_grad_cam_read_a_reshaped_swin_block_channels_last() -> None:
    model = _Swin()
    x, _, _ = _sets()
    kw = dict(layer="act", target=1, n_concepts=2, n_crops=4, n_designs=8, crop_size=3)
    auto = tribute.craft(model, x[:2], **kw)  # type: ignore[arg-type]
    given = tribute.craft(model, x[:2], channel_axis=-1, **kw)  # type: ignore[arg-type]
    assert auto.concepts.shape == (2, C)  # before: (2, H), the height factorised
    np.testing.assert_array_equal(auto.importances, given.importances)
    np.testing.assert_array_equal(auto.concept_maps, given.concept_maps)
    cam = tribute.explain(model, x[:2], method="grad_cam", target=1, layer="block")
    cam_given = tribute.explain(model, x[:2], method="grad_cam", target=1, layer="block", channel_axis=-1)
    np.testing.assert_allclose(np.asarray(cam.values), np.asarray(cam_given.values), rtol=1e-12, atol=1e-15)
    assert _no_hooks(model)


class _FlatTokens(nn.Module):
    """A convolution's map flattened to batch x C x positions (its channels still on axis 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, C, 1)
        self.flat = nn.Flatten(2)
        self.head = nn.Linear(C, 3)
        self.double()
        _init(self, 53)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.flat(self.conv(x))).mean(2))


def test_a_flattened_convolution_map_is_read_on_axis_1() -> None:
    # before: refused ("cannot tell which axis"), though the convolution's 6 channels sit on axis 1 only
    model = _FlatTokens()
    _, concept, _ = _sets()
    acts = _activations(model, model.flat, concept, 4, "mean", None, "flat")
    with torch.no_grad():
        truth = model.conv(concept).mean((2, 3)).numpy()
    np.testing.assert_allclose(acts, truth, rtol=1e-13, atol=1e-14)


class _Shuffle(nn.Module):
    """A PixelShuffle whose output shape (4, 8, 16) is a permutation of its input's (16, 4, 8):
    the 16 on the last axis is the width, not the convolution's 16 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 1)
        self.shuffle = nn.PixelShuffle(2)
        self.head = nn.Linear(4, 3)
        self.double()
        _init(self, 54)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.shuffle(self.conv(x))).mean((2, 3)))


def test_a_pixel_shuffle_and_a_sequence_reshaped_to_a_map_stay_channels_first() -> None:
    model = _Shuffle()
    imgs = torch.rand(3, 3, 4, 8, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    acts = _activations(model, model.shuffle, imgs, 2, "mean", None, "shuffle")
    with torch.no_grad():
        truth = model.shuffle(model.conv(imgs)).mean((2, 3)).numpy()
    np.testing.assert_allclose(acts, truth, rtol=1e-13, atol=1e-14)


class _Buffers(nn.Module):
    """Fixed float64 convolution and head weights held as buffers (no parameters); ``params=True``:
    the same weights as parameters (the twin the buffers-only model must agree with)."""

    def __init__(self, params: bool = False) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(9)
        w = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)
        h = torch.randn(3, 4, generator=g, dtype=torch.float64)
        if params:
            self.w, self.h = nn.Parameter(w), nn.Parameter(h)
        else:
            self.register_buffer("w", w)
            self.register_buffer("h", h)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.act(nn.functional.conv2d(x, self.w, padding=1)).mean((2, 3)) @ self.h.T
        return out


def test_a_model_with_float64_buffers_only_gets_float64_examples() -> None:
    # before: CRAFT cast the float64 images to float32 (no parameter to read the dtype from) and
    # refused the model as one that "fails on the crops"; TCAV did the same to numpy examples
    model, twin = _Buffers(), _Buffers(params=True)
    g = torch.Generator().manual_seed(10)
    imgs = torch.rand(2, 3, 6, 6, generator=g, dtype=torch.float64)
    kw = dict(layer="act", target=1, n_concepts=2, n_crops=3, n_designs=8)
    got = tribute.craft(model, imgs, **kw)  # type: ignore[arg-type]
    truth = tribute.craft(twin, imgs, **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got.importances, truth.importances)
    np.testing.assert_array_equal(got.concepts, truth.concepts)
    x = torch.rand(6, 3, 6, 6, generator=g, dtype=torch.float64)
    concept, random = x + 0.3, torch.rand(8, 3, 6, 6, generator=g, dtype=torch.float64)
    tkw = dict(layer="act", target=1, n_random=3, test="welch", n_permutations=0)
    from_numpy = tribute.tcav(model, x.numpy(), concept.numpy(), random.numpy(), **tkw)  # type: ignore[arg-type]
    from_tensors = tribute.tcav(twin, x, concept, random, **tkw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(from_numpy.scores, from_tensors.scores)
    np.testing.assert_array_equal(from_numpy.cav, from_tensors.cav)


def test_tcav_casts_float_tensors_to_the_models_dtype() -> None:
    # before: float32 tensors for a float64 model were refused ("mat1 and mat2 must have the same
    # dtype"), where numpy arrays, tribute.explain and CRAFT cast them; truth: the float64 tensors
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    g = torch.Generator().manual_seed(4)
    x, concept, random = (torch.randn(n, 5, generator=g, dtype=torch.float64) for n in (8, 6, 12))
    kw = dict(layer="1", target=2, n_random=3, test="welch", n_permutations=0)
    got = tribute.tcav(model, x.float(), concept.float(), random.float(), **kw)  # type: ignore[arg-type]
    truth = tribute.tcav(model, x.float().double(), concept.float().double(), random.float().double(),
                         **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got.scores, truth.scores)
    np.testing.assert_array_equal(got.sensitivities, truth.sensitivities)
    big = random.clone()
    big[0, 0] = 1e300
    with pytest.raises(InputError, match=r"outside the range of the model's torch\.float32"):
        tribute.tcav(model.float(), x, concept, big, **kw)  # type: ignore[arg-type]
