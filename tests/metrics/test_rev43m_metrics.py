"""Review rev43m (stop 43) of aud43m's metrics change: ground-truth shapes that read two ways.

The truth of every test is computed here from the credits (``attr.flat()``) and the paper's
definition (relevance mass: positive credit inside the truth over all positive credit, Arras et
al. 2022), never with tribute's metric code.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.metrics import Blur, blur, evaluate


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


# ------------------------------------------------------------------ channels-last images
class _ChannelsLast(torch.nn.Module):
    """The channels-first net on (batch, H, W, C) inputs."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.permute(0, 3, 1, 2))


def _model_explain(model: Any, inputs: Any) -> Any:
    return tribute.explain(model, inputs, method="saliency", target=0)


_LAYOUT_CASES: list[tuple[str, dict[str, Any]]] = [
    ("road", {"noise": 0.01}),
    ("infidelity", {"perturbation": "square", "n_perturbations": 20}),
    ("deletion", {"baseline": "blur"}),
    ("random_logit", {"similarity": "ssim"}),
    ("model_randomisation", {"similarity": "ssim"}),
]


@pytest.mark.parametrize(("metric", "kw"), _LAYOUT_CASES, ids=[c[0] for c in _LAYOUT_CASES])
def test_channels_last_images_with_channel_axis_score_as_channels_first(
        metric: str, kw: dict[str, Any]) -> None:
    """ROAD's imputation, the square infidelity masks, the blur baseline and SSIM maps work over
    (H, W) planes; aud43m only warned on (H, W, C) images, whose planes were (W, C) (ROAD
    23.57 for 23.88 on the network below). ``channel_axis=-1`` (``Blur(channel_axis=-1)``)
    reads them as CRAFT does: the score equals the same images and network laid out
    channels-first (a path without any permutation), noise included, with no warning."""
    net, x_f = _images(3, 3, 6, 6)
    net_l = _ChannelsLast(net)
    x_l = x_f.permute(0, 2, 3, 1).contiguous()
    kf: dict[str, Any] = dict(kw)
    kl: dict[str, Any] = dict(kw)
    if metric == "deletion":
        kf["baseline"] = Blur(sigma=1.5)
        kl["baseline"] = Blur(sigma=1.5, channel_axis=-1)
    else:
        kl["channel_axis"] = -1
    if metric == "model_randomisation":
        kf["explain"] = kl["explain"] = _model_explain
    if metric == "random_logit":
        kf["explain"] = lambda inputs, **o: tribute.explain(net, inputs, method="saliency", **o)
        kl["explain"] = lambda inputs, **o: tribute.explain(net_l, inputs, method="saliency", **o)
    a_f = tribute.explain(net, x_f, method="saliency", target=0)
    a_l = tribute.explain(net_l, x_l, method="saliency", target=0)
    want = evaluate(net, x_f, a_f, metric=metric, **kf).scores
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        got = evaluate(net_l, x_l, a_l, metric=metric, **kl).scores
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sigma", [1.0, 40.0])
def test_blur_of_channels_last_images_matches_scipy(sigma: float) -> None:
    """Blur(channel_axis=-1) blurs each channel over (H, W): scipy's gaussian_filter with
    sigma 0 on the batch and channel axes, replicate ('nearest') edges; sigma=40 takes the
    wide-kernel matrix path on the 5x7 images."""
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    x = np.random.default_rng(1).normal(size=(2, 5, 7, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        got = blur(x, Blur(sigma=sigma, channel_axis=-1))
    ref = scipy_ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest", truncate=3.0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    tx = torch.from_numpy(x)
    back = blur(tx, Blur(sigma=sigma, channel_axis=-1))
    assert isinstance(back, torch.Tensor) and back.shape == tx.shape


@pytest.mark.parametrize("bad", [2, 0, True, "-1", 1.0])
def test_channel_axis_values_are_checked(bad: Any) -> None:
    """Only 1, -1 (or 3) and None mean a layout; anything else is refused by name, as is
    channel_axis=-1 on per-sample images that are not (H, W, C)."""
    net, x = _images(2, 3, 6, 6)
    attr = tribute.explain(net, x, method="saliency", target=0)
    with pytest.raises(InputError, match="channel_axis="):
        evaluate(net, x, attr, metric="road", channel_axis=bad)
    with pytest.raises(InputError, match="channel_axis="):
        blur(x, Blur(channel_axis=bad))
    gray: Any = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 2)).double()
    xg = torch.randn(2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ag = tribute.explain(gray, xg, method="saliency", target=0)
    with pytest.raises(InputError, match=r"channel_axis=-1.*\(6, 6\) is not \(H, W, C\)"):
        evaluate(gray, xg, ag, metric="infidelity", perturbation="square", channel_axis=-1)


def test_ssim_channel_axis_is_checked_before_any_re_explanation() -> None:
    """channel_axis=-1 on (H, W) images is refused before model_randomisation re-explains
    anything (it ran one re-explanation first), and the model is left as it was."""
    gray: Any = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 4), torch.nn.ReLU(),
                                    torch.nn.Linear(4, 2)).double()
    xg = torch.randn(2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ag = tribute.explain(gray, xg, method="saliency", target=0)
    before = {k: v.clone() for k, v in gray.state_dict().items()}
    calls: list[int] = []

    def model_explain(model: Any, inputs: Any) -> Any:
        calls.append(1)
        return tribute.explain(model, inputs, method="saliency", target=0)

    with pytest.raises(InputError, match=r"channel_axis=-1.*\(6, 6\) is not \(H, W, C\)"):
        evaluate(gray, xg, ag, metric="model_randomisation", explain=model_explain,
                 similarity="ssim", channel_axis=-1)
    assert calls == []
    assert all(torch.equal(before[k], v) for k, v in gray.state_dict().items())
