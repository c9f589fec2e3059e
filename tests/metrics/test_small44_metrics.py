"""small44 (stop 44): ground-truth masks that read two ways, and the channels-last warning.

Truths are computed here from the credits (``attr.flat()``) and the definition of relevance
mass (positive credit inside the truth over all positive credit, Arras et al. 2022), never
with tribute's metric code.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from test_rev43m_metrics import _hand_mass, _images

import tribute
from tribute.metrics import evaluate
from tribute_testing import ChannelsLast


def _truth_warnings(ws: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in ws if "ground_truth has shape" in str(w.message)]


@pytest.mark.parametrize("metric", ["relevance_mass", "relevance_rank", "auroc", "precision_at_k"])
def test_mask_of_the_image_shape_on_a_batch_of_c_images_warns(metric: str) -> None:
    """A (3, H, W) mask on 3 RGB images is both one (C, H, W) mask shared by every image and
    the per-pixel form (batch, H, W). It was read per image silently (a channel-0 region shared
    by the 3 images: relevance_mass .357 / 0 / 0 where the shared mask gives .122 / .091 /
    .096). The documented per-sample reading is kept, with a warning naming both spellings;
    the shared spelling scores the hand relevance mass."""
    net, x = _images(3, 3, 6, 6)
    attr = tribute.explain(net, x, method="saliency", target=0)
    mask = np.zeros((3, 6, 6), dtype=bool)
    mask[0, 1:4, 1:5] = True
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        got = evaluate(net, x, attr, metric=metric, ground_truth=mask).scores
    msgs = _truth_warnings(ws)
    assert len(msgs) == 1, msgs
    assert "np.broadcast_to(mask, (3, 3, 6, 6))" in msgs[0] and "(3, 1, 6, 6)" in msgs[0]
    assert "one mask per sample" in msgs[0]
    if metric == "relevance_mass":
        np.testing.assert_allclose(got, _hand_mass(attr, np.broadcast_to(mask[:, None], x.shape)),
                                   rtol=1e-12)
    shared = np.broadcast_to(mask, x.shape)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        got = evaluate(net, x, attr, metric=metric, ground_truth=shared).scores
    assert not _truth_warnings(ws)
    if metric == "relevance_mass":
        np.testing.assert_allclose(got, _hand_mass(attr, shared), rtol=1e-12)
        np.testing.assert_allclose(got, [0.12220352, 0.09061607, 0.09625814], atol=1e-8)


def test_unambiguous_and_equal_reading_truth_shapes_do_not_warn() -> None:
    """No warning where the shape reads one way, or both readings give the same truth (a mask
    constant along its first axis), and the scores are the hand relevance mass."""
    rng = np.random.default_rng(3)
    for (b, c), shape in [((3, 3), (3, 1, 6, 6)), ((2, 3), (2, 6, 6)), ((3, 3), (3, 3, 6, 6)),
                          ((3, 1), (3, 6, 6)), ((1, 1), (1, 6, 6))]:
        net, x = _images(b, c, 6, 6)
        attr = tribute.explain(net, x, method="saliency", target=0)
        mask = rng.random(shape) < 0.5
        lifted = mask if len(shape) == 4 else mask[:, None]
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter("always")
            got = evaluate(net, x, attr, metric="relevance_mass", ground_truth=mask).scores
        assert not _truth_warnings(ws), shape
        np.testing.assert_allclose(got, _hand_mass(attr, np.broadcast_to(lifted, x.shape)),
                                   rtol=1e-12)
    net, x = _images(3, 3, 6, 6)
    attr = tribute.explain(net, x, method="saliency", target=0)
    same = np.broadcast_to(rng.random((6, 6)) < 0.5, (3, 6, 6))  # both readings agree
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        got = evaluate(net, x, attr, metric="relevance_mass", ground_truth=same).scores
    assert not _truth_warnings(ws)
    np.testing.assert_allclose(got, _hand_mass(attr, np.broadcast_to(same, x.shape)), rtol=1e-12)


# ------------------------------------------------------------------ channels-last warning
def _layout_warned(model: Any, x: torch.Tensor, metric: str, **kw: Any) -> bool:
    attr = tribute.explain(model, x, method="saliency", target=0)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        evaluate(model, x, attr, metric=metric, baseline=0.0, **kw)
    return any("looks channels-last" in str(w.message) for w in ws)


@pytest.mark.parametrize(("metric", "kw"), [
    ("road", {"fractions": (0.0, 0.5)}), ("infidelity", {"perturbation": "square", "n_perturbations": 4})])
def test_channels_last_warning_follows_the_models_convolution(metric: str, kw: dict[str, Any]) -> None:
    """Channels-first images of 5+ channels and width 1, 3 or 4 ((8, 6, 3), (12, 20, 1),
    (5, 9, 4)) were warned about as channels-last by the shape rule; the model's first Conv2d
    (8, 12, 5 input channels) says they are channels-first. Real channels-last images still
    warn, now also with 8 channels (16, 16, 8), which the shape rule missed; a model without a
    convolution keeps the shape rule."""
    g = torch.Generator().manual_seed(1)
    for c, h, w in [(8, 6, 3), (12, 20, 1), (5, 9, 4)]:
        net, _ = _images(1, c, h, w)
        x = torch.rand(2, c, h, w, generator=g, dtype=torch.float64)
        assert not _layout_warned(net, x, metric, **kw), (c, h, w)
    for h, w, c in [(8, 8, 3), (10, 10, 1), (16, 16, 8)]:
        net, _ = _images(1, c, h, w)
        x = torch.rand(2, h, w, c, generator=g, dtype=torch.float64)
        assert _layout_warned(ChannelsLast(net), x, metric, **kw), (h, w, c)
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(144, 2)).double()
    assert _layout_warned(mlp, torch.rand(2, 8, 6, 3, generator=g, dtype=torch.float64), metric, **kw)
