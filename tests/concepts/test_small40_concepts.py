"""small40 (concepts): TCAV's ``spatial="mean"`` averages over the right axes (a transformer layer's
``batch x tokens x channels`` as well as a conv layer's ``batch x channels x h x w``), and
``craft_decompose`` refuses a layer that is not earlier than the concepts' layer.

Truths: the channel means computed by hand in torch (mean over tokens / over h, w); a twin
model whose layer output is the same activations transposed to ``batch x channels x tokens``
(the already-right layout) gives the same TCAV result to float64 round-off."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tribute.errors import InputError
from tribute.methods.craft import craft, craft_decompose
from tribute.methods.tcav import _activations, tcav

T, C = 5, 7


class _Transpose(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class _Tokens(nn.Module):
    """``batch x T x 3`` -> Linear per token (``batch x T x C``) -> ReLU ("act") -> [transpose]
    -> mean over tokens -> Linear: a transformer-like MLP on channels-last activations."""

    def __init__(self, transposed: bool = False) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(40)
        self.proj = nn.Linear(3, C, dtype=torch.float64)
        self.head = nn.Linear(C, 2, dtype=torch.float64)
        with torch.no_grad():
            for p in (*self.proj.parameters(), *self.head.parameters()):
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
        self.act = nn.Sequential(nn.ReLU(), _Transpose()) if transposed else nn.ReLU()
        self.transposed = transposed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.proj(x))
        return self.head(h.mean(2) if self.transposed else h.mean(1))


def _sets() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, T, 3, generator=g, dtype=torch.float64)
    concept = torch.randn(10, T, 3, generator=g, dtype=torch.float64) + torch.tensor([1.0, -1.0, 0.5],
                                                                                    dtype=torch.float64)
    random = torch.randn(30, T, 3, generator=g, dtype=torch.float64)
    return x, concept, random


def test_channels_last_layer_is_read_channels_last() -> None:
    # before: spatial="mean" averaged axis 2.. of (batch, tokens, channels): the "channel means"
    # were the T token means over the C channels, a CAV of 5 token values, silently. small40
    # refused the ReLU's 3-D output until channel_axis was given; stop 41 tells it from the
    # Linear before it (7 channels: only the last axis has 7), and a layout no size tells is
    # still refused (tests/concepts/test_lead41_concepts.py)
    model = _Tokens()
    x, concept, random = _sets()
    auto = tcav(model, x, concept, random, layer="act", target=1, spatial="mean", n_permutations=20)
    got = tcav(model, x, concept, random, layer="act", target=1, spatial="mean", channel_axis=-1,
               n_permutations=20)
    assert np.array_equal(auto.cav, got.cav) and np.array_equal(auto.scores, got.scores)
    assert got.cav.shape == (C,)
    # the truth: channel means over the tokens, by hand
    acts = _activations(model, model.act, concept, 4, "mean", -1, "act")
    with torch.no_grad():
        truth = torch.relu(model.proj(concept)).mean(1).numpy()
    np.testing.assert_allclose(acts, truth, rtol=1e-13, atol=1e-14)
    # and the same as the activations transposed to batch x channels x tokens (axis 1)
    twin = _Tokens(transposed=True)
    ref = tcav(twin, x, concept, random, layer="act", target=1, spatial="mean", channel_axis=1,
               n_permutations=20)
    np.testing.assert_allclose(got.cav, ref.cav, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.scores, ref.scores, rtol=0, atol=0)
    assert got.score == ref.score and got.p_value == ref.p_value


def test_a_linear_layer_tells_channels_last_and_a_conv_layer_channels_first() -> None:
    model = _Tokens()
    x, concept, random = _sets()
    auto = tcav(model, x, concept, random, layer="proj", target=1, spatial="mean", n_permutations=5)
    given = tcav(model, x, concept, random, layer="proj", target=1, spatial="mean", channel_axis=-1,
                 n_permutations=5)
    assert auto.cav.shape == (C,) and np.array_equal(auto.cav, given.cav)
    conv = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    imgs = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    acts = _activations(conv, conv[1], imgs, 4, "mean", None, "1")
    with torch.no_grad():
        truth = torch.relu(conv[0](imgs)).mean((2, 3)).double().numpy()
    np.testing.assert_allclose(acts, truth, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bad", [0, 3, -4, 1.0, True])
def test_bad_channel_axis_is_refused(bad: object) -> None:
    model = _Tokens()
    x, concept, random = _sets()
    with pytest.raises(InputError, match="channel_axis"):
        tcav(model, x, concept, random, layer="act", target=1, spatial="mean", channel_axis=bad,  # type: ignore[arg-type]
             n_permutations=5)
    with pytest.raises(InputError, match="spatial='mean' only"):
        tcav(model, x, concept, random, layer="act", target=1, channel_axis=-1, n_permutations=5)


class _Cnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.block = nn.Sequential(nn.Conv2d(4, 3, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(3, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.relu(self.conv(x))).mean((2, 3)))


def test_craft_decompose_refuses_a_layer_that_runs_after_the_concepts_layer() -> None:
    # before: craft_decompose(res found at "relu", layer="block") fitted "sub-concepts" at a
    # LATER layer (the docstring asks for an earlier one) and returned them with parent ("relu", 0)
    model = _Cnn().eval()
    imgs = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0)).numpy()
    res = craft(model, imgs, layer="block", target=1, n_concepts=2, crop_size=8, resize=False, n_designs=8)
    low = craft(model, imgs, layer="relu", target=1, n_concepts=2, crop_size=8, resize=False, n_designs=8)
    params = [p.detach().clone() for p in model.parameters()]
    hooks = sum(len(m._forward_hooks) for m in model.modules())
    for later in ("block", "block.1"):  # the block holding the layer runs (finishes) after it too
        with pytest.raises(InputError, match=rf"layer='{later}' runs after 'relu'.*EARLIER layer"):
            craft_decompose(model, low, 0, layer=later, n_concepts=2, n_designs=8)
    assert sum(len(m._forward_hooks) for m in model.modules()) == hooks and not model.training
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters()))
    sub = craft_decompose(model, res, 0, layer="relu", n_concepts=2, n_designs=8)  # earlier: fine
    assert sub.parent == ("block", 0) and sub.layer == "relu"
