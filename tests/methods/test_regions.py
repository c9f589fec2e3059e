"""Region methods: segmentation, XRAI, extremal perturbations, submodular region search.

Reference tests: Felzenszwalb-Huttenlocher against a slow set-based Kruskal transcription of
the paper's algorithm; region growth and the greedy searches against hand-computable orders on
additive games; the area loss in closed form; extremal masks on a linear model against the
top-k set; every model row counted; bad input refused with the argument and the fix.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import BudgetError, InputError, UnsupportedModelError
from tribute.methods.regions import (
    area_loss,
    dilate,
    felzenszwalb,
    gaussian_blur,
    grow_regions,
    smooth_mask,
)
from tribute_testing import make_cnn, make_mlp


# --------------------------------------------------------------------------- segmentation
def _fh_reference(img: np.ndarray, k: float, min_size: int) -> np.ndarray:
    """Felzenszwalb-Huttenlocher as written in the paper, with explicit sets (slow)."""
    _, h, w = img.shape
    edges = []
    for y, x in itertools.product(range(h), range(w)):
        for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
            yy, xx = y + dy, x + dx
            if 0 <= yy < h and 0 <= xx < w:
                wt = float(np.sqrt(((img[:, y, x] - img[:, yy, xx]) ** 2).sum()))
                edges.append((wt, y * w + x, yy * w + xx))
    order = sorted(range(len(edges)), key=lambda i: edges[i][0])  # stable, like argsort
    comp = {i: frozenset([i]) for i in range(h * w)}
    internal = {frozenset([i]): 0.0 for i in range(h * w)}
    for i in order:
        wt, a, b = edges[i]
        ca, cb = comp[a], comp[b]
        if ca is cb:
            continue
        if wt <= min(internal[ca] + k / len(ca), internal[cb] + k / len(cb)):
            merged = ca | cb
            internal[merged] = max(internal[ca], internal[cb], wt)
            for p in merged:
                comp[p] = merged
    for i in order:
        _, a, b = edges[i]
        ca, cb = comp[a], comp[b]
        if ca is not cb and (len(ca) < min_size or len(cb) < min_size):
            merged = ca | cb
            for p in merged:
                comp[p] = merged
    labels = np.zeros(h * w, dtype=np.int64)
    for n, s in enumerate({id(s): s for s in comp.values()}.values()):
        labels[list(s)] = n
    return labels.reshape(h, w)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist()))
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("k", "min_size"), [(0.3, 1), (1.0, 1), (1.0, 4), (5.0, 3)])
def test_felzenszwalb_matches_the_papers_algorithm(seed: int, k: float, min_size: int) -> None:
    img = np.random.default_rng(seed).random((2, 7, 6))
    ours = felzenszwalb(img, scale=k, sigma=0.0, min_size=min_size)
    assert _same_partition(ours, _fh_reference(img, k, min_size))
    # labels are 0..n-1 in raster order of first pixel
    first = [int(np.flatnonzero(ours.ravel() == i)[0]) for i in range(ours.max() + 1)]
    assert first == sorted(first)


def test_felzenszwalb_piecewise_constant_images() -> None:
    img = np.zeros((10, 12))
    img[2:6, 3:8] = 1.0
    img[7:, :4] = 0.5
    lab = felzenszwalb(img, scale=0.01, sigma=0.0, min_size=1)
    assert lab.max() + 1 == 3  # the background and the two rectangles
    assert len(np.unique(lab[2:6, 3:8])) == 1 and len(np.unique(lab[7:, :4])) == 1
    assert felzenszwalb(img, scale=1e6, sigma=0.0, min_size=1).max() == 0  # one segment
    # a 1-pixel speck is merged into a neighbour once min_size > 1
    img2 = np.zeros((6, 6))
    img2[3, 3] = 1.0
    assert felzenszwalb(img2, scale=0.01, sigma=0.0, min_size=1).max() == 1
    assert felzenszwalb(img2, scale=0.01, sigma=0.0, min_size=2).max() == 0


def test_blur_and_dilation() -> None:
    img = np.random.default_rng(0).random((1, 9, 9))
    out = gaussian_blur(img, 1.0)
    assert out.shape == img.shape and abs(out.mean() - img.mean()) < 0.05
    np.testing.assert_allclose(gaussian_blur(np.full((1, 5, 5), 3.0), 2.0), 3.0)
    m = np.zeros((7, 7), dtype=bool)
    m[3, 3] = True
    d = dilate(m, 1)
    assert d.sum() == 5 and d[2, 3] and d[3, 2] and not d[2, 2]  # a disk of radius 1
    assert dilate(m, 2).sum() == 13


# --------------------------------------------------------------------------- region growth
def test_grow_regions_by_density() -> None:
    attr = torch.tensor([4.0, 0.0, 1.0, 1.0, 3.0, -1.0], dtype=torch.float64)
    area = torch.ones(6, dtype=torch.float64)
    masks = torch.tensor([[1, 1, 0, 0, 0, 0],   # density 2
                          [0, 0, 1, 1, 0, 0],   # density 1
                          [0, 0, 0, 0, 1, 0],   # density 3
                          [1, 0, 0, 0, 1, 0]],  # density 3.5 -> first
                         dtype=torch.bool)
    gain, rank = grow_regions(masks, attr, area)
    # order: {0,4} (3.5); then {0,1} adds pixel 1 only (0.0), {2,3} (1.0), {4} adds nothing
    np.testing.assert_allclose(gain.numpy(), [3.5, 0.0, 1.0, 1.0, 3.5, -1.0])
    assert rank.tolist() == [0, 2, 1, 1, 0, 3]  # pixel 5: the uncovered rest, last


def test_grow_regions_ranks_regions_by_gain_not_by_addition_step() -> None:
    # Y = {0, 1} has density 2 and is added first; X = {1, 2} then adds pixel 2 alone, density
    # 2.5 > 2. The reference (PAIR saliency, XRAI._xrai) ranks regions by gain: X before Y,
    # so that the rank agrees with the map's values.
    attr = torch.tensor([6.0, -2.0, 2.5, 1.0, 0.0], dtype=torch.float64)
    masks = torch.tensor([[1, 1, 0, 0, 0],   # Y
                          [0, 1, 1, 0, 0],   # X
                          [0, 0, 0, 1, 0]],  # Z, density 1; pixel 4: the uncovered rest
                         dtype=torch.bool)
    gain, rank = grow_regions(masks, attr, torch.ones(5, dtype=torch.float64))
    np.testing.assert_allclose(gain.numpy(), [2.0, 2.0, 2.5, 1.0, 0.0])
    assert rank.tolist() == [1, 1, 0, 2, 3]
    # the uncovered rest stays last even when it is denser than a region
    gain, rank = grow_regions(masks, attr + torch.tensor([0.0, 0.0, 0.0, 0.0, 9.0],
                                                         dtype=torch.float64),
                              torch.ones(5, dtype=torch.float64))
    assert gain[4] == 9.0 and rank.tolist() == [1, 1, 0, 2, 3]

def test_grow_regions_keeps_a_region_adding_exactly_min_new() -> None:
    # XRAI (PAIR saliency's _xrai) drops a mask only when it adds FEWER than min_pixel_diff
    # pixels: the second region adds exactly 2 new pixels with min_new=2 and must be kept
    attr = torch.tensor([5.0, 5.0, 1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    area = torch.ones(6, dtype=torch.float64)
    masks = torch.tensor([[1, 1, 0, 0, 0, 0],   # density 5: first
                          [1, 1, 1, 1, 0, 0]],  # then 2 new pixels of density 1
                         dtype=torch.bool)
    gain, rank = grow_regions(masks, attr, area, min_new=2.0)
    np.testing.assert_allclose(gain.numpy(), [5.0, 5.0, 1.0, 1.0, 0.0, 0.0])
    assert rank.tolist() == [0, 0, 1, 1, 2, 2]
    # a region adding one pixel (fewer than min_new=2) is dropped: the uncovered rest
    short = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    gain, rank = grow_regions(short, attr, area, min_new=2.0)
    np.testing.assert_allclose(gain.numpy(), [5.0, 5.0, 0.5, 0.5, 0.5, 0.5])
    assert rank.tolist() == [0, 0, 1, 1, 1, 1]
    # min_new given as a fraction of a 10 x 10 image (0.02 * 100 = 2 pixels) through XRAI
    x = torch.zeros(1, 1, 10, 10, dtype=torch.float64)
    x[0, 0, :, :5] = 1.0
    model = _linear(10, 10)
    attr_x = tribute.explain(model, x, method="xrai", target=0, steps=2, scales=(50.0,),
                             sigma=0.0, min_size=0.02, dilation=0.0, min_new=0.02)
    assert int(attr_x.extra["n_regions"][0, 0]) == 2  # both halves, no uncovered rest


# --------------------------------------------------------------------------- models
class _Linear(torch.nn.Module):
    """f(x) = sum(W * x) per class: IG and every marginal gain in closed form."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bchw,kchw->bk", x, self.w)


