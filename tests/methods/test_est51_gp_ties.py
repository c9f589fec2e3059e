"""gp_shapley: kernels whose likelihoods tie in exact arithmetic are chosen by rule, not by rounding.

At fewer pairs than players the greedy design picks mutually orthogonal codes (8 players, 7
pairs), every isotropic kernel's matrix is then diagonal and every likelihood equal, and the
arg-max over their last bits chose the ARD stage's scales: credits 0.2 apart (7% of the largest)
after a 7e-15 change of the model's outputs, e.g. an even game added, whose Shapley value is 0.
"""

from __future__ import annotations

import importlib
import itertools
import math
import warnings
from typing import Any

import numpy as np
import torch

import tribute

N = 8
_RNG = np.random.default_rng(11)
for _ in range(20):  # the draws of the measurement that found it (20 random games first)
    _RNG.normal(size=1 << N) * _RNG.uniform(0.1, 10)
_W1 = _RNG.normal(size=(N, 16)) / np.sqrt(N) * 2
_W2 = _RNG.normal(size=16)
_X = _RNG.normal(size=N) + 1.0
_R = _RNG.normal(size=(N, 6))


def _base(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.tanh(np.asarray(x, float) @ _W1) @ _W2
    return out[:, None]


def _even(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.sin(z @ _R).sum(1) * 3.0 + (z @ _R[:, 0]) ** 2
    return out


def _plus_even(x: np.ndarray) -> np.ndarray:
    """The same game plus an even one, ``g(z) = r(z) + r(1 - z)`` (Shapley value 0 exactly)."""
    z = np.asarray(x, float) / _X[None]
    return _base(x) + (_even(z) + _even(1.0 - z))[:, None]


def _explain(model: Any, budget: int, seed: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = tribute.explain(model, _X[None], method="shapley", baseline=0.0, budget=budget,
                            seed=seed, target=0)
    return np.asarray(a.values)


def _exact() -> np.ndarray:
    z = np.array(list(itertools.product([0, 1], repeat=N)), float)
    v = _base(z * _X[None])[:, 0]
    key = z.astype(int) @ (1 << np.arange(N))
    pos = np.empty(1 << N, int)
    pos[key] = np.arange(len(z))
    w = np.array([math.factorial(s) * math.factorial(N - s - 1) / math.factorial(N) for s in range(N)])
    phi = np.zeros(N)
    for i in range(N):
        off = z[:, i] == 0
        phi[i] = (w[z[off].sum(1).astype(int)] * (v[pos[key[off] + (1 << i)]] - v[off])).sum()
    return phi


def test_adding_an_even_game_leaves_the_credits_alone() -> None:
    # the even half's Shapley value is 0 and the estimator sees only pair differences, which
    # the even game changes by rounding (7e-15): the credits must not move (were 0.2 apart)
    truth = _exact()
    for budget, seed in ((16, 0), (12, 2)):
        a, b = _explain(_base, budget, seed), _explain(_plus_even, budget, seed)
        assert np.abs(a - b).max() <= 1e-9 * np.abs(truth).max(), (budget, seed, np.abs(a - b).max())


def test_fit_is_stable_under_rounding_of_the_differences() -> None:
    # the fit itself, on a design of mutually orthogonal codes: d and d (1 + 1e-15) give the
    # same credits (the arg-max of tied likelihoods took the last bits before)
    gp = importlib.import_module("tribute.methods.gp_shapley")
    s = torch.tensor([[1 if (i >> b) & 1 else -1 for b in range(3)] for i in range(8)],
                     dtype=torch.float64)
    h = torch.cat([s, s[:, :1] * s[:, 1:2], s[:, :1] * s[:, 2:], s[:, 1:2] * s[:, 2:],
                   s[:, :1] * s[:, 1:2] * s[:, 2:]], 1)  # 8 x 7, columns orthogonal (+-1)
    codes = h.T.contiguous()  # 7 pairs of 8 players, orthogonal to each other and to all-ones
    assert torch.equal(codes @ codes.T, 8 * torch.eye(7, dtype=torch.float64))
    assert torch.equal(codes.sum(1), torch.zeros(7, dtype=torch.float64))
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(1, 7, generator=gen, dtype=torch.float64)
    delta = torch.randn(1, generator=gen, dtype=torch.float64)
    phi_a = gp.gp_shapley_fit(codes, d, delta)[0]
    for eps in (1e-15, -1e-15, 3e-15):
        phi_b = gp.gp_shapley_fit(codes, d * (1 + eps), delta)[0]
        assert float((phi_a - phi_b).abs().max()) <= 1e-9 * float(phi_a.abs().max()), eps
