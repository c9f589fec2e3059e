"""rev46z: small46's Grad-CAM ``channel_axis`` took a value the model contradicts: ``channel_axis=-1``
on a ``Conv2d``'s ``(batch, 6, 8, 8)`` output read the 8 widths as channels, silently (map total
0.026 where the map by hand is 0.157); and ``channel_axis=np.int64(1)`` was refused, where CRAFT,
TCAV and the region methods take numpy integers.

Truth: Grad-CAM by hand (torch autograd on the layer's output, channels on axis 1).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError
from tribute_testing import output_and_activation


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(6, 2)).double().eval()


def _by_hand(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    out, act = output_and_activation(model, "0", x)
    (g,) = torch.autograd.grad(out[:, 0].sum(), act)
    cam = (g.mean((2, 3), keepdim=True) * act.detach()).sum(1)  # 8 x 8, the image's size
    return cam[:, None].expand(-1, 3, -1, -1)


@pytest.mark.parametrize("axis", [-1, 3, np.int64(-1)])
def test_a_channel_axis_the_model_contradicts_is_refused(axis: Any) -> None:
    model = _net()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with pytest.raises(InputError, match=r"channel_axis=-?\d puts layer '0''s channels on axis 3.*model set 6 "
                                         r"channels.*pass channel_axis=1"):
        tribute.explain(model, x, method="grad_cam", layer="0", target=0, channel_axis=axis, relu=False,
                        progress=False)
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())


@pytest.mark.parametrize("axis", [None, 1, np.int64(1), torch.tensor(1)])
def test_the_axis_the_model_says_is_taken_numpy_ints_too(axis: Any) -> None:
    model = _net()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = tribute.explain(model, x, method="grad_cam", layer="0", target=0, channel_axis=axis, relu=False,
                          progress=False)
    truth = _by_hand(model, x)
    assert float(truth.abs().max()) > 1e-4
    assert torch.allclose(torch.as_tensor(got.values), truth, rtol=0, atol=1e-12)
