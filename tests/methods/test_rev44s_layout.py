"""rev44s (stop 44): the model-told image layout (``tribute.models.layout``) read the first
``Conv2d`` *registered* in a model as the one that reads the input. Where it is not (a head
registered before the stem that feeds it, a convolution fed by a ``Linear``), its
``in_channels`` is an intermediate width: channels-first ``(3, 8, 8)`` images of such models
were refused by every region method as channels-last ("the model's first Conv2d reads 8
channels") and ROAD / square infidelity warned. The truth: the same function with the layers
registered in forward order, or written without ``Conv2d`` modules (nothing tells the layout),
gives the same credits."""

from __future__ import annotations

import warnings
from typing import Any, TypeVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tribute
from tribute.metrics import evaluate
from tribute.models.layout import channels_last_by_model, first_conv_channels
from tribute_testing import ChannelsLast

_M = TypeVar("_M", bound=torch.nn.Module)


def _init(m: _M, seed: int = 0) -> _M:
    g = torch.Generator().manual_seed(seed)
    m.double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3)
    return m


class _HeadFirst(torch.nn.Module):
    """``head`` (8 -> 2) registered before ``stem`` (3 -> 8), which runs first."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Conv2d(8, 2, 1)
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.stem(x))).mean((2, 3))


class _StemFirst(torch.nn.Module):
    """The same function, registered in forward order."""

    def __init__(self, twin: _HeadFirst) -> None:
        super().__init__()
        self.stem = twin.stem
        self.head = twin.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.stem(x))).mean((2, 3))


class _LinearFed(torch.nn.Module):
    """A ``Conv2d`` reading 8 channels of a ``Linear``'s output, reshaped to 8 x 4 x 4."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3 * 8 * 8, 8 * 4 * 4)
        self.conv = torch.nn.Conv2d(8, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.tanh(self.lin(x.flatten(1))).view(-1, 8, 4, 4)).mean((2, 3))


class _LinearFedFunctional(torch.nn.Module):
    """The same function with its weights as plain parameters (no Conv2d module)."""

    def __init__(self, twin: _LinearFed) -> None:
        super().__init__()
        self.lw, self.lb = twin.lin.weight, twin.lin.bias
        self.cw, self.cb = twin.conv.weight, twin.conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(F.linear(x.flatten(1), self.lw, self.lb)).view(-1, 8, 4, 4)
        return F.conv2d(h, self.cw, self.cb, padding=1).mean((2, 3))


def _x() -> torch.Tensor:
    return torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.mark.parametrize("method,kw", [
    ("xrai", {"steps": 4}),
    pytest.param("extremal_perturbation", {"steps": 5, "areas": (0.2,)}, marks=pytest.mark.slow),  # ~7 s
])
def test_region_methods_keep_channels_first_images_of_reordered_models(method: str, kw: dict[str, Any]) -> None:
    """Before: InputError "(3, 8, 8) is channels-last (H, W, C): the model's first Conv2d
    reads 8 channels" for both models."""
    x = _x()
    head_first = _init(_HeadFirst())
    lin_fed = _init(_LinearFed())
    for model, twin in [(head_first, _StemFirst(head_first)), (lin_fed, _LinearFedFunctional(lin_fed))]:
        got = tribute.explain(model, x, method=method, target=0, baseline=0.0, **kw)
        want = tribute.explain(twin, x, method=method, target=0, baseline=0.0, **kw)
        np.testing.assert_allclose(np.asarray(got.values), np.asarray(want.values), rtol=0, atol=1e-12)
        assert got.n_evals == want.n_evals


def test_metrics_do_not_warn_on_channels_first_images_of_reordered_models() -> None:
    """Before: ROAD and square infidelity warned '(3, 8, 8) looks channels-last'."""
    x = _x()
    for model in (_init(_HeadFirst()), _init(_LinearFed())):
        attr = tribute.explain(model, x, method="integrated_gradients", steps=8, target=0, baseline=0.0)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*channels-last.*")
            evaluate(model, x, attr, "road", target=0, baseline=0.0, fractions=(0.0, 0.5))
            evaluate(model, x, attr, "infidelity", target=0, baseline=0.0, perturbation="square",
                     n_perturbations=4)


def test_first_conv_channels_trusts_only_a_convolution_that_can_read_the_input() -> None:
    assert first_conv_channels(_HeadFirst()) is None  # fed by stem (8 out)
    assert first_conv_channels(_LinearFed()) is None  # a Linear registered before it
    assert first_conv_channels(torch.nn.LazyConv2d(4, 3)) is None  # in_channels unknown (0)
    stem = torch.nn.Sequential(torch.nn.BatchNorm2d(8), torch.nn.Conv2d(8, 16, 3), torch.nn.ReLU(),
                               torch.nn.Conv2d(16, 32, 3, groups=4))
    assert first_conv_channels(stem) == 8  # a normalisation keeps the width
    # the real channels-last case keeps being told: (16, 16, 8) read by Conv2d(8, ...)
    assert channels_last_by_model((16, 16, 8), ChannelsLast(stem)) is True
    assert channels_last_by_model((8, 16, 16), stem) is False
