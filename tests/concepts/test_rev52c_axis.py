"""Review rev52c (stop 52) of aud52c: the channel axis of a layer whose output reshapes or permutes
the last producer's output, where the shape cannot tell it.

A Swin block's ``batch x tokens x C`` reshaped to ``batch x h x w x C`` with h == C has the count on
both end axes, and a convolution's map permuted to ``batch x h x w x C`` has it on the last axis
only, where a PixelShuffle's width can equal it by chance: PyTorch's image layout (axis 1) was read,
silently (Swin C == h: TCAV score 0.9 for 1.0, CRAFT importances [0.783, 0.672] for [1.319, 0.016];
conv -> permute, C == h: score 1.0 for 0.0; C != h: a CAV of length h = 4 for C = 6). Such readings
are refused naming both; truth: the channel means by hand (mean over every axis but the batch and
the channels), equal to the same call with ``channel_axis`` given.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError
from tribute.methods.tcav import _activations


def _init(m: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)


class _SwinBlock(nn.Module):
    """timm's SwinTransformerBlock layout: batch x h x w x C in, its MLP on batch x tokens x C."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm, self.fc = nn.LayerNorm(c), nn.Linear(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        t = x.reshape(b, -1, c)
        return torch.relu(t + self.fc(self.norm(t))).reshape(b, h, w, c)


