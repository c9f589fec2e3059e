"""Audit aud50v: a map whose shape reads two ways is refused, not drawn the wrong way.

``viz.image`` took a 3-D map's channel axis from its shape: first unless only the last axis
is 1-4 long. A channels-last ``(4, 6, 3)`` map (a 4x6 image of 3 channels) was read as 4
channels of a 6x3 image and drawn as a 6x3 picture of credits summed over the image's rows
(``attr.plot()`` too; likewise ``(3, 7, 3)``, ``(2, 6, 4)``). Truth: the credits of a linear
model (input x gradient, closed form ``w * x``) summed over the channel axis the model reads.
Now such a map needs ``channel_axis=0`` or ``-1`` (or an underlay whose aspect tells the
reading); unambiguous maps are drawn as before, and a length-1 axis at one end of a
``(1, 4, 4)`` or ``(4, 4, 1)`` map is its gray channel.
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


def _attr(shape: tuple[int, ...]) -> tuple[Any, np.ndarray]:
    torch.manual_seed(0)
    lin = torch.nn.Linear(int(np.prod(shape)), 2).double()
    model = torch.nn.Sequential(torch.nn.Flatten(), lin)
    x = torch.randn(1, *shape, dtype=torch.float64)
    attr = tribute.explain(model, x, "input_x_gradient", target=0, progress=False)
    w = lin.weight[0].detach().reshape(shape)
    return attr, (w * x[0]).numpy()


@pytest.mark.parametrize("shape", [(4, 6, 3), (3, 7, 3), (2, 6, 4)])
def test_a_map_that_reads_two_ways_is_refused_and_drawn_right_when_told(shape: tuple[int, ...]) -> None:
    attr, credits = _attr(shape)  # a channels-last model's credits
    for draw in (lambda **k: viz.image(attr, **k), lambda **k: attr.plot(**k),
                 lambda **k: viz.image_grid({"ixg": attr}, **k)):
        with pytest.raises(ValueError, match=r"reads two ways.*channel_axis=0.*channel_axis=-1"):
            draw()
        np.testing.assert_allclose(_drawn(draw(channel_axis=-1)), credits.sum(-1), rtol=1e-12)
        np.testing.assert_allclose(_drawn(draw(channel_axis=2)), credits.sum(-1), rtol=1e-12)
        np.testing.assert_allclose(_drawn(draw(channel_axis=0)), credits.sum(0), rtol=1e-12)


def test_an_underlay_tells_the_reading_and_unambiguous_maps_are_unchanged() -> None:
    attr, credits = _attr((4, 6, 3))
    # a 4x6 (or 8x12) picture fits the channels-last reading only
    for img in (np.zeros((4, 6)), np.zeros((8, 12, 3))):
        np.testing.assert_allclose(_drawn(viz.image(attr, image=img)), credits.sum(-1), rtol=1e-12)
    for shape, axis in (((3, 8, 8), 0), ((8, 8, 3), -1), ((1, 6, 5), 0), ((6, 5, 1), -1),
                        ((1, 4, 4), 0), ((4, 4, 1), -1), ((2, 3, 5), 0)):
        attr, credits = _attr(shape)
        np.testing.assert_allclose(_drawn(attr.plot()), credits.sum(axis), rtol=1e-12)
    with pytest.raises(ValueError, match="channel_axis must be None"):
        viz.image(attr, channel_axis=1)