def _linear(h: int = 8, w: int = 8, classes: int = 2) -> _Linear:
    g = torch.Generator().manual_seed(0)
    return _Linear(torch.randn(classes, 1, h, w, generator=g, dtype=torch.float64))


def _patches8() -> np.ndarray:
    return np.repeat(np.repeat(np.arange(4).reshape(2, 2), 4, 0), 4, 1)[None]


def test_xrai_on_groups_ranks_groups_by_ig_density() -> None:
    model = _linear()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    attr = tribute.explain(model, x, method="xrai", target=1, groups=_patches8(), steps=4)
    contrib = (model.w[1].detach() * x).reshape(2, 2, 4, 2, 4).sum((2, 4)).reshape(2, 4)
    np.testing.assert_allclose(attr.values.numpy(), contrib.numpy() / 16, rtol=1e-10)
    order = np.argsort(-contrib.numpy(), axis=1, kind="stable")
    rank = attr.extra["region_rank"][:, 0]
    for b in range(2):
        assert rank[b][order[b]].tolist() == [0, 1, 2, 3]
    assert attr.n_evals == 5  # 4 IG points + v(N)


def test_xrai_dense_pixel_map_holds_region_densities() -> None:
    # two flat rectangles on a flat background: segments are the rectangles (and the rest)
    model = _Linear(torch.zeros(1, 1, 16, 16, dtype=torch.float64))
    with torch.no_grad():
        model.w[0, 0, 2:6, 2:6] = 2.0
        model.w[0, 0, 9:14, 8:15] = 0.5
    x = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    x[0, 0, 2:6, 2:6] = 1.0
    x[0, 0, 9:14, 8:15] = 0.6
    attr = tribute.explain(model, x, method="xrai", target=0, steps=2, dilation=0.0,
                           min_new=0.0, scales=(50.0,), sigma=0.0)
    v = attr.values[0, 0].numpy()
    np.testing.assert_allclose(v[2:6, 2:6], 2.0)  # IG = w * x exactly on a linear model
    np.testing.assert_allclose(v[9:14, 8:15], 0.3)
    rank = attr.extra["region_rank"][0, 0]
    assert (rank[2:6, 2:6] == 0).all() and (rank[9:14, 8:15] == 1).all()
    assert (v[0, 0] == 0.0) and rank[0, 0] == 2


