"""rev45e: review of aud45e's RISE standard errors at small mask counts.

aud45e gave NaN (with a StderrWarning) to a player kept in every mask or in none whose stderr was
exactly 0. The expanded power sums leave rounding noise instead of 0 for most outputs: plain
RISE on one player kept by all of 5-8 masks gave stderr ~1e-7 for a credit twice its truth
(|err| / stderr up to 1e9). And at ``p = 1`` (every mask keeps every player: the credits are
exact) the rule turned the correct stderr 0 into NaN with a warning.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.methods.rise import bernoulli_masks


class _Linear(nn.Module):
    def __init__(self, w: torch.Tensor, c: float) -> None:
        super().__init__()
        self.w, self.c = w, c

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.c + z @ self.w[:, None]


def _seed_keeping_all(k: int, n: int) -> int:
    """A seed whose ``k`` Bernoulli(1/2) masks keep all ``n`` players."""
    return next(s for s in range(100_000)
                if bool((bernoulli_masks(k, n, 0.5, torch.Generator().manual_seed(s)) == 1).all()))


def _truth(w: np.ndarray, c: float, center: bool) -> np.ndarray:
    """RISE's limit by enumeration at p = 1/2: E[v M_i] / p, minus E[v] when centred."""
    n = len(w)
    ev, evm = 0.0, np.zeros(n)
    for s in itertools.product([0, 1], repeat=n):
        v = c + float(np.dot(w, s))
        ev += v / 2**n
        evm += v * np.array(s, float) / 2**n
    return evm / 0.5 - (ev if center else 0.0)


@pytest.mark.parametrize(("n", "k", "center"), [(1, 5, False), (1, 7, False), (2, 8, False), (1, 8, True)])
def test_a_player_kept_in_every_mask_gets_no_rounding_noise_stderr(n: int, k: int, center: bool) -> None:
    # before: stderr 1e-16..2e-7 (not exactly 0) for credits off by |v| (plain: 2x the truth)
    seed = _seed_keeping_all(k, n)
    rng = np.random.default_rng(0)
    x = torch.ones(1, n, dtype=torch.float64)
    wrong = 0
    for _ in range(12):
        w, c = rng.normal(size=n) * 3, float(rng.normal() * 3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tribute.StderrWarning)
            a = tribute.explain(_Linear(torch.as_tensor(w), c), x, method="rise", budget=k + 1, p=0.5,
                                center=center, seed=seed, baseline=0.0, target=0)
        val = np.asarray(a.values, float).ravel()
        se = np.asarray(a.stderr, float).ravel()
        err = np.abs(val - _truth(w, c, center))
        wrong += int((err > 1e-6).sum())
        # a finite stderr must cover the error; none here can (the draws never drop the player)
        assert not np.any(np.isfinite(se) & (err > 1.96 * np.nan_to_num(se))), (val, se, err)
    assert wrong >= 10  # the games are not degenerate: the credits are wrong


@pytest.mark.parametrize("center", [False, True])
def test_p_one_keeps_exact_credits_with_stderr_zero_and_no_warning(center: bool) -> None:
    # p = 1: every mask is the full coalition, so the plain credit is v(N) and the centred one 0,
    # exactly; before: NaN stderr with a StderrWarning on every player
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    with torch.no_grad():
        full = net(x)[:, 0].numpy()
    for k in (3, 4, 9):
        with warnings.catch_warnings():
            warnings.simplefilter("error", tribute.StderrWarning)
            a = tribute.explain(net, x, method="rise", budget=k + 1, p=1.0, center=center, seed=1,
                                baseline=0.0, target=0)
        want = np.zeros((3, 4)) if center else np.repeat(full[:, None], 4, 1)
        np.testing.assert_allclose(np.asarray(a.values), want, atol=1e-12)
        se = np.asarray(a.stderr, float)
        assert np.isfinite(se).all() and float(se.max()) < 1e-6
