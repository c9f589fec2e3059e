"""LIME's ridge fit and KernelSHAP's constrained fit stream over blocks of columns (issue #9).

Forced down to a few columns (samples) per block, so that several blocks and blocks of
unequal size run, both give the unblocked formulas' results: LIME's against a plain reference
of the fit, its HC2 standard errors and its R² kept here, KernelSHAP's against
``solve_constrained`` and ``_stderr`` over all samples at once (what ``attribute`` ran before).
Tiny blocks may take other BLAS kernels than one product over all columns, so the comparison
is to rounding; at the default block sizes the results were bit-identical in our measurements.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

from tribute.games import FeatureGame
from tribute.methods import _blocks
from tribute.methods import lime as lime_mod
from tribute.methods import shapley_sampling as ks_mod
from tribute.methods._blocks import block_bounds
from tribute.methods._stderr import StderrWarning, inflate
from tribute.methods.lime import Lime, weighted_ridge
from tribute.methods.shapley_sampling import KernelShap, solve_constrained
from tribute.models import as_model


# ----------------------------------------------------------------------------- references
def _ridge_reference(x: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float,
                     support: int | None = None,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The unblocked weighted ridge: ``(beta n x R, intercept R, stderr n x R, r2 R)``.

    Without a penalty and with a draw that misses part of the sampler's ``support``, the t
    factor takes the distinct coalitions' dof (aud49e), counted here by ``np.unique``, and the
    residuals HC3's leverage correction (est50)."""
    k, n = x.shape
    xa = np.concatenate([np.ones((k, 1)), x], axis=1)
    xw = xa * w[:, None]
    a = xa.T @ xw
    a[1:, 1:] += alpha * np.eye(n)
    a_inv = np.linalg.pinv(a, hermitian=True)
    coef = a_inv @ (xw.T @ y)
    resid = y - xa @ coef
    u = xw @ a_inv
    lev = np.einsum("kj,kj->k", u, xa)
    used = int((w > 0).sum())
    dof = used - (n + 1)
    if dof < 1 or bool((lev[w > 0] >= 1.0 - 1e-9).any()):
        se = np.full((n, y.shape[1]), np.nan)
    else:
        distinct = len(np.unique(x[w > 0], axis=0))
        partial = alpha == 0 and support is not None and distinct < support
        # HC3 there (est50), HC2 elsewhere
        r2 = resid**2 / (1.0 - np.clip(lev, None, 1.0 - 1e-12))[:, None] ** (2 if partial else 1)
        var = np.clip((u[:, 1:] ** 2).T @ r2, 0.0, None)
        t_dof = min(dof, distinct - (n + 1)) if partial else dof
        se = inflate(torch.from_numpy(np.sqrt(var)).T, t_dof).T.numpy()
    wn = w / w.sum()
    ss_res = wn @ resid**2
    ss_tot = wn @ (y - wn @ y) ** 2
    tiny = 1e-12 * (1.0 + wn @ y**2)
    ok = ss_tot > tiny
    score = np.where(ok, 1.0 - ss_res / np.where(ok, ss_tot, 1.0), (ss_res <= tiny).astype(np.float64))
    return coef[1:], coef[0], se, score