# --------------------------------------------------------------------------- submodular
@pytest.mark.parametrize("search", ["lazy", "greedy"])
def test_submodular_on_an_additive_game_orders_by_contribution(search: str) -> None:
    model = _linear()
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    attr = tribute.explain(model, x, method="submodular_regions", target=0, groups=_patches8(),
                           search=search, budget=200)
    contrib = (model.w[0].detach() * x).reshape(3, 2, 4, 2, 4).sum((2, 4)).reshape(3, 4).numpy()
    rank = attr.extra["region_rank"][:, 0]
    for b in range(3):
        assert rank[b][np.argsort(-contrib[b], kind="stable")].tolist() == [0, 1, 2, 3]
    # marginal gain of region i = (keep_weight + remove_weight) * contribution_i
    gains = attr.extra["gains"][:, 0]
    np.testing.assert_allclose(gains, 2 * -np.sort(-contrib, axis=1), rtol=1e-9)
    # additive game: gains decrease along the order, so the credit is the gain itself
    np.testing.assert_allclose(attr.values.numpy(), 2 * contrib, rtol=1e-9)


def _reference_greedy(model: torch.nn.Module, x: torch.Tensor, groups: np.ndarray,
                      t: int) -> list[int]:
    """Plain greedy with direct model calls: F(S) = f(x_S) - f(x_{N-S}), baseline 0."""
    g = torch.from_numpy(groups[0])
    n = int(g.max()) + 1
    chosen: list[int] = []
    for _ in range(n):
        best, best_f = -1, -np.inf
        for i in range(n):
            if i in chosen:
                continue
            keep = torch.isin(g, torch.tensor([*chosen, i])).to(x.dtype)
            with torch.no_grad():
                f = float(model(x * keep)[0, t] - model(x * (1 - keep))[0, t])
            if f > best_f:
                best, best_f = i, f
        chosen.append(best)
    return chosen


