"""aud45e: RISE's standard errors at tiny mask counts, checked against the exact distribution of
the estimate over every sequence of masks (the masks are fixed through ``bernoulli_masks``) and
the closed-form limits of one- and three-player games.

Regressions (failed before the fix):
- ``center=True`` with 2 masks reported stderr 0 on every player, for credits that were wrong
  (the two influence terms are always equal): coverage 0;
- ``center=True`` on one player at ``p = 1/2``: the delta-method variance vanishes whenever half
  the masks keep the player, so 8 of the 16 sequences of 4 masks gave stderr 0 for an error of
  1/3 to all of the credit (the exact variance of a sample covariance has a second-order term,
  ``(Cov^2 + Var(v) Var(m)) / (K (K - 1))``, that does not);
- a player kept in every mask (or in none) with nothing to pool from got stderr 0 (plain RISE on
  one player: credit 14 for a truth of 7).
"""

from __future__ import annotations

import importlib
import itertools
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import StderrWarning

rise_module = importlib.import_module("tribute.methods.rise")


def _one_player(a: np.ndarray) -> np.ndarray:
    return 3.0 * a[:, 0] + 1.0  # v(empty) = 1, v({0}) = 7 at x = 2 with baseline 0


def _explain_with_masks(monkeypatch: pytest.MonkeyPatch, f: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                        masks: torch.Tensor, **kw: Any) -> tribute.Attribution:
    monkeypatch.setattr(rise_module, "bernoulli_masks", lambda k, n, p, g, fixed=masks: fixed[:k])
    return tribute.explain(f, x, method="rise", budget=int(masks.shape[0]) + 1, baseline=0.0, **kw)


def test_centred_rise_on_one_player_has_no_zero_stderr_for_a_wrong_credit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every one of the 16 sequences of 4 masks (p = 1/2, so each has probability 1/16): the
    centred credit's limit is ``Cov(v, M) / p = (v1 - v0)(1 - p) = 3``; a sequence whose credit
    is wrong never reports stderr 0, and the exact coverage within 2 stderr is near 95%."""
    x = np.array([[2.0]])
    truth = (7.0 - 1.0) * 0.5
    covered = undefined = 0
    for seq in itertools.product([0.0, 1.0], repeat=4):
        masks = torch.tensor(seq, dtype=torch.float64)[:, None]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attr = _explain_with_masks(monkeypatch, _one_player, x, masks, center=True)
        est, se = float(np.asarray(attr.values)[0, 0]), float(np.asarray(attr.stderr)[0, 0])
        # the estimate, by hand: the unbiased sample covariance of v and m over p
        v = 1.0 + 6.0 * np.asarray(seq)
        assert est == pytest.approx(np.cov(v, seq, ddof=1)[0, 1] / 0.5, abs=1e-12)
        if math.isnan(se):
            undefined += 1
            assert len(set(seq)) == 1  # only a player kept in every mask or in none
            continue
        assert se > 0 or abs(est - truth) < 1e-12, (seq, est, se)
        covered += abs(est - truth) <= 2 * se
    assert undefined == 2
    assert covered / 16 >= 0.85, covered  # 14/16 (the two NaN sequences count as misses)


def test_centred_rise_with_two_masks_reports_nan_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two masks leave the centred credits no spread to measure: NaN with a StderrWarning (the
    credits were wrong with stderr 0 before). Three masks or more keep finite errors."""
    x = np.array([[1.0, -2.0, 0.5]])

    def f(a: np.ndarray) -> np.ndarray:
        return a @ np.array([1.0, 2.0, -1.0]) + 2.0 * a[:, 0] * a[:, 2]

    masks = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    with pytest.warns(StderrWarning, match="center=True with 2 masks"):
        attr = _explain_with_masks(monkeypatch, f, x, masks, center=True)
    assert np.isnan(np.asarray(attr.stderr)).all()
    for seed in range(12):  # neighbours: 3-6 masks of random draws stay finite and positive
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = tribute.explain(f, x, method="rise", budget=4 + seed % 4, center=True, seed=seed, baseline=0.0)
        se = np.asarray(a.stderr)
        assert np.isfinite(se).all() and (se > 0).all(), (seed, se)


def test_plain_rise_player_kept_in_every_mask_reports_nan_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """One player kept in all 4 masks: the credit is ``mean(v) / p = 14``, its limit
    ``E[v M] / p = v1 = 7``; the draws show no spread, and there is no other player to pool
    from: NaN with a StderrWarning (0 before)."""
    x = np.array([[2.0]])
    masks = torch.ones(4, 1, dtype=torch.float64)
    with pytest.warns(StderrWarning, match="kept in every mask or in none"):
        attr = _explain_with_masks(monkeypatch, _one_player, x, masks)
    assert float(np.asarray(attr.values)[0, 0]) == pytest.approx(14.0)
    assert np.isnan(np.asarray(attr.stderr)).all()
    # a mixed column keeps a finite stderr, and with other players to pool from a constant
    # column borrows their spread (finite, positive)
    mixed = torch.tensor([[1.0], [0.0], [1.0], [1.0]], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok = _explain_with_masks(monkeypatch, _one_player, x, mixed)
    assert float(np.asarray(ok.stderr)[0, 0]) > 0

    def g(a: np.ndarray) -> np.ndarray:
        return a @ np.array([1.0, -2.0, 0.5]) + 1.0

    pooled = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        three = _explain_with_masks(monkeypatch, g, np.array([[1.0, 1.0, 1.0]]), pooled)
    se = np.asarray(three.stderr)
    assert np.isfinite(se).all() and (se > 0).all()