class _Permuted(nn.Module):
    """A convolution's map permuted to batch x h x w x C (torchvision Swin's Permute, no norm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x.permute(0, 2, 3, 1))


class _Net(nn.Module):
    def __init__(self, kind: str, c: int) -> None:
        super().__init__()
        self.kind = kind
        self.embed = nn.Conv2d(3, c, 1)
        self.fc = nn.Linear(c, c)
        self.body: nn.Module = {"swin": _SwinBlock(c), "permute": _Permuted()}.get(kind, nn.Identity())
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.ReLU()
        self.head = nn.Linear(c // 4 if kind == "shuffle" else c, 3)
        self.double()
        _init(self, 61)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.embed(x)
        if self.kind == "swin":
            return self.head(self.body(a.permute(0, 2, 3, 1)).mean((1, 2)))
        if self.kind == "permute":
            return self.head(self.body(a).mean((1, 2)))
        if self.kind == "shuffle":  # conv 16 -> PixelShuffle(2) -> ReLU: batch x 4 x 2h x 2w
            return self.head(self.act(self.shuffle(a)).mean((2, 3)))
        # "tomap": tokens through a Linear, reshaped back to batch x C x h x w
        b, c, h, w = a.shape
        t = self.fc(a.flatten(2).transpose(1, 2))
        return self.head(self.act(t.transpose(1, 2).reshape(b, c, h, w)).mean((2, 3)))


def _imgs(h: int, w: int, n: int = 6) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(62), dtype=torch.float64)


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# (kind, C, h, w, layer, the axis holding the channels, what the refusal names)
_UNDECIDED = [
    ("swin", 4, 4, 5, "body", -1, "both axis 1 and the last axis"),  # Swin block, C == h
    ("swin", 4, 4, 4, "body", -1, "both axis 1 and the last axis"),  # C == h == w (swin_tiny at 384: 96)
    ("permute", 4, 4, 5, "body", -1, "both axis 1 and the last axis"),  # conv -> permute, C == h
    ("permute", 6, 4, 5, "body", -1, "the last axis only"),  # conv -> permute
    ("tomap", 5, 4, 5, "act", 1, "both axis 1 and the last axis"),  # tokens -> map, w == C
]


@pytest.mark.parametrize(("kind", "c", "h", "w", "layer", "axis", "says"), _UNDECIDED)
def test_a_reshaped_or_permuted_output_the_shape_cannot_tell_is_refused(kind: str, c: int, h: int, w: int,
                                                                       layer: str, axis: int, says: str) -> None:
    # before: read on axis 1 (PyTorch's image layout), silently, where the channels sit on the last axis
    model = _Net(kind, c)
    x = _imgs(h, w)
    mod = dict(model.named_modules())[layer]
    with pytest.raises(InputError, match=rf"cannot tell which axis.*{says}.*channel_axis=-1.*channel_axis=1"):
        _activations(model, mod, x, 4, "mean", None, layer)
    assert _no_hooks(model) and model.training  # hooks removed, train flag restored after the refusal
    acts = _activations(model, mod, x, 4, "mean", axis, layer)
    with torch.no_grad():
        out: dict[str, torch.Tensor] = {}
        mod.register_forward_hook(lambda _m, _i, o: out.__setitem__("o", o))
        model(x)
        o = out["o"].movedim(axis, 1)
        truth = o.reshape(o.shape[0], o.shape[1], -1).mean(2).numpy()
    np.testing.assert_allclose(acts, truth, rtol=1e-13, atol=1e-14)


def test_tcav_craft_and_grad_cam_refuse_a_swin_block_with_c_equal_to_h() -> None:
    model = _Net("swin", 4)
    x = _imgs(4, 5, 8)
    kw: dict[str, Any] = dict(layer="body", target=1)
    with pytest.raises(InputError, match=r"tcav: cannot tell which axis .*\(shape \(\d+, 4, 5, 4\)"):
        tribute.tcav(model, x, x + 0.3, x.flip(0), spatial="mean", n_random=2, test="welch", n_permutations=0,
                     **kw)
    with pytest.raises(InputError, match=r"craft: cannot tell which axis"):
        tribute.craft(model, x[:2], n_concepts=2, n_crops=3, n_designs=8, crop_size=3, **kw)
    with pytest.raises(InputError, match=r"grad_cam: cannot tell which axis"):
        tribute.explain(model, x[:2], method="grad_cam", **kw)
    assert _no_hooks(model) and model.training
    # told, each runs: the map of grad_cam has the image's positions (h x w = 4 x 5)
    a = tribute.explain(model, x[:2], method="grad_cam", channel_axis=-1, **kw)
    assert np.asarray(a.values).shape[-2:] == (4, 5)


@pytest.mark.parametrize(("kind", "c", "h", "w", "layer"), [
    ("swin", 5, 4, 5, "body"),  # C == w only: the reshape keeps it on the last axis (aud52c)
    ("swin", 6, 4, 5, "body"),
    ("tomap", 6, 4, 5, "act"),  # tokens -> batch x C x h x w, w != C: on axis 1 only
    ("shuffle", 16, 4, 8, "act"),  # ReLU after PixelShuffle: (4, 8, 16), the 16 is the width
    ("shuffle", 16, 4, 8, "shuffle"),
])
def test_readings_the_shape_tells_stay(kind: str, c: int, h: int, w: int, layer: str) -> None:
    model = _Net(kind, c)
    x = _imgs(h, w)
    mod = dict(model.named_modules())[layer]
    acts = _activations(model, mod, x, 4, "mean", None, layer)
    with torch.no_grad():
        out: dict[str, torch.Tensor] = {}
        mod.register_forward_hook(lambda _m, _i, o: out.__setitem__("o", o))
        model(x)
        o = out["o"] if kind in ("tomap", "shuffle") else out["o"].movedim(-1, 1)
        truth = o.reshape(o.shape[0], o.shape[1], -1).mean(2).numpy()
    np.testing.assert_allclose(acts, truth, rtol=1e-13, atol=1e-14)


def test_arrays_and_images_past_the_models_dtype_are_refused_naming_it() -> None:
    # before: a finite float64 array with 1e300 for a float32 model became inf in the cast and TCAV
    # said it "holds NaN or inf values"; CRAFT's images said "nmf: a holds NaN or inf values"
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    g = torch.Generator().manual_seed(4)
    x, concept, random = (torch.randn(n, 5, generator=g, dtype=torch.float64).numpy() for n in (8, 6, 12))
    kw: dict[str, Any] = dict(layer="1", target=2, n_random=3, test="welch", n_permutations=0)
    big = random.copy()
    big[0, 0] = 1e300
    with pytest.raises(InputError, match=r"tcav: random holds values outside the range of the model's "
                                         r"torch\.float32 \(largest \|value\| 1e\+300 in float64\)"):
        tribute.tcav(model, x, concept, big, **kw)
    nan = random.copy()
    nan[0, 0] = np.nan  # not finite to start with: the NaN message stays
    with pytest.raises(InputError, match=r"random holds NaN or inf values \(1 of 12"):
        tribute.tcav(model, x, concept, nan, **kw)
    got = tribute.tcav(model, x, concept, random, **kw)  # in range: as float32 tensors
    truth = tribute.tcav(model, *(torch.from_numpy(a).float() for a in (x, concept, random)), **kw)
    np.testing.assert_array_equal(got.scores, truth.scores)
    conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3))
    imgs = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64)
    imgs[0, 0, 0, 0] = 1e300
    with pytest.raises(InputError, match=r"craft: images hold values outside the range of the model's torch\.float32"):
        tribute.craft(conv, imgs, layer="1", target=1, n_concepts=2, n_crops=3, n_designs=8)
