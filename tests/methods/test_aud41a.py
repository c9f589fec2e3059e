"""aud41a: the analysis methods (rashomon, certified, responsiveness, label leakage, interactions)
checked against truths computed outside tribute (hand formulas, grids, enumeration); see
/work/notes41/r_aud41a.md."""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pytest
import torch
from scipy import optimize, special, stats

import tribute
from tribute.errors import InputError
from tribute.methods.certified import certified_attribution
from tribute.methods.rashomon import rashomon_interactions
from tribute.methods.responsiveness import (
    Actionability,
    feature_responsiveness,
    responsiveness_cost,
)
from tribute.methods.shap_kl import label_leakage


# ------------------------------------------------------------------------------ rashomon
def _two_logit_fit(X: np.ndarray, y: np.ndarray, *, seed: int, **cfg: Any) -> Any:
    """A 'model' giving two class scores: column 0 for the class "x0 x1 <= 0", column 1 for "> 0"."""
    def f(Z: np.ndarray) -> np.ndarray:
        s = Z[:, 0] * Z[:, 1] * (1.0 + 0.1 * seed)
        return np.stack([-s, s], 1)
    return f


@pytest.mark.parametrize("where", ["y", "y_eval"])
def test_rashomon_cross_entropy_refuses_negative_labels(where: str) -> None:
    # aud41a F1: labels -1 / 1 read the score column y (numpy's -1 is the last column), so the
    # examples of class -1 were scored with class 1's probability: candidate losses 0.996 / 1.043
    # (the models' true cross-entropy with -1 -> column 0 is 0.368 / 0.353), every FIS from those
    # wrong losses, no error
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = np.where(X[:, 0] * X[:, 1] > 0, 1, -1)
    kw: dict[str, Any] = {}
    if where == "y_eval":
        kw = {"X_eval": X, "y_eval": y}
        y = (y > 0).astype(np.int64)
    with pytest.raises(InputError, match=r"negative label -1.*0\.\.K-1"):
        rashomon_interactions(X, y, _two_logit_fit, n_candidates=2, epsilon=0.5, **kw)
    # labels 0 / 1 of the same data are read as before
    r = rashomon_interactions(X, (X[:, 0] * X[:, 1] > 0).astype(np.int64), _two_logit_fit, n_candidates=2,
                              epsilon=0.5, n_repeats=2)
    s = X[:, 0] * X[:, 1]
    lab = (s > 0).astype(np.int64)
    z = np.stack([-s, s], 1)
    logp = z - np.logaddexp(z[:, 0], z[:, 1])[:, None]
    assert r.candidate_losses[0] == pytest.approx(-logp[np.arange(200), lab].mean(), rel=1e-12)


