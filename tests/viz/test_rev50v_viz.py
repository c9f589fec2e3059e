"""Review rev50v of aud50v: an underlay tells a map's channel axis only where it reads one way.

aud50v let the underlay's aspect ratio pick the reading of a map whose shape reads two ways.
The underlay was read by its own tie-break (channels last), so a torch CNN's channels-first
``(3, 4, 4)`` map drawn over its own ``(3, 4, 4)`` input (``attr.plot(i, image=x[i])``) was
drawn as a 3x4 map summed over the image's columns; main drew it right (4x4, summed over the
channels) and a ``(2, 4, 4)`` one was refused. Truth: closed form ``w * x`` of a linear model
summed over the channel axis the model reads (axis 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute import viz


def _drawn(fig: Any) -> np.ndarray:
    return np.asarray(fig.axes[0].images[-1].get_array(), dtype=np.float64)


@pytest.mark.parametrize("shape", [(3, 4, 4), (2, 4, 4), (4, 3, 4)])
def test_an_underlay_that_reads_two_ways_does_not_pick_the_maps_reading(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    lin = torch.nn.Linear(int(np.prod(shape)), 2).double()
    model = torch.nn.Sequential(torch.nn.Flatten(), lin)
    x = torch.rand(1, *shape, dtype=torch.float64)
    attr = tribute.explain(model, x, "input_x_gradient", target=0, progress=False)
    truth = (lin.weight[0].detach().reshape(shape) * x[0]).sum(0).numpy()
    for under in (x[0], x[0].numpy(), x):
        with pytest.raises(ValueError, match=r"reads two ways.*channel_axis=0"):
            attr.plot(image=under)
        with pytest.raises(ValueError, match=r"reads two ways"):
            viz.image(attr, image=under)
    np.testing.assert_allclose(_drawn(attr.plot(image=x[0].numpy()[:1], channel_axis=0)), truth,
                               rtol=1e-12)
    # an underlay that reads one way still tells: a gray (H, W) picture of the channels-first grid
    np.testing.assert_allclose(_drawn(viz.image(attr, image=np.zeros(shape[1:]))), truth, rtol=1e-12)
