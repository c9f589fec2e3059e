"""rev44z: CRAFT reads the image layout off the model's first Conv2d where it can."""

from __future__ import annotations

import warnings

import pytest
import torch

from tribute.errors import InputError
from tribute.methods.craft import craft


class _Net(torch.nn.Module):
    def __init__(self, channels: int, last: bool) -> None:
        super().__init__()
        self.last = last
        self.conv = torch.nn.Conv2d(channels, 6, 3, padding=1)
        self.relu = torch.nn.ReLU()
        self.fc = torch.nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.last:
            x = x.permute(0, 3, 1, 2)
        return self.fc(self.relu(self.conv(x)).mean((2, 3)))


class _Permuted(torch.nn.Module):
    """The fix the message names: a channels-last model read through channels-first images."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.permute(0, 2, 3, 1))


def _run(model: torch.nn.Module, x: torch.Tensor, layer: str) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return craft(model.eval(), x, layer=layer, target=0, n_concepts=2, n_crops=8, n_designs=8)


def test_eight_channel_channels_last_images_are_refused() -> None:
    # before: (n, 16, 16, 8) ran silently, cropping 4 columns x 4 channels as 4 x 4 pixels
    torch.manual_seed(0)
    x = torch.rand(6, 16, 16, 8)
    model = _Net(8, last=True)
    with pytest.raises(InputError, match="look channels-last"):
        _run(model, x, "relu")
    result = _run(_Permuted(model), x.permute(0, 3, 1, 2).contiguous(), "inner.relu")  # the advice works
    assert result is not None


def test_eight_channel_narrow_channels_first_images_are_taken() -> None:
    # before: (n, 8, 16, 3) for a model whose first Conv2d reads 8 channels was refused as
    # channels-last, with advice (permute to (n, 3, 8, 16)) the model cannot take
    torch.manual_seed(0)
    x = torch.rand(6, 8, 16, 3)
    result = _run(_Net(8, last=False), x, "relu")
    assert result is not None
    # an RGB channels-last batch is still refused by the shape rule where the model reads 3 channels
    with pytest.raises(InputError, match="look channels-last"):
        _run(_Net(3, last=True), torch.rand(6, 16, 16, 3), "relu")