def test_submodular_greedy_matches_a_direct_reference_on_a_cnn() -> None:
    model = make_cnn()
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    groups = np.repeat(np.repeat(np.arange(16).reshape(4, 4), 2, 0), 2, 1)[None]
    attr = tribute.explain(model, x, method="submodular_regions", target=2, groups=groups,
                           search="greedy", budget=300)
    order = np.argsort(attr.extra["region_rank"][0, 0], kind="stable").tolist()
    assert order == _reference_greedy(model, x, groups, 2)
    assert attr.n_evals == 2 + 2 * sum(range(1, 17))  # v(N), v(empty), 2 per candidate
    lazy = tribute.explain(model, x, method="submodular_regions", target=2, groups=groups,
                           budget=300)
    assert lazy.n_evals < attr.n_evals


def test_submodular_dense_uses_superpixels_and_counts_rows() -> None:
    model = make_cnn()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    attr = tribute.explain(model, x, method="submodular_regions", target=1, budget=60,
                           min_size=0.1)
    assert tuple(attr.values.shape) == (2, 1, 8, 8) and attr.n_evals <= 60
    assert attr.n_rows == 2 * attr.n_evals
    rank = attr.extra["region_rank"][:, 0]
    for b in range(2):  # every region's pixels share one score; ranks 0..R-1
        r = int(attr.extra["n_regions"][b])
        assert sorted(np.unique(rank[b]).tolist()) == list(range(r))


# --------------------------------------------------------------------------- extremal
def test_area_loss_closed_form() -> None:
    m = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]], dtype=torch.float64)
    loss = area_loss(m, torch.tensor([0.25, 0.5], dtype=torch.float64))
    np.testing.assert_allclose(loss.numpy(), [0.0, 0.25])
    sm = smooth_mask(torch.full((3, 2, 2), 0.5, dtype=torch.float64), (8, 8), 1.0)
    assert sm.shape == (3, 8, 8)
    np.testing.assert_allclose(sm.numpy(), 0.5)


def test_extremal_on_a_linear_model_keeps_the_top_players() -> None:
    model = _linear()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    groups = np.repeat(np.repeat(np.arange(16).reshape(4, 4), 2, 0), 2, 1)[None]
    attr = tribute.explain(model, x, method="extremal_perturbation", target=0, groups=groups,
                           areas=(0.25,), perturbation="baseline", steps=300)
    # v(m) = sum_j m_j c_j + const with c_j the group contribution: the best mask of area 1/4
    # keeps the 4 largest c_j
    c = (model.w[0].detach() * x).reshape(2, 4, 2, 4, 2).sum((2, 4)).reshape(2, 16).numpy()
    masks = attr.extra["masks"][:, 0, 0, 0]
    for b in range(2):
        assert set(np.flatnonzero(masks[b] > 0.5)) == set(np.argsort(-c[b])[:4])
    assert attr.n_evals == 1 + 300


