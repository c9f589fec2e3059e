"""Issue #9 (stop 37, eng37): occlusion's tiling-window path.

Windows that tile the input (``stride == window``, or one position, along every axis) cover
each element exactly once: occlusion takes each element's credit straight from its window's
drop instead of the ``einsum`` of all drops with the 0/1 window indicators. These tests check
the owner map against the windows, the credits against a brute-force reference written here
(the model called on every occluded input, float64), and that the fast path gives the same
bits as the general one (which it replaces only where every term but one is an exact zero).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.methods import occlusion as occ
from tribute_testing import windows_long_way


@pytest.mark.parametrize("shape,win,st,tiles", [
    ((13,), (1,), (1,), True), ((10,), (3,), (3,), True), ((10,), (10,), (4,), True),
    ((10,), (3,), (2,), False), ((1, 8, 8), (1, 2, 2), (1, 2, 2), True),
    ((3, 7, 5), (2, 3, 2), (2, 3, 2), True), ((3, 7, 5), (2, 3, 2), (1, 2, 1), False),
    ((2, 6, 5), (2, 4, 5), (2, 3, 5), False), ((2, 6, 5), (2, 4, 5), (2, 4, 5), True),
])
def test_window_owner_is_the_one_window_covering_each_element(shape, win, st, tiles):
    owner = occ._window_owner(shape, win, st)
    if not tiles:
        assert owner is None
        return
    ind = windows_long_way(shape, win, st)
    assert owner is not None and owner.dtype == torch.int64
    assert bool((ind.sum(0) == 1).all())  # tiling: every element in exactly one window
    assert torch.equal(owner, ind.argmax(0))


class _TwoInputs(torch.nn.Module):
    """A model of two inputs (a 2x5x4 image and a 6-vector), float64, none of the suite's."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(37)
        self.w1 = torch.nn.Parameter(torch.randn(40, 5, generator=g, dtype=torch.float64))
        self.w2 = torch.nn.Parameter(torch.randn(6, 5, generator=g, dtype=torch.float64))
        self.head = torch.nn.Parameter(torch.randn(5, 3, generator=g, dtype=torch.float64))

    def forward(self, img: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(img.reshape(img.shape[0], -1) @ self.w1 + (vec ** 2) @ self.w2)
        return h @ self.head


def _brute_occlusion(model, inputs, baselines, windows, strides, target):
    """Mean drop ``f(x) - f(x with the window at its baseline)`` over the windows covering each
    element, per input, by calling the model on every occluded input."""
    with torch.no_grad():
        full = model(*inputs)[:, target]
        out = []
        for i, (x, b, win, st) in enumerate(zip(inputs, baselines, windows, strides)):
            shape = tuple(x.shape[1:])
            ind = windows_long_way(shape, win, st)
            credit = torch.zeros(x.shape[0], ind.shape[1], dtype=torch.float64)
            for k in range(ind.shape[0]):
                keep = (1.0 - ind[k]).reshape(shape)
                xs = list(inputs)
                xs[i] = x * keep + b * (1.0 - keep)
                credit += (full - model(*xs)[:, target])[:, None] * ind[k]
            out.append((credit / ind.sum(0).clamp(min=1.0)).reshape(x.shape))
        return out


@pytest.mark.parametrize("windows,strides", [
    (((1, 2, 2), (2,)), ((1, 2, 2), (2,))),  # both tile: the gather path
    (((2, 5, 4), (6,)), ((2, 5, 4), (6,))),  # one window per input
    (((1, 3, 2), (3,)), ((1, 2, 1), (1,))),  # overlapping: the einsum path
    (((1, 2, 2), (3,)), ((1, 2, 2), (2,))),  # one input tiles, the other overlaps
])
def test_occlusion_credits_match_brute_force_on_two_inputs(windows, strides):
    model = _TwoInputs().eval()
    g = torch.Generator().manual_seed(7)
    img = torch.randn(4, 2, 5, 4, generator=g, dtype=torch.float64)
    vec = torch.randn(4, 6, generator=g, dtype=torch.float64)
    b_img, b_vec = 0.25, -0.5
    attr = tribute.explain(model, (img, vec), method="occlusion", target=1,
                           baseline=(b_img, b_vec), window=windows, stride=strides,
                           progress=False)
    want = _brute_occlusion(model, (img, vec), (b_img, b_vec), windows, strides, 1)
    for got, ref in zip(attr.values, want):
        # the same drops summed in another order: a few ulps of the largest drop
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-13)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("window,stride", [((1, 2, 2), (1, 2, 2)), ((2, 3, 3), (2, 3, 3)),
                                           ((1, 3, 3), None), ((2, 6, 6), (2, 6, 6))])
@pytest.mark.parametrize("block_windows", [None, 5])
def test_tiling_fast_path_gives_the_einsum_paths_bits(monkeypatch, dtype, window, stride,
                                                      block_windows):
    if block_windows is not None:  # windows in blocks of 5 (72 players): the partial-block path
        from tribute.games import base

        monkeypatch.setattr(base, "VALUE_BLOCK_ELEMENTS", block_windows * 72)
    g = torch.Generator().manual_seed(11)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.GELU(), torch.nn.Flatten(),
        torch.nn.Linear(3 * 6 * 6, 4)).to(dtype).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype))
    x = torch.randn(5, 2, 6, 6, generator=g, dtype=torch.float64).to(dtype)
    kw = dict(method="occlusion", window=window, stride=stride, target=[0, 3], baseline=0.5,
              progress=False, batch_size=7)
    fast = tribute.explain(model, x, **kw)
    if occ._window_owner((2, 6, 6), window, stride or window) is not None:
        monkeypatch.setattr(occ, "_window_owner", lambda *a: None)  # the general path
    slow = tribute.explain(model, x, **kw)
    assert fast.values.dtype == slow.values.dtype == dtype
    assert fast.values.numpy().tobytes() == slow.values.numpy().tobytes()
    assert (fast.n_rows, fast.n_evals) == (slow.n_rows, slow.n_evals)


def test_tiling_path_keeps_einsum_path_for_non_finite_drops(monkeypatch):
    """A drop that overflows to inf takes the general path (inf * 0 there is NaN, as before)."""
    seen = []
    real = torch.einsum

    def spy(*a, **k):
        seen.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(torch, "einsum", spy)

    def f(x: np.ndarray) -> np.ndarray:
        return np.where(x[:, :1] > 0, 1e308, -1e308) * np.ones((1, 2))

    x = np.array([[1.0, 2.0, 3.0]])
    with np.errstate(over="ignore"):
        attr = tribute.explain(f, x, method="occlusion", window=1, baseline=-1.0, target=0,
                               progress=False)
    assert seen == ["bkt,kd->btd"]
    assert np.isinf(attr.values[0, 0])


def test_tiling_path_skips_einsum_for_finite_drops(monkeypatch):
    seen: list[tuple[object, ...]] = []

    def spy(*a: object, **k: object) -> None:
        seen.append(a)

    monkeypatch.setattr(torch, "einsum", spy)
    model = torch.nn.Sequential(torch.nn.Linear(13, 4), torch.nn.ReLU(),
                                torch.nn.Linear(4, 2)).double().eval()
    x = torch.linspace(-1, 1, 26, dtype=torch.float64).reshape(2, 13)
    attr = tribute.explain(model, x, method="occlusion", window=1, target=0, progress=False)
    ref = tribute.explain(model, x, method="feature_ablation", target=0, progress=False)
    assert not seen
    assert attr.values.numpy().tobytes() == ref.values.numpy().tobytes()
