"""Review rev43m (stop 43) of aud43m's metrics change: ground-truth shapes that read two ways.

The truth of every test is computed here from the credits (``attr.flat()``) and the paper's
definition (relevance mass: positive credit inside the truth over all positive credit, Arras et
al. 2022), never with tribute's metric code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.metrics import evaluate


def _images(b: int, c: int, h: int, w: int) -> tuple[Any, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    net: Any = torch.nn.Sequential(
        torch.nn.Conv2d(c, 2, 3, padding=1), torch.nn.Tanh(), torch.nn.Flatten(),
        torch.nn.Linear(2 * h * w, 2)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return net, torch.randn(b, c, h, w, generator=g, dtype=torch.float64)


def _hand_mass(attr: Any, truth: np.ndarray) -> np.ndarray:
    phi = np.clip(attr.flat()[:, 0, :], 0.0, None)  # B x elements
    t = truth.reshape(truth.shape[0], -1)
    return np.asarray((phi * t).sum(1) / phi.sum(1))


@pytest.mark.parametrize("c", [1, 3])
def test_shared_image_mask_on_a_batch_as_tall_as_the_image_is_refused(c: int) -> None:
    """One (8, 8) mask for every one of 8 images (8, C, 8, 8) was read as (batch, W) flags
    broadcast over channels and rows: sample i's truth was row i of the mask copied down the
    image (relevance_mass 0, 0, .683, .683, .683, 0, 0, 0 where the shared mask gives .318 each
    for C=1), silently. It is refused like aud43m's 1-D case, naming both explicit forms, and
    the shared form it names scores the hand relevance mass."""
    net, x = _images(8, c, 8, 8)
    attr = tribute.explain(net, x, method="saliency", target=0)
    mask = np.zeros((8, 8), dtype=bool)
    mask[2:5, 1:6] = True
    with pytest.raises(InputError, match=r"shape \(8, 8\).*ambiguous.*np\.broadcast_to\(mask, "
                                         r"\(8, 8, 8\)\).*\(8, 1, 1, 8\)"):
        evaluate(net, x, attr, metric="relevance_mass", ground_truth=mask)
    shared = np.broadcast_to(mask, (8, 8, 8))
    got = evaluate(net, x, attr, metric="relevance_mass", ground_truth=shared).scores
    np.testing.assert_allclose(got, _hand_mass(attr, np.broadcast_to(mask, (8, c, 8, 8))),
                               rtol=1e-12)


def test_documented_per_pixel_and_explicit_forms_still_read_per_sample() -> None:
    """(batch, H, W) over (C, H, W) images is the documented per-pixel form: kept when the
    batch size equals C (3 RGB images). (batch, 1, 1, W) says per sample explicitly; a batch of
    one reads the same either way and is kept."""
    net, x = _images(3, 3, 3, 3)
    attr = tribute.explain(net, x, method="saliency", target=0)
    rng = np.random.default_rng(0)
    per_pixel = rng.random((3, 3, 3)) < 0.5
    got = evaluate(net, x, attr, metric="relevance_mass", ground_truth=per_pixel).scores
    np.testing.assert_allclose(
        got, _hand_mass(attr, np.broadcast_to(per_pixel[:, None], (3, 3, 3, 3))), rtol=1e-12)
    cols = rng.random((3, 3)) < 0.5
    explicit = cols.reshape(3, 1, 1, 3)
    got = evaluate(net, x, attr, metric="relevance_mass", ground_truth=explicit).scores
    np.testing.assert_allclose(
        got, _hand_mass(attr, np.broadcast_to(explicit, (3, 3, 3, 3))), rtol=1e-12)
    net1, x1 = _images(1, 1, 1, 5)
    attr1 = tribute.explain(net1, x1, method="saliency", target=0)
    row = np.array([[1, 0, 1, 1, 0]])  # (1, 5): the image's own shape (1, 5) and (batch, W)
    got = evaluate(net1, x1, attr1, metric="relevance_mass", ground_truth=row).scores
    np.testing.assert_allclose(got, _hand_mass(attr1, row), rtol=1e-12)


def test_vector_truth_message_does_not_call_a_feature_mask_per_sample_flags() -> None:
    """A (6,) mask on 4 samples of 6 features is one mask for every sample, not "one flag per
    sample" as aud43m's message said; the message names the broadcast that fixes it."""
    net: Any = torch.nn.Sequential(torch.nn.Linear(6, 2)).double()
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    attr = tribute.explain(net, x, method="saliency", target=0)
    with pytest.raises(InputError, match=r"shape \(6,\)") as err:
        evaluate(net, x, attr, metric="relevance_mass", ground_truth=np.array([1, 1, 0, 0, 0, 0]))
    assert "one flag per sample" not in str(err.value)
    assert "np.broadcast_to(mask, (4, 6))" in str(err.value)
    with pytest.raises(InputError, match=r"shape \(4,\).*one flag per sample.*\(4, 6\)"):
        evaluate(net, x, attr, metric="relevance_mass", ground_truth=np.array([1, 0, 0, 1]))
