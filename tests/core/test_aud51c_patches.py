"""aud51c: ``tribute.patches(k)`` always tiled a sample's last two axes. On a channels-last
``(4, 6, 3)`` input of a channels-last CNN, ``patches(2)`` grouped W columns x channels across
all rows (exact Shapley 0.17 off the truth, silently); on ``(32, 32, 3)`` ``patches(4)`` raised
"patch size exceeds the image size (32, 3)". Patches now tile the spatial axes the model reads
(its first ``Conv2d``), or those ``patches(k, channel_axis=...)`` names; where neither says and the
shape reads as an ``(H, W, C)`` image, the call is refused naming both readings.

Truth: group ids written by hand; a linear model's grouped exact Shapley value at baseline 0 is
the sum of ``w * x`` over each patch (``w`` by autograd)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError


class ChannelsLast(torch.nn.Module):
    """A linear CNN on (H, W, C) samples: permute, 1x1 Conv2d(C, 2), Linear."""

    def __init__(self, h: int, w: int, c: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(c, 2, 1)
        self.lin = torch.nn.Linear(2 * h * w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.conv(x.permute(0, 3, 1, 2)).flatten(1))


class ChannelsFirst(torch.nn.Module):
    def __init__(self, c: int, h: int, w: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(c, 2, 1)
        self.lin = torch.nn.Linear(2 * h * w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.conv(x).flatten(1))


def _hand_ids(h: int, w: int, c: int, p: int, last: bool) -> np.ndarray:
    n_cols = -(-w // p)
    ids = np.zeros((h, w, c) if last else (c, h, w), dtype=np.int64)
    for i in range(h):
        for j in range(w):
            if last:
                ids[i, j, :] = (i // p) * n_cols + j // p
            else:
                ids[:, i, j] = (i // p) * n_cols + j // p
    return ids


def _truth(model: torch.nn.Module, x: np.ndarray, ids: np.ndarray) -> np.ndarray:
    xt = torch.tensor(x, requires_grad=True)
    model(xt[None]).sum().backward()
    assert xt.grad is not None
    wx = (xt.grad * xt).detach().numpy()
    return np.array([wx[ids == g].sum() for g in range(int(ids.max()) + 1)])


@pytest.mark.parametrize(("h", "w", "p", "method"), [(4, 6, 2, "exact_shapley"), (5, 7, 3, "exact_shapley"),
                                                     (32, 32, 4, "permutation_shapley")])
def test_patches_tile_the_pixels_of_a_channels_last_cnn(h: int, w: int, p: int, method: str) -> None:
    x = np.random.default_rng(1).normal(size=(h, w, 3))
    model = ChannelsLast(h, w).double()
    kw: dict[str, Any] = {"budget": 2 + 4 * ((-(-h // p)) * (-(-w // p)) - 1)} if method == "permutation_shapley" else {}
    got = np.asarray(tribute.explain(model, x[None], method=method, baseline=0.0,
                                     groups=tribute.patches(p), progress=False, **kw).values)[0]
    np.testing.assert_allclose(got, _truth(model, x, _hand_ids(h, w, 3, p, last=True)), rtol=0, atol=1e-9)


def test_channel_axis_names_the_layout_where_the_model_does_not() -> None:
    x = np.random.default_rng(2).normal(size=(1, 8, 8, 3))
    w = np.random.default_rng(3).normal(size=(8 * 8 * 3,))

    def f(a: np.ndarray) -> np.ndarray:
        return a.reshape(len(a), -1) @ w

    got = np.asarray(tribute.explain(f, x, method="exact_shapley", baseline=0.0,
                                     groups=tribute.patches(4, channel_axis=-1), progress=False).values)[0]
    ids = _hand_ids(8, 8, 3, 4, last=True)
    wx = (w.reshape(8, 8, 3) * x[0])
    np.testing.assert_allclose(got, [wx[ids == g].sum() for g in range(4)], rtol=0, atol=1e-12)


def test_an_image_shape_that_reads_two_ways_is_refused_naming_both() -> None:
    x = np.random.default_rng(2).normal(size=(1, 8, 8, 3))
    with pytest.raises(InputError) as err:
        tribute.explain(lambda a: a.reshape(len(a), -1).sum(1), x, method="exact_shapley",
                        groups=tribute.patches(4), progress=False)
    text = str(err.value)
    assert "(8, 8)" in text and "(8, 3)" in text and "channel_axis=-1" in text and "channel_axis=0" in text


@pytest.mark.parametrize("bad", [1, 2, True, 0.0, "last"])
def test_a_bad_channel_axis_is_refused(bad: object) -> None:
    with pytest.raises(InputError, match="channel_axis"):
        tribute.patches(2, channel_axis=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("axis", [None, 0])
def test_channels_first_patches_tile_the_last_two_axes(axis: int | None) -> None:
    x = np.random.default_rng(4).normal(size=(3, 4, 6))
    model = ChannelsFirst(3, 4, 6).double()
    got = np.asarray(tribute.explain(model, x[None], method="exact_shapley", baseline=0.0,
                                     groups=tribute.patches(2, channel_axis=axis), progress=False).values)[0]
    np.testing.assert_allclose(got, _truth(model, x, _hand_ids(4, 6, 3, 2, last=False)), rtol=0, atol=1e-9)


@pytest.mark.parametrize(("model", "shape", "hint"), [
    ("channels_last", (32, 32, 3), "groups=tribute.patches(2) (256 players"),
    ("numpy", (32, 32, 3), "groups=tribute.patches(2, channel_axis=-1) (256 players"),
    ("channels_first", (3, 32, 32), "groups=tribute.patches(2) (256 players")])
def test_the_memory_hint_suggests_patches_of_the_pixels(model: str, shape: tuple[int, ...], hint: str) -> None:
    # the hint counted (32, 3) patches of an (H, W, C) image: patches(2) "(16 x 2 players)",
    # a grouping that split channels and that tile pixels of whole columns
    w = np.ones(int(np.prod(shape)))
    net: object = {"channels_last": ChannelsLast(32, 32), "channels_first": ChannelsFirst(3, 32, 32),
                   "numpy": lambda a: a.reshape(len(a), -1) @ w}[model]
    x = np.random.default_rng(0).random((1, *shape)).astype(np.float32)
    with pytest.raises(Exception) as err:
        tribute.explain(net, x, method="kernel_shap", max_memory="100MB", progress=False)
    assert hint in str(err.value)
