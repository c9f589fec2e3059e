"""aud51a's unit='channel' warning (a module mapping the last axis makes axis 1 positions) must
stay silent where axis 1 is the channels: a LayerNorm subclass that normalises the channels of
a (batch, C, H, W) map (Transformers' ConvNext channels_first LayerNorm, torchvision's / timm's
LayerNorm2d), a LayerNorm over (C, L) (review rev51a)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import tribute


class _LayerNorm2d(nn.LayerNorm):
    """torchvision's ConvNext LayerNorm2d: normalises axis 1 of (batch, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return out


def _hf_channels_first() -> nn.Module:
    from transformers.models.convnext.modeling_convnext import ConvNextLayerNorm
    return ConvNextLayerNorm(4, data_format="channels_first")


class _Net(nn.Module):
    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.conv, self.norm, self.head = nn.Conv2d(2, 4, 3), norm, nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.norm(self.conv(x)).mean((2, 3)))
        return out


def _loo_channels(m: _Net, x: torch.Tensor) -> torch.Tensor:
    """Truth by hand: zero channel j of the norm's output."""
    def v(j: int | None) -> torch.Tensor:
        h = m.norm(m.conv(x)).clone()
        if j is not None:
            h[:, j] = 0
        out: torch.Tensor = m.head(h.mean((2, 3)))[:, 0]
        return out

    with torch.no_grad():
        return torch.stack([v(None) - v(j) for j in range(4)], 1)


@pytest.mark.parametrize("norm", ["LayerNorm2d", "hf_convnext_channels_first"])
def test_channels_first_norm_is_silent_and_channels(norm: str) -> None:
    """Before rev51a: "the 4 players 'channel j' are the 4 positions along axis 1 ... use
    unit='neuron'" on a norm whose axis 1 is its 4 channels (unit='neuron' gives the 5 columns)."""
    torch.manual_seed(0)
    m = _Net(_LayerNorm2d(4) if norm == "LayerNorm2d" else _hf_channels_first()).double()
    x = torch.randn(2, 2, 7, 7, dtype=torch.float64)  # output (4, 5, 5): no size coincides
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = tribute.explain(m, x, method="feature_ablation", players=tribute.components(m, "norm", unit="channel"),
                            target=0, progress=False)
    torch.testing.assert_close(torch.as_tensor(a.values), _loo_channels(m, x), rtol=0, atol=1e-12)


class _Seq(nn.Module):
    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm, self.head = norm, nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.norm(x).mean(1))
        return out


def test_layernorm_over_channels_and_length_is_silent() -> None:
    """nn.LayerNorm([C, L]) on (batch, C, L) normalises axis 1 with the rest: no positions reading."""
    m = _Seq(nn.LayerNorm([3, 4])).double()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tribute.explain(m, torch.randn(2, 3, 4, dtype=torch.float64), method="feature_ablation",
                        players=tribute.components(m, "norm", unit="channel"), target=0, progress=False)


def test_layernorm_over_features_still_warns() -> None:
    """The positive case stays: nn.LayerNorm(F) on (batch, T, F) has positions on axis 1."""
    m = _Seq(nn.LayerNorm(4)).double()
    with pytest.warns(UserWarning, match=r"unit='channel' on 'norm' \(LayerNorm\).*3 positions.*unit='neuron'"):
        tribute.explain(m, torch.randn(2, 3, 4, dtype=torch.float64), method="feature_ablation",
                        players=tribute.components(m, "norm", unit="channel"), target=0, progress=False)


class _OwnForwardLinear(nn.Linear):
    """A Linear with its own forward (as quantised / adapter Linears have) on (batch, T, F)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = super().forward(x) * 1.0
        return out


def test_own_forward_linear_over_positions_still_warns() -> None:
    """Its output (3, 6) has positions on axis 1 (3 != its 6 features): the warning stays."""
    m = _Seq(_OwnForwardLinear(4, 4)).double()
    m.head = nn.Linear(4, 2).double()
    with pytest.warns(UserWarning, match=r"unit='channel' on 'norm' \(_OwnForwardLinear\).*3 positions"):
        tribute.explain(m, torch.randn(2, 3, 4, dtype=torch.float64), method="feature_ablation",
                        players=tribute.components(m, "norm", unit="channel"), target=0, progress=False)
