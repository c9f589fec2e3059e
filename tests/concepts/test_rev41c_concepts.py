"""Stop 41 review (rev41c) of TCAV ``spatial="mean"``'s channel axis told by a channel count.

The count of the last convolution / Linear / norm that ran before a layer does not tell the layer's
channels where something changed them after it: a concatenation (a DenseNet block, an Inception
block), a functional convolution, a PixelShuffle, a squeeze-excitation Linear on pooled vectors, a
permute back (ConvNeXt's block, an Embedding transposed for a Conv1d). There the count matched the
WIDTH axis and the "channel means" were means over the channels and rows, silently (main read
these layers right). A count left from the previous batch's head told a layer that runs before any
channel-setting module. Truth: the channel means (and the gradient summed over positions) by hand.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tribute.methods.tcav import _activations, _gradients

DT = torch.float64
M = TypeVar("M", bound=nn.Module)


def _init(m: M, seed: int) -> M:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT) * 0.5)
    return m.eval()


def _x(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


class _DenseBlock(nn.Module):
    """torchvision's _DenseBlock: every layer's ``growth`` new channels concatenated."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.BatchNorm2d(cin + i * growth, dtype=DT), nn.ReLU(),
                          nn.Conv2d(cin + i * growth, growth, 3, padding=1, dtype=DT)) for i in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return torch.cat(feats, 1)


class _Inception(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(3, 6, 1, dtype=DT)
        self.b2 = nn.Conv2d(3, 5, 3, padding=1, dtype=DT)
        self.b3 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(3, 4, 1, dtype=DT), nn.BatchNorm2d(4, dtype=DT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x)], 1)


class _Net(nn.Module):
    """stem -> ``body`` (the layer) -> channel means -> head."""

    def __init__(self, stem: nn.Module, body: nn.Module, channels: int) -> None:
        super().__init__()
        self.stem, self.body, self.head = stem, body, nn.Linear(channels, 3, dtype=DT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.stem(x)).mean((2, 3)))


def _check(model: nn.Module, layer: nn.Module, x: torch.Tensor, batch_size: int = 64) -> None:
    """Activations = the channel means of the layer's output (batch x channels x h x w); gradients =
    the gradient of logit 1 summed over positions."""
    seen: dict[str, torch.Tensor] = {}

    def keep(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
        seen["out"] = out

    with torch.no_grad():
        h = layer.register_forward_hook(keep)
        model(x)
        h.remove()
    truth = seen["out"].mean((2, 3)).numpy()
    acts = _activations(model, layer, x, batch_size, "mean", None, "body")
    assert acts.shape == truth.shape  # before: (batch, width): the count matched the width
    np.testing.assert_allclose(acts, truth, rtol=1e-12, atol=1e-14)
    leaf: dict[str, torch.Tensor] = {}

    def grab(_m: nn.Module, _i: object, out: torch.Tensor) -> torch.Tensor:
        leaf["a"] = out.detach().clone().requires_grad_(True)
        return leaf["a"]

    h = layer.register_forward_hook(grab)
    logits = model(x)
    h.remove()
    (g,) = torch.autograd.grad(logits[:, 1].sum(), leaf["a"])
    grads = _gradients(model, layer, x, 1, batch_size, "mean", None, "body")
    np.testing.assert_allclose(grads, g.sum((2, 3)).numpy(), rtol=1e-12, atol=1e-14)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_a_concatenating_block_is_read_on_axis_1_not_on_the_last_branch_count() -> None:
    # DenseNet block: 8 + 2 x 4 = 16 channels on 4 x 4; its last convolution sets 4 (= the width)
    dense = _init(_Net(nn.Conv2d(3, 8, 1, dtype=DT), _DenseBlock(8, 4), 16), 1)
    _check(dense, dense.body, _x(5, 3, 4, 4))
    # Inception block: 6 + 5 + 4 = 15 channels on 3 x 4; its last branch sets 4 (= the width)
    inc = _init(_Net(nn.Identity(), _Inception(), 15), 2)
    _check(inc, inc.body, _x(5, 3, 3, 4))


class _FunctionalConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(7, 5, 1, 1, dtype=DT))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(F.conv2d(x, self.w))


