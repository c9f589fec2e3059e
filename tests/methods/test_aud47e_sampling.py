"""aud47e: standard errors of 0 for wrong credits when every draw saw the same value.

Regressions (failed before the fix):
- Banzhaf (msr, bernoulli, ols) and RISE (plain and centred) on the 6-player AND game at budget
  20: whenever no draw holds the grand coalition every value is 0, the credits are 0 and their
  stderr was 0 (74-76% of seeds) for a truth of 3/32 (Banzhaf), enumerated over all 64
  coalitions here; ``v(N) = 3`` (the reference pass) shows the game is not constant.
- LIME (``alpha=0``, constant kernel) on 3 players at budget 9: 8 rows holding only 4 distinct
  coalitions were counted as 4 residual degrees of freedom; the fit interpolates them and the
  stderr was ~1e-14 for credits that move by 3 between seeds.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import tribute
from tribute.errors import StderrWarning
from tribute_testing import all_coalitions, banzhaf_by_enumeration


def _and_game(a: np.ndarray) -> np.ndarray:
    return 3.0 * np.prod(a, axis=1)


def _rise_truth(f: Any, n: int, p: float, center: bool) -> np.ndarray:
    c = all_coalitions(n)
    prob = np.prod(np.where(c == 1, p, 1 - p), axis=1)
    v = f(c)
    ev = prob @ v
    return np.array([(prob @ (v * c[:, i]) - (ev * p if center else 0.0)) / p for i in range(n)])


def _run(method: str, seed: int, f: Any = _and_game, n: int = 6, budget: int = 20,
         **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StderrWarning)
        a = tribute.explain(f, np.ones((1, n)), method=method, budget=budget, baseline=0.0, seed=seed, **kw)
    return np.asarray(a.values)[0], np.asarray(a.stderr)[0]


@pytest.mark.parametrize("kw", [{}, {"design": "bernoulli"}, {"estimator": "ols"}])
def test_banzhaf_never_reports_stderr_zero_for_credits_no_draw_could_see(kw: dict[str, Any]) -> None:
    truth = banzhaf_by_enumeration(_and_game, 6)
    assert truth == pytest.approx(np.full(6, 3.0 / 32))
    zero_wrong = undefined = 0
    for seed in range(30):
        v, se = _run("banzhaf", seed, **kw)
        if np.isnan(se).all():
            undefined += 1
            continue
        zero_wrong += int(((se <= 1e-6) & (np.abs(v - truth) > 0.01)).sum())
    assert zero_wrong == 0
    assert undefined >= 10  # the seeds whose draws all missed the grand coalition (~76%)


@pytest.mark.parametrize("center", [False, True])
def test_rise_never_reports_stderr_zero_for_credits_no_mask_could_see(center: bool) -> None:
    truth = _rise_truth(_and_game, 6, 0.5, center)
    zero_wrong = 0
    for seed in range(30):
        v, se = _run("rise", seed, center=center)
        zero_wrong += int(((se <= 1e-6) & (np.abs(v - truth) > 0.01)).sum())
    assert zero_wrong == 0


def test_flat_draws_rule_spares_constant_additive_and_exact_calls() -> None:
    """Legitimate neighbours: a constant game (credits exactly 0), additive games, p = 1 and the
    exact budget keep finite stderr and raise no StderrWarning."""
    def const(a: np.ndarray) -> np.ndarray:
        return np.full(a.shape[0], 2.5)

    def additive(a: np.ndarray) -> np.ndarray:
        return a @ np.arange(1.0, a.shape[1] + 1.0) + 1.0

    calls: list[tuple[str, Any, int, dict[str, Any]]] = [
        ("banzhaf", const, 20, {}), ("banzhaf", const, 20, {"estimator": "ols"}),
        ("banzhaf", _and_game, 64, {}), ("rise", const, 20, {}), ("rise", const, 20, {"center": True}),
        ("rise", _and_game, 20, {"p": 1.0}), ("banzhaf", additive, 20, {}),
        ("banzhaf", additive, 20, {"design": "bernoulli"}), ("banzhaf", additive, 20, {"estimator": "ols"}),
        ("rise", additive, 20, {}), ("rise", additive, 20, {"center": True}),
    ]
    for method, f, budget, kw in calls:
        with warnings.catch_warnings():
            warnings.simplefilter("error", StderrWarning)
            a = tribute.explain(f, np.ones((1, 6)), method=method, budget=budget, baseline=0.0, seed=1, **kw)
        se = np.asarray(a.stderr)
        assert np.isfinite(se).all(), (method, kw)
        if f is const and (method == "banzhaf" or kw.get("center")):  # plain RISE gives E[v] (documented)
            assert np.asarray(a.values) == pytest.approx(np.zeros((1, 6)), abs=1e-12)


def test_lime_counts_distinct_coalitions_for_its_residual_dof() -> None:
    """Constant kernel, alpha=0, 3 players, budget 9: credits move by ~1 between seeds; a seed
    whose rows hold only n + 1 distinct coalitions interpolates them (residuals 0) and must
    not report a stderr of ~1e-14."""
    kw: dict[str, Any] = {"kernel_width": float("inf"), "alpha": 0.0}
    runs = [_run("lime", seed, n=3, budget=9, **kw) for seed in range(100)]
    spread = np.std([v for v, _ in runs], axis=0)
    assert (spread > 0.5).all()
    tiny = sum(int((se < 1e-6 * spread).sum()) for _, se in runs)
    assert tiny == 0
    finite = sum(int(np.isfinite(se).all()) for _, se in runs)
    assert finite >= 60  # most seeds keep their standard errors


def _corner(a: np.ndarray) -> np.ndarray:
    """3 where every mask entry exceeds 0.99 (probability 1e-12 under Sobol's uniform masks)."""
    return 3.0 * (a.min(axis=1) > 0.99)


def test_sobol_does_not_call_a_game_constant_because_its_draws_were() -> None:
    """Total indices of ``3 * [min(m) > 0.99]`` on 6 players: ``S_T,i = 0.01^5 * 0.01 * 0.99 / (q (1 - q))``
    with ``q = 0.01^6``, i.e. 0.99 for every player (closed form). No draw reaches the corner, so
    the indices come out 0; they were reported with stderr 0 (Var = 0 read as "constant")."""
    q = 0.01**6
    truth = 0.01**5 * 0.01 * 0.99 / (q * (1 - q))
    assert truth == pytest.approx(0.99, rel=1e-5)
    for seed in range(5):
        v, se = _run("sobol", seed, f=_corner, budget=40)
        assert not ((se <= 1e-6) & (np.abs(v - truth) > 0.01)).any()
        assert np.isnan(se).all()
    # neighbours: a constant game is still exact (0, stderr 0) and an additive one finite
    for f in (lambda a: np.full(a.shape[0], 2.5), lambda a: a @ np.arange(1.0, 7.0)):
        for seed in range(3):
            with warnings.catch_warnings():
                warnings.simplefilter("error", StderrWarning)
                a = tribute.explain(f, np.ones((1, 6)), method="sobol", budget=40, baseline=0.0, seed=seed)
            assert np.isfinite(np.asarray(a.stderr)).all()


def test_lime_keeps_stderr_where_the_draw_holds_the_whole_support() -> None:
    """Neighbours of the distinct-coalition rule: 2 players with ``uniform_size`` can only draw
    the 3 coalitions {0}, {1} and the full one, so every seed fits the same surrogate: the
    standard errors stay finite (as before), at budgets 8, 30 and 120 (default alpha=1; at
    alpha=0 the full coalition, drawn once, is fitted exactly: NaN, as before);
    and 5 players at budget 40 (bernoulli, cosine kernel) keep finite ones."""
    def f(a: np.ndarray) -> np.ndarray:
        return np.tanh(a @ np.array([1.0, -2.0, 0.5, 1.5, -1.0])[: a.shape[1]]) + a[:, 0] * a[:, 1]

    for budget in (8, 30, 120):
        for seed in range(3):
            _, se = _run("lime", seed, f=f, n=2, budget=budget, sampling="uniform_size")
            assert np.isfinite(se).all(), (budget, seed)
    for seed in range(4):
        _, se = _run("lime", seed, f=f, n=5, budget=40)
        assert np.isfinite(se).all()