def _close(got: Any, want: Any) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    assert np.array_equal(np.isnan(got), np.isnan(want))
    finite = np.abs(want[np.isfinite(want)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * scale)


@pytest.fixture
def tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Blocks of a few columns (samples) in both solvers; records every block plan used.

    The solvers ask for blocks of one sample (LIME) or three (KernelSHAP); the plan gets one
    more per block and no grain, so that odd counts come out in blocks of unequal sizes."""
    plans: list[list[int]] = []

    def spy(total: int, per: int, grain: int = 1) -> list[int]:
        out = block_bounds(total, per + 1, 1)
        plans.append(out)
        return out

    monkeypatch.setattr(lime_mod, "_BLOCK_BYTES", 1)
    monkeypatch.setattr(lime_mod, "_MIN_BLOCK_MACS", 1)
    monkeypatch.setattr(lime_mod, "block_bounds", spy)
    monkeypatch.setattr(ks_mod, "_BLOCK_BYTES", 1)
    monkeypatch.setattr(ks_mod, "_MIN_BLOCK", 3)
    monkeypatch.setattr(ks_mod, "block_bounds", spy)
    return plans


def _several(plans: list[list[int]]) -> None:
    """Some plan had several blocks, of unequal sizes (a shorter or longer last one)."""
    sizes = [np.diff(p) for p in plans if len(p) > 2]
    assert sizes and any(len(set(s.tolist())) > 1 for s in sizes), plans


def _game(n: int, b: int, target: Any, seed: int = 0) -> FeatureGame:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(n, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    x = torch.randn(b, n, dtype=torch.float64)
    return FeatureGame(as_model(net, "torch"), x, target=target)


# ----------------------------------------------------------------------------- blocks
@pytest.mark.parametrize("total,per,grain", [(1, 1, 1), (7, 3, 1), (10, 4, 1), (5, 5, 1),
                                             (5, 8, 1), (17800, 256, 16), (17800, 300, 16),
                                             (600, 32, 16), (33, 16, 16), (40, 3, 16), (0, 3, 16),
                                             (9, 4, 2)])
def test_block_bounds_cover_everything_in_near_equal_blocks(total: int, per: int,
                                                            grain: int) -> None:
    b = block_bounds(total, per, grain)
    assert b[0] == 0 and b[-1] == total
    sizes = np.diff(b)
    assert (sizes > 0).all() or total == 0
    assert all(x % grain == 0 for x in b[:-1])
    want = min(max(-(-total // per), 1), max(total // grain, 1))
    assert len(sizes) == want
    assert sizes.max() - sizes.min() < 2 * grain
    assert _blocks.__all__ == ["GRAIN", "block_bounds"]


# ----------------------------------------------------------------------------- LIME
LIME_CASES = [
    # (players, samples, target, method kwargs, budget)
    (6, 1, 0, {}, 64),
    (6, 2, [0, 2], {}, 64),
    (6, 3, [0, 1, 2], {"sampling": "stratified", "alpha": 0.0}, 100),
    (5, 7, [1, 2], {"sampling": "uniform_size", "kernel_width": float("inf")}, 40),
    (6, 11, 1, {"distance": "hamming"}, 48),
    (5, 7, [0, 2], {"sampling": "exhaustive"}, None),
    (6, 3, [0, 1], {}, 5),  # no residual degrees of freedom: NaN standard errors
]


@pytest.mark.parametrize("n,b,target,kw,budget", LIME_CASES)
def test_lime_blocked_fit_is_the_unblocked_fit(tiny_blocks: list[list[int]], n: int, b: int,
                                               target: Any, kw: dict[str, Any],
                                               budget: int | None) -> None:
    game = _game(n, b, target, seed=n + b)
    me = Lime(**kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attr = me.attribute(game, budget=budget, seed=4)
    k = 2**n if me.sampling == "exhaustive" else budget
    assert k is not None
    masks, w = lime_mod._cached_design(n, k, me.sampling, 4, me.distance, float(me.kernel_width))
    vals = game.value(masks)  # B x K x T
    t = vals.shape[2]
    y = vals.permute(1, 0, 2).reshape(k, b * t).numpy()
    support = 2**n - 1 if me.sampling == "uniform_size" and n >= 2 else 2**n
    beta, icpt, se, score = _ridge_reference(masks.numpy(), y, w.numpy(), float(me.alpha), support)
    flat = np.asarray(attr.values).reshape(b, t, n)
    _close(flat, beta.T.reshape(b, t, n))
    _close(np.asarray(attr.extra["intercept"]).reshape(b, t), icpt.reshape(b, t))
    _close(np.asarray(attr.extra["score"]).reshape(b, t), score.reshape(b, t))
    undefined = any(issubclass(c.category, StderrWarning) for c in caught)
    if me.sampling == "exhaustive":
        assert attr.stderr is None
    else:
        _close(np.asarray(attr.stderr).reshape(b, t, n), se.T.reshape(b, t, n))
        assert undefined == bool(np.isnan(se).all())
    if budget == 5:
        assert undefined and np.isnan(np.asarray(attr.stderr)).all()
    if b >= 3:
        _several(tiny_blocks)
    assert all(p[-1] == b for p in tiny_blocks)  # whole samples per block


@pytest.mark.parametrize("k,r", [(64, 13), (5, 5)])
def test_weighted_ridge_blocked_is_the_unblocked_fit(tiny_blocks: list[list[int]], k: int,
                                                     r: int) -> None:
    g = torch.Generator().manual_seed(k)
    x = (torch.rand(k, 6, generator=g, dtype=torch.float64) < 0.5).to(torch.float64)
    y = torch.randn(k, r, generator=g, dtype=torch.float64)
    w = torch.rand(k, generator=g, dtype=torch.float64) + 0.1
    if k > 7:
        beta, icpt, se = weighted_ridge(x, y, w, 0.5)
    else:
        with pytest.warns(StderrWarning):
            beta, icpt, se = weighted_ridge(x, y, w, 0.5)
    want = _ridge_reference(x.numpy(), y.numpy(), w.numpy(), 0.5)
    _close(beta, want[0])
    _close(icpt, want[1])
    _close(se, want[2])
    assert bool(torch.isnan(se).all()) == (k <= 7)
    _several(tiny_blocks)


def test_lime_streamed_r2_is_weighted_r2() -> None:
    """The R² the fit takes from its own residuals is weighted_r2's (which recomputes the
    predictions) to rounding, with and without residual degrees of freedom."""
    masks, w = lime_mod._cached_design(6, 64, "bernoulli", 0, "cosine", 0.25)
    y = torch.randn(64, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for rows in (64, 5):
        yy = y[:rows]

        def fill(j0: int, j1: int, out: np.ndarray, yy: torch.Tensor = yy) -> None:
            out[...] = yy[:, j0:j1].numpy()

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StderrWarning)
            beta, icpt, _se, r2 = lime_mod._ridge_stream(masks[:rows], w[:rows], 1.0, 11, fill)
        want = lime_mod.weighted_r2(masks[:rows], yy, w[:rows], beta, icpt)
        torch.testing.assert_close(r2, want, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- KernelSHAP
KS_CASES = [
    # (players, samples, target, budget)
    (6, 1, 0, 40),
    (6, 2, [0, 2], 40),
    (6, 3, [0, 1, 2], 30),
    (6, 7, 1, 50),
    (5, 10, [0, 2], 2**5),  # exact: every coalition, standard errors 0
    (6, 7, [1, 2], 12),  # too few pairs: NaN standard errors with a warning
]


@pytest.mark.parametrize("n,b,target,budget", KS_CASES)
def test_kernel_shap_blocked_solve_is_the_unblocked_solve(tiny_blocks: list[list[int]], n: int,
                                                          b: int, target: Any,
                                                          budget: int) -> None:
    game = _game(n, b, target, seed=n * b)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attr = KernelShap().attribute(game, budget=budget, seed=2)
    undefined = any(issubclass(c.category, StderrWarning) for c in caught)
    d = ks_mod._cached_design(n, budget - 2, 2, "kernel")
    y = game.value(d.masks) - game.empty()[:, None, :]
    delta = game.full() - game.empty()
    phi, proj = solve_constrained(d.masks, d.w, y, delta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StderrWarning)
        se = ks_mod._stderr(d.masks, d.w, y, d.strata, proj, phi)
    t = y.shape[2]
    _close(np.asarray(attr.values).reshape(b, t, n), phi.numpy())
    _close(np.asarray(attr.stderr).reshape(b, t, n), se.numpy())
    assert undefined == bool(torch.isnan(se).all())
    if budget == 12:
        assert undefined
    if budget == 2**n:
        assert float(se.abs().max()) == 0.0
    if b >= 4:
        _several(tiny_blocks)
    sum_warn = sum(issubclass(c.category, StderrWarning) for c in caught)
    assert sum_warn <= 1  # one warning per call, not one per block
