"""unit='channel' on a module that maps the last axis ((batch, T, features) output) names the T
positions 'channel j': it now warns, naming both readings and the spelling of each (aud51a)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import tribute


class _Tokens(nn.Module):
    """(batch, T=3, 4) -> Linear (or ``layer``) -> tanh -> head, mean over positions."""

    def __init__(self, layer: nn.Module | None = None) -> None:
        super().__init__()
        self.fc = layer if layer is not None else nn.Linear(4, 6)
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(torch.tanh(self.fc(x))).mean(1)
        return out


def _loo_per_position(m: _Tokens, x: torch.Tensor) -> torch.Tensor:
    """Truth by hand: zero position j of fc's output (all its features)."""
    def v(j: int | None) -> torch.Tensor:
        h = m.fc(x).clone()
        if j is not None:
            h[:, j] = 0
        out: torch.Tensor = m.head(torch.tanh(h)).mean(1)[:, 0]
        return out

    with torch.no_grad():
        return torch.stack([v(None) - v(j) for j in range(x.shape[1])], 1)


def _conv1d() -> nn.Module:
    from transformers.pytorch_utils import Conv1D
    return Conv1D(6, 4)


@pytest.mark.parametrize("layer", [None, "hf_conv1d"])
def test_channel_on_linear_over_positions_warns_and_keeps_positions(layer: str | None) -> None:
    torch.manual_seed(0)
    m = _Tokens(_conv1d() if layer else None).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"unit='channel' on 'fc' \((Linear|Conv1D)\).*3 positions.*unit='neuron'"):
        a = tribute.explain(m, x, method="feature_ablation", players=tribute.components(m, "fc", unit="channel"),
                            target=0, progress=False)
    # the reading itself is unchanged (positions): exact against the hand leave-one-out
    torch.testing.assert_close(torch.as_tensor(a.values), _loo_per_position(m, x), rtol=0, atol=1e-12)


class _Conv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 3, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(torch.relu(self.conv(x)).mean(-1))
        return out


class _Block(nn.Module):
    """A custom residual block with a (channels, length) output: channels on axis 1."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.conv(x)
        return out


def test_channel_on_conv_and_neuron_on_linear_silent() -> None:
    """Negative cases: a Conv1d (batch, C, L) output, a custom block, and unit='neuron' on the
    Linear of the positions model raise no warning."""
    torch.manual_seed(0)
    conv = _Conv().double()
    xc = torch.randn(2, 2, 5, dtype=torch.float64)
    block = nn.Sequential(_Block(), nn.Flatten(), nn.Linear(15, 2)).double()
    xb = torch.randn(2, 3, 5, dtype=torch.float64)
    m = _Tokens().double()
    xt = torch.randn(2, 3, 4, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = tribute.explain(conv, xc, method="feature_ablation", players=tribute.components(conv, "conv", unit="channel"),
                            target=0, progress=False)
        assert a.values.shape == (2, 3)
        tribute.explain(block, xb, method="feature_ablation", players=tribute.components(block, "0", unit="channel"),
                        target=0, progress=False)
        n = tribute.explain(m, xt, method="feature_ablation", players=tribute.components(m, "fc"), target=0,
                            progress=False)
        assert n.values.shape == (2, 6)
