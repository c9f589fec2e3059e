"""Deletion / insertion with tied credits, and on grouped players (audit small37, stop 37).

Truths are computed here without tribute's metric code: the expected curve under uniformly
random tie-breaking by enumerating every subset of the tied block a step cuts (the first ``j``
players of a uniformly random order of a block are a uniformly random ``j``-subset), and the
trapezoid over the fraction removed. Games are float64 closed forms (no random model draws).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import numpy as np
import pytest
import torch
from metric_toys import TableGame, table_attr

import tribute
from tribute.metrics import deletion, evaluate, insertion

Values = Callable[[np.ndarray], np.ndarray]  # masks K x n -> K values


def _expected_curve(phi: np.ndarray, v: Values, counts: np.ndarray, insert: bool) -> np.ndarray:
    """E[v] after removing (inserting) the top-k players, ties broken uniformly at random."""
    n = phi.size
    out = []
    for k in counts:
        if k == 0:
            chosen = [np.array([], dtype=int)]
        else:
            cut = np.sort(phi)[::-1][k - 1]  # the credit of the k-th player: its block is cut
            block = np.flatnonzero(phi == cut)
            above = np.flatnonzero(phi > cut)
            chosen = [np.concatenate([above, np.array(c, dtype=int)])
                      for c in itertools.combinations(block, k - above.size)]
        masks = np.zeros((len(chosen), n)) if insert else np.ones((len(chosen), n))
        for row, c in enumerate(chosen):
            masks[row, c] = 1.0 if insert else 0.0
        out.append(v(masks).mean())
    return np.asarray(out)


def _area(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)))


W = np.array([3.0, -1.0, 2.0, 0.5, 4.0, -2.0, 1.5, 1.0])


def _v(masks: np.ndarray, perm: np.ndarray | None = None) -> np.ndarray:
    """A nonlinear game: a squared linear score plus a pairwise interaction of players 0 and 4."""
    m = masks if perm is None else masks[:, np.argsort(perm)]  # column j of m is player perm[j]
    s = m @ W
    return s ** 2 / 10 + 3.0 * m[:, 0] * m[:, 4]


def _game(perm: np.ndarray | None = None) -> TableGame:
    def fn(m: torch.Tensor) -> torch.Tensor:
        flat = m.reshape(-1, m.shape[-1]).numpy()
        return torch.from_numpy(_v(flat, perm)).reshape(m.shape[:-1])

    return TableGame(fn, W.size, 1)


# the credits have three tied blocks: {1, 2, 3} at 1.0, {5, 6, 7} at 0.0 and {0, 4} at 2.0
PHI = np.array([2.0, 1.0, 1.0, 1.0, 2.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("insert", [False, True])
def test_ties_give_the_expected_curve_and_do_not_depend_on_column_order(insert: bool) -> None:
    # before stop 37 ties were broken by player index: permuting the columns of the game and
    # the credits changed the score (all-zero credits on sum_i (i+1) x_i: 35.75 vs 19.25)
    metric = insertion if insert else deletion
    steps = 8
    counts = np.arange(steps + 1)
    truth = _area(_expected_curve(PHI, _v, counts, insert), counts / W.size)
    game = _game()
    res = metric(game, table_attr(game, PHI[None]), steps=steps, tie_orders=400, seed=3)
    se = float(res.extra["stderr_ties"][0])
    assert 0 < se < 0.2 * abs(truth)
    assert abs(res.scores[0] - truth) <= 4 * se
    for perm_seed in (0, 1):
        perm = np.random.default_rng(perm_seed).permutation(W.size)
        pgame = _game(perm)
        pres = metric(pgame, table_attr(pgame, PHI[perm][None]), steps=steps, tie_orders=400,
                      seed=3)
        pse = float(pres.extra["stderr_ties"][0])
        assert abs(pres.scores[0] - res.scores[0]) <= 4 * np.hypot(se, pse)
        assert abs(pres.scores[0] - truth) <= 4 * pse


def test_all_zero_credits_score_the_random_order_expectation() -> None:
    # linear game sum_i w_i x_i, w = 1..10: removing k random players leaves 55 (1 - k/10) in
    # expectation; its mean height over k = 0..10 is 27.5 whatever the column order (exact
    # here: an antithetic pair of orders gives each player positions summing to n + 1)
    w = np.arange(1.0, 11.0)
    scores = []
    for ww in (w, w[::-1]):
        wt = torch.from_numpy(ww.copy())
        game = TableGame(lambda m, wt=wt: (m * wt).sum(-1), 10, 1)
        res = deletion(game, table_attr(game, np.zeros((1, 10))), steps=10, tie_orders=200)
        se = float(res.extra["stderr_ties"][0])
        assert abs(res.scores[0] - 27.5) <= 4 * se + 1e-12
        scores.append(res.scores[0])
    assert abs(scores[0] - 27.5) < 1.5 and abs(scores[1] - 27.5) < 1.5  # was 35.75 / 19.25


@pytest.mark.parametrize("insert", [False, True])
def test_untied_credits_give_exactly_the_index_free_curve_at_the_same_cost(insert: bool) -> None:
    metric = insertion if insert else deletion
    phi = np.array([0.3, -1.2, 2.5, 0.7, 1.1, -0.4, 0.05, 1.9])
    counts = np.round(np.arange(5) * W.size / 4).astype(int)
    truth = _area(_expected_curve(phi, _v, counts, insert), counts / W.size)
    evals = []
    for r in (1, 50):
        game = _game()
        res = metric(game, table_attr(game, phi[None]), steps=4, tie_orders=r, seed=r)
        assert res.scores[0] == pytest.approx(truth, rel=1e-13, abs=1e-13)
        assert res.extra["stderr_ties"][0] == 0.0
        evals.append(res.n_evals)
    assert evals[0] == evals[1]  # no tied step: one coalition per step whatever tie_orders


def test_tie_orders_is_checked() -> None:
    game = _game()
    with pytest.raises(tribute.InputError, match="tie_orders=0"):
        deletion(game, table_attr(game, PHI[None]), tie_orders=0)


# ------------------------------------------------- grouped players and superpixels (audit)
def _image_model() -> tuple[Callable[[torch.Tensor], torch.Tensor], np.ndarray]:
    """f(x) = tanh(<A, x>) + <B, x>^2 / 20 on 1 x 4 x 4 images; A, B fixed float64 grids."""
    a = np.arange(16, dtype=np.float64).reshape(1, 4, 4) / 8 - 1
    b = np.cos(np.arange(16, dtype=np.float64)).reshape(1, 4, 4)
    at, bt = torch.from_numpy(a), torch.from_numpy(b)

    def f(x: torch.Tensor) -> torch.Tensor:
        s = (x * at).flatten(1).sum(1)
        q = (x * bt).flatten(1).sum(1)
        return (torch.tanh(s) + q ** 2 / 20)[:, None]

    return f, np.stack([a, b])


@pytest.mark.parametrize("insert", [False, True])
def test_superpixel_deletion_matches_a_hand_computation(insert: bool) -> None:
    f, _ = _image_model()
    x = torch.from_numpy(np.linspace(-1, 2, 32).reshape(2, 1, 4, 4))
    groups = torch.zeros(1, 4, 4, dtype=torch.long)  # four 2 x 2 superpixels
    groups[:, :2, 2:], groups[:, 2:, :2], groups[:, 2:, 2:] = 1, 2, 3
    attr = tribute.explain(f, x, method="feature_ablation",
                           groups=groups, baseline=0.0)
    res = evaluate(f, x, attr, metric="insertion" if insert else "deletion", groups=groups,
                   baseline=0.0, steps=4)
    phi = attr.flat()[:, 0, :]
    for i in range(2):
        assert len(set(phi[i].tolist())) == 4  # untied: the curve is deterministic
        order = np.argsort(-phi[i], kind="stable")
        ys = []
        for k in range(5):
            keep = np.zeros(4) if insert else np.ones(4)
            keep[order[:k]] = 1.0 if insert else 0.0
            xi = x[i].numpy() * keep[groups.numpy()]
            ys.append(float(f(torch.from_numpy(xi[None]))[0, 0]))
        assert res.scores[i] == pytest.approx(_area(np.array(ys), np.arange(5) / 4), rel=1e-12)


def test_superpixel_ties_are_averaged_over_orders() -> None:
    # equal credits for superpixels 1 and 2: the step that removes one of them is the mean of
    # removing either, not always superpixel 1 (the lower index)
    f, _ = _image_model()
    x = torch.from_numpy(np.linspace(-1, 2, 16).reshape(1, 1, 4, 4))
    groups = torch.zeros(1, 4, 4, dtype=torch.long)
    groups[:, :2, 2:], groups[:, 2:, :2], groups[:, 2:, 2:] = 1, 2, 3
    attr = tribute.explain(f, x, method="feature_ablation", groups=groups, baseline=0.0)
    attr = dataclasses.replace(attr, values=torch.tensor([[3.0, 1.0, 1.0, 0.0]],
                                                         dtype=torch.float64))
    res = evaluate(f, x, attr, metric="deletion", groups=groups, baseline=0.0, steps=4,
                   tie_orders=8)

    def v(removed: list[int]) -> float:
        keep = np.ones(4)
        keep[removed] = 0.0
        return float(f(torch.from_numpy((x[0].numpy() * keep[groups.numpy()])[None]))[0, 0])

    ys = np.array([v([]), v([0]), (v([0, 1]) + v([0, 2])) / 2, v([0, 1, 2]), v([0, 1, 2, 3])])
    truth = _area(ys, np.arange(5) / 4)
    # a tied pair: every antithetic pair of orders removes each of the two once, so the
    # average is exact (and its standard error 0)
    assert res.scores[0] == pytest.approx(truth, rel=1e-12)
    assert float(res.extra["stderr_ties"][0]) == pytest.approx(0.0, abs=1e-12)
    # one order cannot estimate its own noise
    one = evaluate(f, x, attr, metric="deletion", groups=groups, baseline=0.0, steps=4,
                   tie_orders=1)
    assert np.isnan(one.extra["stderr_ties"][0])


def _impute(img: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """ROAD's linear imputation by a dense solve: each removed pixel is the weighted mean of
    its 8 in-image neighbours (1/6 direct, 1/12 diagonal), kept pixels fixed."""
    h, w = img.shape
    idx = np.arange(h * w).reshape(h, w)
    a = np.zeros((h * w, h * w))
    for i in range(h):
        for j in range(w):
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    if (di or dj) and 0 <= i + di < h and 0 <= j + dj < w:
                        a[idx[i, j], idx[i + di, j + dj]] = 1 / 6 if di == 0 or dj == 0 else 1 / 12
    deg = a.sum(1)
    u, k = np.flatnonzero(~keep.ravel()), np.flatnonzero(keep.ravel())
    lhs = np.diag(deg[u]) - a[np.ix_(u, u)]
    y = np.linalg.solve(lhs, a[np.ix_(u, k)] @ img.ravel()[k])
    out = img.ravel().copy()
    out[u] = y
    return out.reshape(h, w)


def test_road_on_superpixels_matches_a_hand_imputation() -> None:
    # noise=0: ROAD's MoRF / LeRF curves are deterministic; superpixels are removed whole
    a = np.cos(np.arange(36.0)).reshape(1, 6, 6) / 8  # tanh away from saturation
    at = torch.from_numpy(a)

    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh((x * at).flatten(1).sum(1))[:, None]

    x = torch.from_numpy(np.sin(np.arange(36.0) / 3).reshape(1, 1, 6, 6))
    groups = torch.from_numpy((np.arange(6)[:, None] // 2 * 3 + np.arange(6)[None] // 2)[None])
    attr = tribute.explain(f, x, method="feature_ablation", groups=groups, baseline=0.0)
    fr = (0.0, 2 / 9, 5 / 9, 7 / 9)
    res = evaluate(f, x, attr, metric="road", groups=groups, baseline=0.0, fractions=fr,
                   noise=0.0)
    phi = attr.flat()[0, 0]
    assert len(set(phi.tolist())) == 9
    curves = {}
    for name, order in (("morf", np.argsort(-phi, kind="stable")),
                        ("lerf", np.argsort(phi, kind="stable"))):
        ys = []
        for frac in fr:
            removed = order[: round(frac * 9)]
            keep = ~np.isin(groups.numpy()[0], removed)
            img = _impute(x[0, 0].numpy(), keep) if removed.size else x[0, 0].numpy()
            ys.append(float(f(torch.from_numpy(img[None, None]))[0, 0]))
        curves[name] = np.array(ys)
        # conjugate gradients stop at a relative residual of 1e-4 (noisy_linear_impute's tol)
        np.testing.assert_allclose(res.extra[name][0], curves[name], atol=1e-4)
    want = _area(curves["lerf"], np.array(fr)) / (fr[-1] - fr[0]) - \
        _area(curves["morf"], np.array(fr)) / (fr[-1] - fr[0])
    assert res.scores[0] == pytest.approx(want, abs=1e-4)