def test_area_loss_with_sizes_is_the_loss_of_the_pixel_vector() -> None:
    gen = torch.Generator().manual_seed(4)
    masks = torch.rand(3, 7, dtype=torch.float64, generator=gen)
    sizes = torch.randint(1, 9, (3, 7), generator=gen).to(torch.float64)
    areas = torch.tensor([0.1, 0.35, 0.8], dtype=torch.float64)
    got = area_loss(masks, areas, sizes)
    for i in range(3):  # each column's value once per pixel, then the unweighted loss
        pix = masks[i].repeat_interleave(sizes[i].long())
        np.testing.assert_allclose(got[i].item(), area_loss(pix[None], areas[i : i + 1]).item(),
                                   rtol=1e-12)
    # equal sizes (areas whole numbers of columns): the unweighted loss
    whole = torch.tensor([1 / 7, 3 / 7, 6 / 7], dtype=torch.float64)
    np.testing.assert_allclose(area_loss(masks, whole, torch.full_like(masks, 3.0)).numpy(),
                               area_loss(masks, whole).numpy(), rtol=1e-12)


def test_extremal_area_is_a_fraction_of_the_image_on_unequal_groups() -> None:
    # left half: one group of 128 pixels; right half: 32 groups of 4 pixels. The area loss
    # counted players, so the 0.1 mask kept the big group (3% of the players, 53% of the image)
    torch.manual_seed(5)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(16, 2)).double().eval()
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    g = np.zeros((16, 16), dtype=np.int64)
    g[:, 8:] = 1 + (np.arange(16)[:, None] // 2) * 4 + (np.arange(8)[None, :] // 2)
    attr = tribute.explain(net, x, method="extremal_perturbation", target=0, areas=(0.1,),
                           groups=g[None], steps=80)
    masks = attr.extra["masks"][:, 0, 0, 0]  # batch x players
    for b in range(2):
        kept = (masks[b][g] >= 0.5).mean()  # fraction of the image's pixels kept
        assert abs(kept - 0.1) < 0.03, kept


def test_extremal_dense_preserve_and_delete() -> None:
    model = make_cnn()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    attr = tribute.explain(model, x, method="extremal_perturbation", target=1, steps=5,
                           variant="both", areas=(0.1, 0.3))
    assert tuple(attr.values.shape) == (2, 1, 8, 8)
    assert attr.n_evals == 1 + 5 * 4 and attr.n_rows == 2 * attr.n_evals
    assert attr.extra["masks"].shape == (2, 1, 2, 2, 8, 8)
    assert ((attr.extra["masks"] >= 0) & (attr.extra["masks"] <= 1)).all()



@pytest.mark.parametrize("variant", ["preserve", "delete"])
def test_extremal_final_values_are_the_outputs_at_the_reported_masks(variant: str) -> None:
    """``extra["final_values"]`` came from the last step's forward, but the masks reported were
    those after one more update: values and masks did not belong together."""
    model = make_cnn()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    groups = (torch.arange(8)[:, None] // 4) * 2 + torch.arange(8)[None, :] // 4  # 2 x 2 patches
    attr = tribute.explain(model, x, method="extremal_perturbation", target=1, steps=7, areas=(0.25, 0.5),
                           variant=variant, groups=groups[None], baseline=0.0, perturbation="baseline")
    masks = attr.extra["masks"]  # batch x targets x variants x areas x players
    assert masks.shape == (2, 1, 1, 2, 4)
    for i, a in itertools.product(range(2), range(2)):
        m = torch.from_numpy(masks[i, 0, 0, a])[groups]
        kept = m * x[i] if variant == "preserve" else (1 - m) * x[i]
        with torch.no_grad():
            hand = float(model(kept[None])[0, 1])
        assert attr.extra["final_values"][i, 0, 0, a] == pytest.approx(hand, rel=1e-9, abs=1e-12)


# --------------------------------------------------------------------------- counting
@pytest.mark.parametrize("method,kw", [
    ("xrai", {"steps": 6}),
    ("submodular_regions", {"budget": 80, "min_size": 0.1}),
    ("extremal_perturbation", {"budget": 25, "areas": (0.2,)}),
])
def test_rows_at_the_model_equal_n_evals(method: str, kw: dict[str, Any]) -> None:
    model = make_cnn()
    seen = {"rows": 0}

    def pre(_m: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen["rows"] += int(args[0].shape[0])

    x = torch.rand(3, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    h = model.register_forward_pre_hook(pre)
    try:
        attr = tribute.explain(model, x, method=method, target=[0, 3], **kw)
    finally:
        h.remove()
    assert seen["rows"] == attr.n_rows
    if method == "submodular_regions":
        # each sample searches on its own budget (small42): rows are the samples' own
        # evaluations, n_evals the most any of them spent
        assert attr.n_rows <= 3 * attr.n_evals
    else:
        assert attr.n_rows == 3 * attr.n_evals
    if "budget" in kw:
        assert attr.n_evals <= int(kw["budget"])
    assert tuple(attr.values.shape) == (3, 2, 1, 8, 8)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("method", ["xrai", "extremal_perturbation", "submodular_regions"])
def test_region_methods_refuse_non_images(method: str) -> None:
    model = make_mlp(6, 3)
    x = torch.rand(2, 6, dtype=torch.float64)
    with pytest.raises(UnsupportedModelError, match=r"\(C, H, W\).*got per-sample shape.*\(6,\)"):
        tribute.explain(model, x, method=method, target=0)


@pytest.mark.parametrize("method", ["xrai", "extremal_perturbation", "submodular_regions"])
def test_region_methods_refuse_tiny_images(method: str) -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(9, 2)).double()
    with pytest.raises(InputError, match=r"3x3 pixels are smaller than the segmentation scale"):
        tribute.explain(net, torch.rand(1, 1, 3, 3, dtype=torch.float64), method=method, target=0)


def test_region_methods_refuse_budgets_too_small_for_one_region() -> None:
    model = make_cnn()
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(BudgetError, match=r"budget=5 .*at least 10"):
        tribute.explain(model, x, method="submodular_regions", target=0,
                        groups=np.repeat(np.arange(4), 16).reshape(1, 8, 8), budget=5)
    with pytest.raises(BudgetError, match=r"budget=10 is too small for 'submodular_regions'.*regions"):
        tribute.explain(model, x, method="submodular_regions", target=0, budget=10,
                        min_size=0.01)
    with pytest.raises(BudgetError, match=r"budget=3 .*at least 5"):
        tribute.explain(model, x, method="extremal_perturbation", target=0, budget=3)
    with pytest.raises(InputError, match=r"min_size=0.999 .*one segment would cover"):
        tribute.explain(model, x, method="xrai", target=0, min_size=0.999)


def test_model_unchanged_after_a_failure_mid_search() -> None:
    model = make_cnn()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = {"n": 0}

    def pre(_m: torch.nn.Module, _a: tuple[torch.Tensor, ...]) -> None:
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("planted failure")

    h = model.register_forward_pre_hook(pre)
    try:
        for method in ("xrai", "extremal_perturbation", "submodular_regions"):
            calls["n"] = 0
            with pytest.raises(RuntimeError, match="planted failure"):
                tribute.explain(model, torch.rand(1, 1, 8, 8, dtype=torch.float64),
                                method=method, target=0, budget=60, batch_size=4)
    finally:
        h.remove()
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())



def test_region_methods_refuse_bad_hyperparameters() -> None:
    model = make_cnn()
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(InputError, match=r"areas=\(0.0, 0.5\) must be .*fractions in \(0, 1\)"):
        tribute.explain(model, x, method="extremal_perturbation", target=0, areas=(0.0, 0.5))
    with pytest.raises(InputError, match=r"scales=\(\) must be a non-empty tuple"):
        tribute.explain(model, x, method="xrai", target=0, scales=())
    with pytest.raises(InputError, match=r"keep_weight and remove_weight are both 0"):
        tribute.explain(model, x, method="submodular_regions", target=0, keep_weight=0.0,
                        remove_weight=0.0)
