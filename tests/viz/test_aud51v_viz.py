"""Audit aud51v: an attribution records the channel axis its torch model reads, and plots by it.

``attr.plot()`` of a CNN's ``(3, 4, 4)`` map (3 channels of 4x4, or a 3x4 image of 4 channels
by its shape alone) was refused until the user passed ``channel_axis=0``; a channels-last
``(4, 6, 3)`` model's map needed ``channel_axis=-1``. The feature game knows the layout from the
model's first ``Conv2d`` (:func:`tribute.models.layout.channels_last_by_model`) and records it in
``attr.layout.channel_axis``; ``attr.plot``, ``viz.image(attr)`` and ``viz.image_grid`` draw by it
(saved and loaded too). Where nothing decides (no Conv2d, a numpy model, a Conv2d that reads as
many channels as both end axes hold) the map is refused as before. Truth: input x gradient of
``conv1x1(identity) -> sum(w * x)``, closed form ``w * x`` summed over the model's channel axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute import viz
from tribute.attribution import Layout
from tribute.errors import InputError
from tribute_testing import IdentityConvSum


def _case(shape: tuple[int, int, int], last: bool) -> tuple[Any, np.ndarray, int]:
    c = shape[-1] if last else shape[0]
    h, w = (shape[0], shape[1]) if last else (shape[1], shape[2])
    model = IdentityConvSum(c, h, w, last).double()
    x = torch.randn(2, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    attr = tribute.explain(model, x, "input_x_gradient", target=0, progress=False)
    weight = model.w.detach().permute(1, 2, 0) if last else model.w.detach()
    axis = -1 if last else 0
    return attr, (weight * x[0]).sum(axis).numpy(), axis


def _drawn(fig: Any, k: int = 0) -> np.ndarray:
    return np.asarray(fig.axes[k].images[-1].get_array(), dtype=np.float64)


@pytest.mark.parametrize("shape, last", [((3, 4, 4), False), ((2, 4, 4), False), ((4, 6, 3), True)])
def test_a_cnns_map_that_reads_two_ways_is_drawn_as_the_model_reads_it(
        shape: tuple[int, int, int], last: bool, tmp_path: Path) -> None:
    attr, truth, axis = _case(shape, last)
    assert attr.layout.channel_axis == axis
    np.testing.assert_allclose(_drawn(attr.plot(0)), truth, atol=1e-12)  # refused before
    np.testing.assert_allclose(_drawn(viz.image_grid(attr)), truth, atol=1e-12)
    np.testing.assert_allclose(_drawn(viz.image_grid({"ixg": attr})), truth, atol=1e-12)
    loaded = tribute.Attribution.load(attr.save(tmp_path / "a.npz"))
    assert loaded.layout.channel_axis == axis
    np.testing.assert_allclose(_drawn(loaded.plot(0)), truth, atol=1e-12)


def test_an_explicit_channel_axis_still_wins() -> None:
    attr, _, _ = _case((3, 4, 4), False)
    v = attr.values[0].detach().numpy()
    np.testing.assert_allclose(_drawn(attr.plot(0, channel_axis=-1)), v.sum(-1), atol=1e-12)


def test_nothing_decides_without_a_convolution_or_where_it_reads_both_axes() -> None:
    torch.manual_seed(0)
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 1)).double()
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    for attr in (tribute.explain(flat, x, "input_x_gradient", target=0, progress=False),
                 tribute.explain(lambda a: a.reshape(len(a), -1).sum(1), x.numpy(), "feature_ablation",
                                 baseline=0.0, progress=False)):
        assert attr.layout.channel_axis is None
        with pytest.raises(ValueError, match="reads two ways"):
            attr.plot(0)
    both, _, _ = _case((4, 4, 4), False)  # the Conv2d reads 4 channels: first or last axis?
    assert both.layout.channel_axis is None
    with pytest.raises(ValueError, match="reads two ways"):
        both.plot(0)


def test_a_saved_layout_without_or_with_a_damaged_channel_axis() -> None:
    assert Layout.from_json({"input_shapes": [[3, 4, 4]], "dense": True}).channel_axis is None
    assert "channel_axis" not in Layout(input_shapes=((3, 4, 4),)).to_json()  # old files alike
    with pytest.raises(InputError, match="channel_axis=2"):
        Layout.from_json({"input_shapes": [[3, 4, 4]], "channel_axis": 2})


# ------------------------------------------------------------------- certified_map
@pytest.mark.parametrize("shape", [(4, 6, 3), (2, 6, 4)])
def test_certified_map_draws_a_channels_last_cnns_input_as_the_model_reads_it(
        shape: tuple[int, int, int]) -> None:
    model = IdentityConvSum(shape[-1], shape[0], shape[1], last=True).double()
    x = torch.randn(1, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    r = tribute.certified_attribution(model, x, "saliency", n_samples=8, k=2, target=0)
    assert r.channel_axis == -1
    truth = np.asarray(r.smoothed[0]).reshape(shape).sum(-1)  # drawn 6x3 / 6x4 before
    np.testing.assert_allclose(_drawn(r.plot(0)), truth, atol=1e-12)


def test_certified_map_refuses_a_shape_nothing_decides_and_takes_channel_axis() -> None:
    model = IdentityConvSum(3, 4, 6, last=True).double()

    def f(a: np.ndarray) -> np.ndarray:
        return model(torch.as_tensor(a)).detach().numpy()

    x = np.random.default_rng(1).random((1, 4, 6, 3))
    r = tribute.certified_attribution(f, x, "feature_ablation", n_samples=8, k=2, target=0)
    assert r.channel_axis is None
    with pytest.raises(ValueError, match="reads two ways"):
        r.plot(0)
    truth = np.asarray(r.smoothed[0]).reshape(4, 6, 3).sum(-1)
    np.testing.assert_allclose(_drawn(r.plot(0, channel_axis=-1)), truth, atol=1e-12)