# ------------------------------------------------------------------------------ certified
def test_certified_bounds_gap_and_radius_follow_from_the_frequencies() -> None:
    # hand-written: Clopper-Pearson at alpha / (2 players) per side, the gap
    # min_T lower - max_rest upper, and the radius solving TV(R) = gap / 2 with the closed-form
    # TV of two L2 balls (regularised incomplete beta) or cubes
    c = torch.tensor([1.0, 0.8, 0.6, 0.3], dtype=torch.float64)

    class Quadratic(torch.nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return (0.5 * c * z**2).sum(1, keepdim=True)

    x = torch.tensor([[1.0, 1.1, 0.5, 2.0], [0.3, -0.2, 0.1, 0.05]], dtype=torch.float64)
    n, P, D, noise, alpha = 300, 4, 4, 0.3, 0.1
    for smoothing in ("l2", "linf"):
        r = certified_attribution(Quadratic(), x, "saliency", noise=noise, smoothing=smoothing, k=2,
                                  n_samples=n, alpha=alpha, seed=3)
        cnt = np.round(r.frequency * n)
        np.testing.assert_allclose(cnt.sum(1), 2 * n)  # k = 2 players per draw
        a = alpha / (2 * P)
        lo = np.where(cnt > 0, stats.beta.ppf(a, cnt, n - cnt + 1), 0.0)
        hi = np.where(cnt < n, stats.beta.ppf(1 - a, cnt + 1, n - cnt), 1.0)
        np.testing.assert_allclose(r.lower, lo, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(r.upper, hi, rtol=1e-12, atol=1e-15)
        for b in range(2):
            T = list(r.topk[b])
            rest = [j for j in range(P) if j not in T]
            assert min(r.frequency[b, T]) >= max(r.frequency[b, rest])
            gap = lo[b, T].min() - hi[b, rest].max()
            assert r.gap[b] == pytest.approx(gap, rel=1e-12)
            if gap <= 0:
                assert r.radius[b] == 0.0
                continue
            if smoothing == "linf":
                R = 2 * noise * (1 - (1 - gap / 2) ** (1 / D))
            else:
                def tv_minus(e: float, half: float = gap / 2) -> float:
                    return float(1 - special.betainc((D + 1) / 2, 0.5, 1 - (e / (2 * noise)) ** 2) - half)

                R = optimize.brentq(tv_minus, 0.0, 2 * noise, xtol=1e-14)
            assert r.radius[b] == pytest.approx(R, rel=1e-9)


# ------------------------------------------------------------------------- responsiveness
def test_responsiveness_per_input_targets_against_a_grid() -> None:
    # three classes, a target per input, a continuous, a monotone, an immutable, an integer
    # and a one-hot feature; the truth: the share of a fine grid (continuous) or of every
    # integer / category that the arg-max sends to the target class
    W = torch.tensor([[1.0, -1, 0.5, 0, 0, 0], [0, 1, -1, 0.8, 0, 0], [-1, 0, 0.5, -0.7, 1, -1]],
                     dtype=torch.float64)

    class Net(torch.nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return torch.stack([z @ W[0] + torch.sin(3 * z[:, 0]), z @ W[1] + 0.3 * z[:, 1] ** 2, z @ W[2]], 1)

    net = Net()
    x = torch.tensor([[0.2, -0.5, 1.0, 2.0, 0.0, 1.0], [1.0, 0.3, -0.2, 0.0, 1.0, 0.0],
                      [-0.4, 0.9, 0.1, 1.0, 1.0, 0.0]], dtype=torch.float64)
    act = Actionability(immutable=["x2"], monotone={"x1": 1}, integer=["x3"], categorical={"c": ["x4", "x5"]},
                        bounds={"x0": (-2, 2), "x1": (-2, 2), "x3": (0, 5)})
    tg = np.array([1, 0, 0])
    r = feature_responsiveness(net, x, act, target=tg, n_samples=4000, seed=1)
    assert r.feature_names == ["x0", "x1", "x2", "x3", "c"]

    def decide(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out: np.ndarray = net(torch.as_tensor(z)).argmax(1).numpy()
        return out

    cur = decide(x.numpy())
    np.testing.assert_array_equal(r.current, cur)
    grid = 200001
    for i in range(3):
        xi = x[i].numpy()
        truth = []
        for j, lo in ((0, -2.0), (1, max(-2.0, xi[1]))):
            Z = np.repeat(xi[None], grid, 0)
            Z[:, j] = np.linspace(lo, 2.0, grid)
            truth.append((decide(Z) == tg[i]).mean())
        truth.append(0.0)
        Z = np.repeat(xi[None], 5, 0)
        Z[:, 3] = [v for v in range(6) if v != xi[3]]
        truth.append((decide(Z) == tg[i]).mean())
        Z = xi[None].copy()
        Z[0, 4:] = 1 - Z[0, 4:]
        truth.append((decide(Z) == tg[i]).mean())
        if cur[i] == tg[i]:
            assert np.isnan(r.scores[i]).all()
            continue
        np.testing.assert_allclose(r.scores[i, 2:], truth[2:], atol=1e-15)  # immutable, enumerated
        assert (r.stderr[i, 2:] == 0).all()
        for j in (0, 1):
            assert abs(r.scores[i, j] - truth[j]) <= 4.5 * r.stderr[i, j] + 1e-4, (i, j, r.scores[i, j], truth[j])
    assert np.nanmax(r.scores) > 0.3  # the check is not vacuous


# ------------------------------------------------------------------------- label leakage
def test_label_leakage_against_hand_kl_and_majority_votes() -> None:
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).double()
    with torch.no_grad():
        for w in net.parameters():
            w.copy_(torch.randn(w.shape, generator=g, dtype=torch.float64))
    x = torch.randn(9, 5, generator=g, dtype=torch.float64)
    bg = torch.randn(4, 5, generator=g, dtype=torch.float64)
    sel = np.random.default_rng(1).random((9, 5)) < 0.5
    sel[1] = sel[0]
    game = tribute.build_game(net, x, output="kl", baseline=tribute.Background(bg))
    r = label_leakage(game, sel)

    def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        out: np.ndarray = (p * np.log(p / q)).sum(1)
        return out

    with torch.no_grad():
        p = torch.softmax(net(x), 1).numpy()
        kl_s = np.mean([kl(p, torch.softmax(net(torch.where(torch.as_tensor(sel), x, b)), 1).numpy()) for b in bg], 0)
        kl_0 = np.mean([kl(p, torch.softmax(net(b.expand(9, 5)), 1).numpy()) for b in bg], 0)
    np.testing.assert_allclose(r.kl_per_input, kl_s, rtol=1e-10, atol=1e-14)
    assert r.kl_retained == pytest.approx(np.mean(1 - kl_s / kl_0), rel=1e-10)
    lab = p.argmax(1)
    np.testing.assert_array_equal(r.labels, lab)
    votes: defaultdict[bytes, Counter[int]] = defaultdict(Counter)
    for s, lb in zip(sel, lab, strict=True):
        votes[s.tobytes()][int(lb)] += 1
    assert r.leaky_accuracy == pytest.approx(sum(max(c.values()) for c in votes.values()) / 9)
    assert r.chance_accuracy == pytest.approx(np.bincount(lab).max() / 9)


# ---------------------------------------------------------------------------- interactions
def _sii(t: np.ndarray, n: int) -> np.ndarray:
    """Shapley interaction index off the diagonal, Shapley values on it, from the definitions."""
    out = np.zeros((n, n))
    for i, j in itertools.combinations(range(n), 2):
        for m in range(2**n):
            if m >> i & 1 or m >> j & 1:
                continue
            s = bin(m).count("1")
            w = math.factorial(s) * math.factorial(n - s - 2) / math.factorial(n - 1)
            out[i, j] += w * (t[m | 1 << i | 1 << j] - t[m | 1 << i] - t[m | 1 << j] + t[m])
        out[j, i] = out[i, j]
    for i in range(n):
        for m in range(2**n):
            if not m >> i & 1:
                s = bin(m).count("1")
                out[i, i] += math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) * (t[m | 1 << i] - t[m])
    return out


def test_shapley_interactions_per_input_targets_of_classifier_probabilities() -> None:
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = ((X[:, 0] * X[:, 1] + X[:, 2]) > 0).astype(int) + (X[:, 3] > 1)
    clf = MLPClassifier((8,), max_iter=2000, random_state=0).fit(X, y)
    x, bg, tg, n = X[:3], X[10:13], np.array([2, 0, 1]), 5
    a = tribute.explain(clf, x, method="shapley_interactions", target=tg, baseline=tribute.Background(bg),
                        output="prob")
    assert a.extra["interactions"].shape == (3, 1, n, n)
    for b in range(3):
        t = np.array([clf.predict_proba(np.where([(m >> k) & 1 for k in range(n)], x[b], bg))[:, tg[b]].mean()
                      for m in range(2**n)])
        np.testing.assert_allclose(a.extra["interactions"][b, 0], _sii(t, n), atol=1e-13)


def test_responsiveness_cost_counts_both_passes_of_a_classifier_deciding_by_its_predict() -> None:
    # aud41a F2: responsiveness_cost said 4 + 4 x 2 x 50 = 404 rows for an SVC(probability=True),
    # whose decision is its own predict; feature_responsiveness evaluated (and n_evals counted)
    # 808. With model= the cost counts both passes; a torch model reads its rows once
    from sklearn.svm import SVC

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    svc = SVC(probability=True, random_state=0).fit(X, y)
    act = Actionability(bounds={0: (-2, 2), 1: (-2, 2)})
    r = feature_responsiveness(svc, X[:4], act, n_samples=50)
    assert r.n_evals == 808
    assert responsiveness_cost(X[:4], act, n_samples=50) == 404
    assert responsiveness_cost(X[:4], act, n_samples=50, model=svc) == r.n_evals
    lin = torch.nn.Linear(2, 2).double()
    r = feature_responsiveness(lin, X[:4], act, n_samples=50)
    assert responsiveness_cost(X[:4], act, n_samples=50, model=lin) == r.n_evals == 404


def test_certified_takes_numpy_integers() -> None:
    # aud41a F3: k=np.int64(1) and n_samples=np.int64(10) were refused as "must be a integer"
    x = torch.tensor([[1.0, -0.5, 0.2]], dtype=torch.float64)
    lin = torch.nn.Linear(3, 1).double()
    numpy_ints: dict[str, Any] = {"k": np.int64(1), "n_samples": np.int64(10)}
    a = certified_attribution(lin, x, "saliency", seed=0, **numpy_ints)
    b = certified_attribution(lin, x, "saliency", k=1, n_samples=10, seed=0)
    assert a.k == 1 and a.n_samples == 10
    np.testing.assert_array_equal(a.topk, b.topk)
    np.testing.assert_allclose(a.radius, b.radius, rtol=1e-12)
    with pytest.raises(InputError, match=r"k=True must be an integer >= 1"):
        certified_attribution(lin, x, "saliency", k=True)
    with pytest.raises(InputError, match=r"n_samples=1.5 must be an integer >= 2"):
        certified_attribution(lin, x, "saliency", n_samples=1.5)  # type: ignore[arg-type]


def test_rashomon_takes_numpy_integer_counts() -> None:
    # aud41a F3: n_candidates=np.int64(2) was refused as "must be an int >= 1"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X[:, 0] * X[:, 1]

    def fit(X: np.ndarray, y: np.ndarray, *, seed: int, **cfg: Any) -> Any:
        return lambda Z: (1.0 + 0.1 * seed) * Z[:, 0] * Z[:, 1]

    counts: dict[str, Any] = {"n_candidates": np.int64(2), "n_repeats": np.int64(2)}
    a = rashomon_interactions(X, y, fit, epsilon=1.0, **counts)
    b = rashomon_interactions(X, y, fit, n_candidates=2, n_repeats=2, epsilon=1.0)
    np.testing.assert_allclose(a.fis, b.fis, rtol=1e-12)
    assert a.extra["n_repeats"] == 2 and type(a.extra["n_repeats"]) is int
    with pytest.raises(InputError, match=r"n_candidates=True must be an int >= 1"):
        rashomon_interactions(X, y, fit, n_candidates=True)


# ----------------------------------------------------------------------------------- dhondt
def _dhondt_by_hand(votes: list[float], seats: int) -> list[int]:
    """Highest averages with exact rational quotients (ties: more votes, then first)."""
    from fractions import Fraction

    won = [0] * len(votes)
    for _ in range(seats):
        q = [(Fraction(v) / (w + 1), Fraction(v), -i) for i, (v, w) in enumerate(zip(votes, won, strict=True))]
        won[-max(q)[2]] += 1
    return won


@pytest.mark.parametrize("votes,seats", [([1.7e308, 1.6e308], 4), ([1.7e308, 1.0e308, 0.9e308], 7),
                                         ([1.7, 1.6], 4), ([1.7e-310, 1.6e-310], 4), ([3.0, 0.0, 3.0], 5)])
def test_dhondt_allocate_near_the_float_limits(votes: list[float], seats: int) -> None:
    # aud41a F4: v_i * (s_j + 1) overflowed to inf near the float maximum and inf == inf read as
    # a tie: votes 1.7e308 / 1.6e308 and 4 seats gave 3 / 1 (truth 2 / 2)
    from tribute.methods.dhondt import dhondt_allocate

    with np.errstate(over="raise"):
        got = dhondt_allocate(votes, seats)
    assert got.tolist() == _dhondt_by_hand(votes, seats)


def test_responsiveness_names_non_numeric_columns() -> None:
    # aud41a F5: a DataFrame with a string column gave numpy's bare
    # "ValueError: could not convert string to float: 'u'"
    import pandas as pd

    lin = torch.nn.Linear(2, 2).double()
    df = pd.DataFrame({"a": [1.0, 2.0], "b": ["u", "v"]})
    with pytest.raises(InputError, match=r"inputs must be numbers; column\(s\) \['b'\].*one-hot"):
        feature_responsiveness(lin, df, Actionability(bounds={"a": (0, 3)}, immutable=["b"]))
    ok = pd.DataFrame({"a": [1.0, 2.0], "b": [0.0, 1.0]})
    with pytest.raises(InputError, match=r"data must be numbers; column\(s\) \['b'\]"):
        feature_responsiveness(lin, ok, data=df)
