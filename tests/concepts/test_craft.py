"""CRAFT (Fel et al. 2023): NMF, Sobol concept importance, concept maps, recursion.

References: an exactly low-rank non-negative matrix (reconstructed to < 1e-6), scikit-learn's
NMF objective, scipy's NNLS; total Sobol indices of an additive concept head in closed form;
a hand-built two-detector CNN whose concepts are known, and a CNN trained on the fly on images
with two planted patterns (slow; also ``tribute bench --suite concepts``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from scipy.optimize import nnls

import tribute
from tribute.bench.concept_suite import PATTERN, run_concept_suite, two_pattern_images
from tribute.datasets import PLUS, RING
from tribute.errors import InputError
from tribute.methods._nmf import nmf, nmf_transform

# ---------------------------------------------------------------------------- NMF


@pytest.mark.parametrize("init", ["nndsvd", "random"])
def test_nmf_reconstructs_an_exactly_low_rank_matrix(init: str) -> None:
    rng = np.random.default_rng(0)
    a = rng.random((40, 5)) @ rng.random((5, 30))
    fit = nmf(a, 5, init=init, tol=1e-14, max_iter=20000)
    assert fit.error < 1e-6, fit.error
    assert fit.U.min() >= 0 and fit.W.min() >= 0
    np.testing.assert_allclose(np.linalg.norm(fit.W, axis=1), 1.0)
    np.testing.assert_allclose(fit.U @ fit.W, a, atol=1e-5 * a.max())
    assert fit.error == pytest.approx(np.linalg.norm(a - fit.U @ fit.W) / np.linalg.norm(a), abs=1e-9)


def test_nmf_objective_matches_sklearn() -> None:
    """On a noisy matrix (no exact factorisation) the local optima of both solvers agree within
    2% of the relative error; the tolerance allows for different local minima."""
    sk = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(1)
    a = rng.random((60, 6)) @ rng.random((6, 25)) + 0.05 * rng.random((60, 25))
    ours = nmf(a, 6, tol=1e-10, max_iter=3000)
    ref = sk.NMF(n_components=6, init="nndsvda", solver="cd", tol=1e-10, max_iter=3000, random_state=0)
    u = ref.fit_transform(a)
    ref_err = np.linalg.norm(a - u @ ref.components_) / np.linalg.norm(a)
    assert ours.converged
    assert ours.error <= ref_err * 1.02, (ours.error, ref_err)


def test_nmf_transform_is_nonnegative_least_squares() -> None:
    rng = np.random.default_rng(2)
    W = rng.random((4, 12))
    a = rng.random((10, 12))
    u = nmf_transform(a, W)
    for i in range(10):
        ref, _ = nnls(W.T, a[i])
        np.testing.assert_allclose(u[i], ref, atol=1e-6)


def test_nmf_transform_is_exact_at_its_defaults_on_a_correlated_basis() -> None:
    """aud35t: CRAFT calls nmf_transform with its defaults. HALS stopped by a relative decrease
    of 1e-6 stopped early on correlated concept rows: coefficients off by up to 0.17 (exact: 1e-15)."""
    rng = np.random.default_rng(1)
    W = np.abs(rng.normal(size=(4, 20))) + 2.0
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    u_true = rng.random((30, 4))
    u = nmf_transform(u_true @ W, W)
    np.testing.assert_allclose(u, u_true, atol=1e-8)
    # rows off the cone: the same answer as scipy's NNLS on the full p x r system
    b = rng.random((12, 20))
    u = nmf_transform(b, W)
    ref = np.array([nnls(W.T, row)[0] for row in b])
    np.testing.assert_allclose(u, ref, atol=1e-8)
    assert u.min() >= 0


def test_nmf_refuses_bad_input() -> None:
    with pytest.raises(InputError, match=r"negative entries \(min -1\)"):
        nmf(np.array([[1.0, -1.0], [0.0, 2.0]]), 1)
    with pytest.raises(InputError, match="rank=0"):
        nmf(np.ones((3, 3)), 0)
    with pytest.raises(InputError, match=r"2-D matrix.*\(3,\)"):
        nmf(np.ones(3), 1)
    with pytest.raises(InputError, match="a has 3 features but W has 4"):
        nmf_transform(np.ones((2, 3)), np.ones((1, 4)))


# ---------------------------------------------------------------------------- a CNN with known concepts


class Detectors(torch.nn.Module):
    """Two matched filters (plus, ring) thresholded by a ReLU and widened by a max pool (layer
    ``"pool"``, non-negative), then global average pooling and a linear head: the class-1
    logit is additive in the two detector maps (``2 x plus + 1 x ring``)."""

    def __init__(self) -> None:
        super().__init__()
        self.pad = torch.nn.ZeroPad2d((2, 3, 2, 3))
        self.conv = torch.nn.Conv2d(1, 2, PATTERN)
        self.relu = torch.nn.ReLU()
        self.pool = torch.nn.MaxPool2d(3, stride=1, padding=1)
        self.gap = torch.nn.AdaptiveAvgPool2d(1)
        self.head = torch.nn.Linear(2, 2)
        with torch.no_grad():
            for k, t in enumerate((PLUS, RING)):
                tt = torch.from_numpy(t.astype(np.float32))
                self.conv.weight[k, 0] = tt - (1 - tt)  # +1 on the pattern, -1 off it
            assert self.conv.bias is not None
            self.conv.bias.fill_(-10.0)
            self.head.weight.copy_(torch.tensor([[-1.0, -1.0], [2.0, 1.0]]))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.gap(self.pool(self.relu(self.conv(self.pad(x))))).flatten(1))


@pytest.fixture(scope="module")
def planted() -> tuple[Detectors, np.ndarray, object]:
    data = two_pattern_images(200, 24, seed=3)
    pos = np.flatnonzero(data.y == 1)[:6]
    return Detectors(), pos, data


def _pool_acts(model: Detectors, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.pool(model.relu(model.conv(model.pad(torch.from_numpy(x))))).double().numpy()


def test_sobol_indices_of_an_additive_concept_head_equal_the_closed_form(planted: tuple) -> None:
    """logit = b + sum_k m_k c_k with c_k = mean_pos(u_k) (W_k . w): S_T,k = c_k^2 / sum_j c_j^2."""
    model, pos, data = planted
    pos = pos[:2]
    res = tribute.craft(model, data.X[pos], layer="pool", target=1, n_concepts=2, crop_size=12, resize=False,
                        n_designs=256, seed=0)
    acts = _pool_acts(model, data.X[pos])  # images x 2 x H x W
    w = model.head.weight[1].detach().double().numpy()
    for i in range(len(pos)):
        u = nmf_transform(acts[i].reshape(2, -1).T, res.concepts)  # positions x concepts
        c = u.mean(axis=0) * (res.concepts @ w)
        expected = c**2 / np.sum(c**2)
        np.testing.assert_allclose(res.image_importances[i], expected, atol=0.02)
    assert res.importances.shape == res.stderr.shape == (2,)
    np.testing.assert_allclose(res.importances, res.image_importances.mean(0))


def test_one_image_stderr_covers_the_closed_form(planted: tuple) -> None:
    """With one image the standard error is the Sobol estimator's own, from independent
    replicates (one scrambled sequence's points are not independent): over seeds the
    closed-form indices lie within 3 standard errors (it would fail for a collapsed stderr)."""
    model, pos, data = planted
    acts = _pool_acts(model, data.X[pos[:1]])
    w = model.head.weight[1].detach().double().numpy()
    inside = 0
    for seed in range(8):
        res = tribute.craft(model, data.X[pos[:1]], layer="pool", target=1, n_concepts=2, crop_size=12,
                            resize=False, n_designs=64, seed=seed)
        u = nmf_transform(acts[0].reshape(2, -1).T, res.concepts)
        c = u.mean(axis=0) * (res.concepts @ w)
        expected = c**2 / np.sum(c**2)
        assert np.all(np.isfinite(res.stderr)) and np.all(res.stderr > 0)
        inside += int(np.all(np.abs(res.importances - expected) <= 3 * res.stderr))
    assert inside >= 7, inside


def test_concepts_and_maps_find_the_two_detectors(planted: tuple) -> None:
    model, pos, data = planted
    res = tribute.craft(model, data.X[pos], layer="pool", target=1, n_concepts=2, crop_size=12, resize=False,
                        n_designs=32, seed=0)
    # each concept is one detector channel
    match = np.argmax(res.concepts, axis=1)
    assert sorted(match) == [0, 1]
    assert np.all(np.max(res.concepts, axis=1) > 0.99)
    assert res.concept_maps.shape == (len(pos), 2, 24, 24)
    assert res.reconstruction_error < 0.05
    # the maximum of each concept's map lies in its pattern's 6 x 6 box on every image
    for k, name in enumerate(("plus", "ring")):
        concept = int(np.flatnonzero(match == k)[0])
        maps = res.concept_maps[:, concept]
        arg = maps.reshape(len(pos), -1).argmax(axis=1)
        rows, cols = arg // 24, arg % 24
        r0, c0 = data.corners[name][pos].T
        assert np.all((rows >= r0) & (rows < r0 + PATTERN) & (cols >= c0) & (cols < c0 + PATTERN)), name
    # the plus has twice the ring's weight in the head: it is the more important concept
    plus = int(np.flatnonzero(match == 0)[0])
    assert res.order()[0] == plus
    # top crops of a concept contain its pattern (the crop's coefficient is its largest)
    top = res.top_crops[plus, 0]
    assert res.coefficients[top, plus] == res.coefficients[:, plus].max()
    assert res.crops.shape[1:] == (1, 12, 12) and res.crop_boxes.shape == (res.crops.shape[0], 4)
    n_crops = res.crops.shape[0]
    assert res.n_evals == n_crops + len(pos) + len(pos) * 32 * (2 + 2)


def test_same_seed_same_result_and_plot(planted: tuple) -> None:
    model, pos, data = planted
    kw: dict[str, Any] = dict(layer="pool", target=1, n_concepts=2, crop_size=12, n_designs=8, n_crops=4)
    a = tribute.run_analysis("craft", model, data.X[pos[:3]], seed=5, **kw)
    b = tribute.craft(model, data.X[pos[:3]], seed=5, **kw)
    np.testing.assert_array_equal(a.importances, b.importances)
    np.testing.assert_array_equal(a.concepts, b.concepts)
    assert a.crops.shape[2:] == (24, 24)  # resize=True (the paper's default)
    fig = a.plot(image=1)
    assert fig.axes and "CRAFT concepts" in fig._suptitle.get_text()
    with pytest.raises(InputError, match="image=7"):
        a.plot(image=7)
    info = tribute.analyses()["craft"]
    assert info.kind == "concept" and info.returns == "CRAFTResult" and "Fel" in info.paper


def test_recursive_decomposition_splits_a_concept_at_an_earlier_layer(planted: tuple) -> None:
    model, pos, data = planted
    res = tribute.craft(model, data.X[pos], layer="pool", target=1, n_concepts=2, crop_size=12, resize=False,
                        n_designs=16, seed=0)
    sub = tribute.craft_decompose(model, res, 0, layer="relu", n_concepts=2, top_fraction=0.3, n_designs=16)
    assert sub.parent == ("pool", 0) and sub.layer == "relu"
    kept = sub.crops.shape[0]
    assert kept == int(np.ceil(0.3 * res.crops.shape[0]))
    # the kept crops are the parent's crops that express concept 0 most
    order = np.argsort(-res.coefficients[:, 0], kind="stable")[:kept]
    np.testing.assert_array_equal(sub.crop_boxes, res.crop_boxes[np.sort(order)])
    assert sub.concepts.shape == (2, 2) and sub.concept_maps.shape == res.concept_maps.shape
    assert np.all(sub.importances >= 0)
    with pytest.raises(InputError, match="layer='pool' is the layer the concepts were found at"):
        tribute.craft_decompose(model, res, 0, layer="pool")
    with pytest.raises(InputError, match=r"concept=5 must be a concept index in 0..1"):
        tribute.craft_decompose(model, res, 5, layer="relu")


def test_negative_activations_are_refused_and_the_model_is_left_as_it_was(planted: tuple) -> None:
    model, pos, data = planted
    model.train()
    hooks = sum(len(m._forward_hooks) for m in model.modules())
    with pytest.raises(InputError, match=r"layer='conv' has negative activations.*follows a ReLU"):
        tribute.craft(model, data.X[pos], layer="conv", target=1, n_concepts=2)
    assert model.training and all(m.training for m in model.modules())
    assert sum(len(m._forward_hooks) for m in model.modules()) == hooks
    model.eval()
    with pytest.raises(InputError, match=r"crop_size=30 exceeds the images' shorter side 24"):
        tribute.craft(model, data.X[pos], layer="pool", target=1, crop_size=30)
    with pytest.raises(InputError, match=r"n_concepts=100 exceeds the 96 crops"):
        tribute.craft(model, data.X[pos], layer="pool", target=1, n_concepts=100)
    with pytest.raises(InputError, match=r"images must be a float batch.*\(24, 24\)"):
        tribute.craft(model, data.X[0, 0], layer="pool", target=1)
    with pytest.raises(InputError, match="target=5 must index a column"):
        tribute.craft(model, data.X[pos], layer="pool", target=5, n_concepts=2, n_designs=2, n_crops=2)


# ---------------------------------------------------------------------------- trained CNN (bench)


@pytest.mark.slow
def test_planted_patterns_in_a_trained_cnn_are_found() -> None:
    """The ``concepts`` bench suite at reduced size: the plus is matched by a concept whose maps
    overlap it far above chance (IoU 0.018 at 24 x 24: chance_iou) and point into its box."""
    r = run_concept_suite(n_images=8, n_designs=16, size=24, crop_size=10, train_steps=150, n_train=600)
    assert r.accuracy > 0.95
    assert r.iou["plus"][r.matched["plus"]] > 0.4
    assert r.pointing["plus"][r.matched["plus"]] > 0.9
    assert r.matched["plus"] != r.matched["ring"]


def test_rank_above_the_matrix_dimensions_is_refused() -> None:
    # rank 7 of a 20 x 5 matrix left two zero rows in W (documented unit-norm rows)
    with pytest.raises(InputError, match="rank=7 exceeds min"):
        nmf(np.random.default_rng(0).random((20, 5)), 7)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(3, 2))
    with pytest.raises(InputError, match="n_concepts=5 exceeds the 3 channels"):
        tribute.craft(net, torch.randn(2, 1, 8, 8), layer="1", target=0, n_concepts=5, n_crops=4, n_designs=8)


def test_several_images_stderr_covers_the_closed_form() -> None:
    """aud35t: the standard error over several images must include the Sobol estimator's own
    error. With one set of designs shared by every image that error was common to all images,
    the spread over images missed it: on this conv-ReLU-average-pool-linear net (additive in
    the concept coefficients, so the total indices have a closed form) the top concept's error
    was 8x its standard error (z-scores of sd 8.0 over 40 seeds; 85% beyond 2 stderr)."""
    torch.manual_seed(1)
    conv, head = torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.Linear(6, 4)
    net = torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), head)
    g = torch.Generator().manual_seed(0)
    images = torch.nn.functional.avg_pool2d(torch.rand(4, 1, 18, 18, generator=g), 3, stride=1)  # 4 x 1 x 16 x 16
    with torch.no_grad():
        acts = torch.relu(conv(images)).double().numpy()
    w = head.weight[2].detach().double().numpy()
    inside = 0
    for seed in range(10):
        res = tribute.craft(net, images, layer="1", target=2, n_concepts=3, n_crops=4, n_designs=32, seed=seed)
        truth = []
        for a in acts:
            u = np.array([nnls(res.concepts.T, p)[0] for p in a.reshape(6, -1).T])
            c = u.mean(axis=0) * (res.concepts @ w)
            truth.append(c**2 / np.sum(c**2))
        inside += int(np.all(np.abs(res.importances - np.mean(truth, axis=0)) <= 3 * res.stderr))
    assert inside >= 8, inside


def test_several_images_are_deterministic_by_seed_with_independent_designs() -> None:
    """rev35b: per-image designs come from the seed (same seed, same numbers); two copies of one
    image get different designs (so different estimates), else their errors would be shared."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(6, 4))
    images = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    kw: dict[str, Any] = dict(layer="1", target=2, n_concepts=3, n_crops=4, n_designs=16)
    r1, r2 = tribute.craft(net, images, seed=5, **kw), tribute.craft(net, images, seed=5, **kw)
    np.testing.assert_array_equal(r1.image_importances, r2.image_importances)
    np.testing.assert_array_equal(r1.stderr, r2.stderr)
    twin = tribute.craft(net, torch.cat([images[:1], images[:1]]), seed=0, **kw)
    assert not np.array_equal(twin.image_importances[0], twin.image_importances[1])


def test_two_images_stderr_covers_the_closed_form(planted: tuple) -> None:
    """With 2 images the spread over images has one degree of freedom: alone it covered the closed
    form only 0.71-0.77 of the time (review rev35b); bounded below by the images' pooled estimator
    errors it covers (stop 35)."""
    model, pos, data = planted
    acts = _pool_acts(model, data.X[pos[:2]])
    w = model.head.weight[1].detach().double().numpy()
    inside = 0
    for seed in range(12):
        res = tribute.craft(model, data.X[pos[:2]], layer="pool", target=1, n_concepts=2, crop_size=12,
                            resize=False, n_designs=32, seed=seed, sampler="random")
        truth = []
        for i in range(2):
            u = nmf_transform(acts[i].reshape(2, -1).T, res.concepts)
            c = u.mean(axis=0) * (res.concepts @ w)
            truth.append(c**2 / np.sum(c**2))
        inside += int(np.all(np.abs(res.importances - np.mean(truth, 0)) <= 1.96 * res.stderr))
    assert inside >= 10, inside