class _SqueezeExcite(nn.Module):
    """A squeeze-excitation with Linear layers on the pooled vector, then a ReLU (the layer)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(c, 2, dtype=DT), nn.Linear(2, c, dtype=DT), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3))))))
        return self.act(x * w[:, :, None, None])


def test_channels_changed_after_the_last_counted_module_are_read_on_axis_1() -> None:
    # F.conv2d 5 -> 7 channels on 4 x 5 images: the stem's 5 matched the width
    fconv = _FunctionalConv()
    fc = _init(_Net(nn.Conv2d(3, 5, 1, dtype=DT), fconv, 7), 3)
    _check(fc, fconv.act, _x(5, 3, 4, 5))
    # PixelShuffle(2) after a 12-channel convolution: 3 x 10 x 12, the 12 matched the width
    ps = _init(_Net(nn.Conv2d(3, 12, 1, dtype=DT), nn.PixelShuffle(2), 3), 4)
    _check(ps, ps.body, _x(5, 3, 5, 6))
    # a squeeze-excitation's Linear (6 channels, channels-last) before a 6 x 5 x 6 map
    excite = _SqueezeExcite(6)
    se = _init(_Net(nn.Conv2d(3, 6, 3, padding=1, dtype=DT), excite, 6), 5)
    _check(se, excite.act, _x(5, 3, 5, 6))


class _Permute(nn.Module):
    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


class _CNBlock(nn.Module):
    """torchvision's CNBlock: depthwise conv, permute, LayerNorm, Linear, GELU, Linear, permute back,
    layer scale, ``result += input``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, groups=dim, dtype=DT), _Permute(0, 2, 3, 1),
                                   nn.LayerNorm(dim, dtype=DT), nn.Linear(dim, 4 * dim, dtype=DT), nn.GELU(),
                                   nn.Linear(4 * dim, dim, dtype=DT), _Permute(0, 3, 1, 2))
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1, dtype=DT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.layer_scale * self.block(x)
        result += x
        return result


def test_a_convnext_block_with_the_width_equal_to_the_channels_is_read_on_axis_1() -> None:
    # ConvNeXt-T's first stage at 384 x 384 is batch x 96 x 96 x 96: here 8 x 8 x 8 and 8 x 6 x 8
    cn = _init(_Net(nn.Conv2d(3, 8, 1, dtype=DT), _CNBlock(8), 8), 6)
    _check(cn, cn.body, _x(4, 3, 8, 8))
    _check(cn, cn.body, _x(4, 3, 6, 8))


class _TokensConv(nn.Module):
    """Embedding -> transpose -> Dropout (the layer: batch x dim x tokens) -> Conv1d."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.drop = nn.Embedding(20, 6, dtype=DT), nn.Dropout(0.1)
        self.conv, self.head = nn.Conv1d(6, 4, 1, dtype=DT), nn.Linear(4, 2, dtype=DT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(self.drop(self.emb(x).transpose(1, 2))).mean(2))


def test_an_embedding_transposed_for_a_conv1d_is_read_on_axis_1() -> None:
    model = _init(_TokensConv(), 7)
    tokens = torch.randint(0, 20, (5, 6), generator=torch.Generator().manual_seed(0))  # 6 tokens = 6 dims
    with torch.no_grad():
        truth = model.emb(tokens).transpose(1, 2).mean(2).numpy()
    np.testing.assert_allclose(_activations(model, model.drop, tokens, 64, "mean", None, "drop"), truth,
                               rtol=1e-12, atol=1e-14)


def test_a_count_from_the_previous_batch_does_not_tell_the_next_one() -> None:
    # the layer runs before any counted module: batch 1 reads it as images (axis 1), batch 2 took the
    # previous batch's head (4 classes) and read 4 columns
    model = _init(_Net(nn.Identity(), nn.Conv2d(4, 3, 1, dtype=DT), 3), 8)
    model.head = _init(nn.Linear(3, 4, dtype=DT), 9)
    x = _x(6, 4, 3, 4)
    truth = x.mean((2, 3)).numpy()
    for batch_size in (6, 3, 2):
        np.testing.assert_allclose(_activations(model, model.stem, x, batch_size, "mean", None, "stem"), truth,
                                   rtol=1e-12, atol=1e-14)


def test_hooks_are_removed_after_a_failing_forward_pass() -> None:
    class _Fails(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.act, self.head = nn.Conv2d(3, 4, 1, dtype=DT), nn.ReLU(), nn.Linear(4, 2, dtype=DT)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.act(self.conv(x))
            if x.shape[0] > 2:
                raise RuntimeError("boom")
            return self.head(h.mean((2, 3)))

    model = _init(_Fails(), 10)
    with pytest.raises(RuntimeError, match="boom"):
        _activations(model, model.act, _x(3, 3, 4, 4), 64, "mean", None, "act")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
