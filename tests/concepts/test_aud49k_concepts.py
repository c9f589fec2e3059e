"""Audit aud49k (stop 49) of the concept methods.

CRAFT with one image and ``sampler="random"`` seeded the Sobol designs' torch generator with the
seed as given: ``seed=None`` (accepted: fresh draws) raised ``manual_seed expected a long`` and a
numpy integer seed (accepted by the argument check) raised ``an integer is required``, both after
the crops had run through the model. The importances are checked against Jansen's estimator
computed here by hand (designs from :func:`tribute.methods.sobol.sobol_designs`, coefficients by
scipy's NNLS, the model run with a hook that puts ``(u * m) W`` in place of the layer's output)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from scipy.optimize import nnls
from torch import nn

from tribute.methods.craft import craft, craft_decompose
from tribute.methods.sobol import replicate_count, sobol_designs


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).double().eval()


def _ratio(fa: np.ndarray, fb: np.ndarray, fc: np.ndarray) -> np.ndarray:
    return np.asarray(((fa[None] - fc) ** 2).mean(1) / (2 * np.var(np.r_[fa, fb])))


def _hand_importance(net: nn.Sequential, img: torch.Tensor, W: np.ndarray, target: int, n_designs: int,
                     seed: int) -> np.ndarray:
    """Total Sobol indices of the concepts ``W`` for one image (jackknifed over replicates from 8 designs)."""
    acts: dict[str, torch.Tensor] = {}
    h = net[3].register_forward_hook(lambda _m, _i, o: acts.__setitem__("a", o.detach()))
    with torch.no_grad():
        net(img[None])
    h.remove()
    c, hh, ww = acts["a"].shape[1:]
    u = np.stack([nnls(W.T, a)[0] for a in acts["a"][0].reshape(c, -1).T.numpy()])
    r = W.shape[0]
    reps = replicate_count(n_designs, "random")
    a, b = (t.numpy() for t in sobol_designs(r, n_designs, seed, "random", replicates=reps))

    def f(m: np.ndarray) -> float:
        rep = torch.from_numpy(((u * m[None]) @ W).T.reshape(1, c, hh, ww))
        hk = net[3].register_forward_hook(lambda *_: rep)
        with torch.no_grad():
            y = float(net(img[None])[0, target])
        hk.remove()
        return y

    fa, fb = np.array([f(m) for m in a]), np.array([f(m) for m in b])
    fc = np.array([[f(np.where(np.arange(r) == j, b[k], a[k])) for k in range(n_designs)] for j in range(r)])
    st = _ratio(fa, fb, fc)
    if n_designs >= 8:
        idx = np.arange(n_designs) % reps
        out = np.stack([_ratio(fa[idx != q], fb[idx != q], fc[:, idx != q]) for q in range(reps)])
        st = reps * st - (reps - 1) * out.mean(0)
    return st


@pytest.mark.parametrize("n_designs", [4, 8])
def test_craft_one_image_random_sampler_takes_numpy_seeds_and_matches_hand_sobol(n_designs: int) -> None:
    net = _net()
    img = torch.rand(1, 3, 10, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    kw: dict[str, Any] = {"layer": "3", "target": 1, "n_concepts": 3, "n_crops": 8, "n_designs": n_designs,
                          "sampler": "random"}
    seed: Any = np.int64(3)  # craft's check takes numpy integers
    r = craft(net, img, seed=seed, **kw)  # TypeError on main
    truth = _hand_importance(net, img[0], r.concepts, 1, n_designs, 3)
    np.testing.assert_allclose(r.importances, truth, rtol=0, atol=1e-12)
    r_int = craft(net, img, seed=3, **kw)
    assert np.array_equal(r.importances, r_int.importances) and np.array_equal(r.concepts, r_int.concepts)


def test_craft_one_image_random_sampler_runs_with_seed_none() -> None:
    net = _net()
    img = torch.rand(1, 3, 10, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    rows = [0]
    h = net.register_forward_pre_hook(lambda _m, a: rows.__setitem__(0, rows[0] + int(a[0].shape[0])))
    try:
        kw: dict[str, Any] = {"layer": "3", "target": 0, "n_concepts": 2, "n_crops": 6, "n_designs": 8,
                              "sampler": "random", "seed": None}
        r1 = craft(net, img, **kw)  # RuntimeError 'manual_seed expected a long' on main
        assert r1.n_evals == rows[0] == 6 + 1 + 8 * (2 + 2)
        r2 = craft(net, img, **kw)
        sub: dict[str, Any] = {"n_concepts": 2, "n_designs": 8, "sampler": "random", "seed": None}
        d = craft_decompose(net, r1, 0, layer="1", **sub)
    finally:
        h.remove()
    assert np.isfinite(r1.importances).all() and np.isfinite(d.importances).all()
    # fresh draws: other crops, other designs
    assert not np.array_equal(r1.crop_boxes, r2.crop_boxes)
    assert not np.array_equal(r1.importances, r2.importances)
    assert not net.training and all(not m._forward_hooks for m in net.modules())


def _hand_top_k(a: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest of each row (ties: the lower index first), by sorting (index, value) pairs."""
    out = np.zeros(a.shape, dtype=bool)
    for i, row in enumerate(a.tolist()):
        for j, _ in sorted(enumerate(row), key=lambda p: (-p[1], p[0]))[:k]:
            out[i, j] = True
    return out


def test_top_k_selection_refuses_nan_credits() -> None:
    from tribute.errors import InputError
    from tribute.methods.shap_kl import top_k_selection

    for bad in (np.array([[0.1, np.nan, 0.5, 0.2], [0.3, 0.1, 0.2, 0.0]]), np.full((2, 4), np.nan),
                torch.tensor([[1.0, float("nan"), 0.0]])):
        with pytest.raises(InputError, match="NaN"):  # main kept the first k / never the NaN players, silently
            top_k_selection(bad, 2)


def test_top_k_selection_still_ranks_finite_and_infinite_credits() -> None:
    from tribute.methods.shap_kl import top_k_selection

    rng = np.random.default_rng(0)
    base = rng.normal(size=(5, 6))
    cases: list[tuple[Any, np.ndarray | None]] = [
        (base, base), (base.astype(np.float32), base.astype(np.float32).astype(np.float64)),
        (np.round(base * 2), np.round(base * 2)),  # ties
        (np.array([[1.0, np.inf, -np.inf, 0.0, 2.0, 3.0]]), np.array([[1.0, np.inf, -np.inf, 0.0, 2.0, 3.0]])),
        (rng.integers(-3, 3, size=(4, 6)), None), (torch.from_numpy(base), base),
        (torch.from_numpy(base).float().requires_grad_(True), base.astype(np.float32).astype(np.float64)),
        (torch.from_numpy(base).to(torch.bfloat16), torch.from_numpy(base).to(torch.bfloat16).double().numpy()),
        (base.tolist(), base), (np.zeros((3, 6)), np.zeros((3, 6))),
    ]
    n = 0
    for given, truth in cases:
        t = np.asarray(given) if truth is None else truth
        for k in (1, 3, 6):
            assert np.array_equal(top_k_selection(given, k), _hand_top_k(t, k))
            n += 1
    assert n == 30
