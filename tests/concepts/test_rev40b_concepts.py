"""Review rev40b of small40's TCAV ``channel_axis``: layers whose output is not batch-first are
refused (they gave one row per token, silently), and a batch-first transformer layer is told
channels-last: its channel means equal a twin model's explicit mean over tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tribute.errors import UnsupportedModelError
from tribute.methods.tcav import tcav


class _MeanOver(nn.Module):
    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(self.axis)


class _Encoder(nn.Module):
    """``batch x tokens x 4`` -> TransformerEncoderLayer ("enc") -> mean over tokens ("pool") -> head."""

    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        torch.manual_seed(3)  # the draws only set a model; every check compares two readings of it
        self.batch_first = batch_first
        self.enc = nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.0,
                                              batch_first=batch_first).double()
        self.pool = _MeanOver(1 if batch_first else 0)
        self.head = nn.Linear(4, 2).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.enc(x if self.batch_first else x.transpose(0, 1))
        return self.head(torch.tanh(self.pool(h)))


def _data(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return (torch.randn(n, 6, 4, generator=g, dtype=torch.float64),
            torch.randn(n, 6, 4, generator=g, dtype=torch.float64) + 0.8,
            torch.randn(n, 6, 4, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("n", [6, 10])  # 6: as many examples as tokens, no shape mismatch to see
@pytest.mark.parametrize("spatial", ["mean", "flatten"])
def test_tcav_refuses_a_tokens_first_transformer_layer(n: int, spatial: str) -> None:
    # before: the output tokens x batch x channels was read with the tokens as examples (a CAV
    # fitted on 6 rows of example means), and a score came back
    model = _Encoder(batch_first=False).eval()
    x, xc, xr = _data(n)
    with pytest.raises(UnsupportedModelError, match=r"batch_first=False.*tokens x batch x channels"):
        tcav(model, x, xc, xr, layer="enc", target=1, spatial=spatial, n_random=2, n_permutations=10)
    assert all(not m._forward_hooks for m in model.modules())


def test_tcav_mean_on_a_batch_first_transformer_layer_averages_the_tokens() -> None:
    model = _Encoder(batch_first=True).eval()
    x, xc, xr = _data(10)
    got = tcav(model, x, xc, xr, layer="enc", target=1, spatial="mean", n_random=3, n_permutations=20)
    twin = tcav(model, x, xc, xr, layer="pool", target=1, spatial="flatten", n_random=3, n_permutations=20)
    assert got.cav.shape == (4,)  # the channels, not the 6 tokens
    np.testing.assert_allclose(got.cav, twin.cav, rtol=1e-10, atol=1e-12)
    assert got.score == twin.score
