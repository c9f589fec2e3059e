"""Brute-force references shared by the tabular-model tests (no tribute code)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np


def brute_shapley(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                   background: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Shapley values of ``v(S) = mean_b f(x_S, b_rest)`` by enumerating every coalition
    (``dtype=object`` for rows of categories and numbers side by side)."""
    n = x.shape[0]
    value = {}
    for r in range(n + 1):
        for s in itertools.combinations(range(n), r):
            rows: np.ndarray = np.array(background, dtype=dtype, copy=True)
            rows[:, list(s)] = x[list(s)]
            value[s] = float(np.mean(f(rows)))
    phi = np.zeros(n)
    for i in range(n):
        for s, v in value.items():
            if i not in s:
                w = math.factorial(len(s)) * math.factorial(n - len(s) - 1) / math.factorial(n)
                phi[i] += w * (value[tuple(sorted((*s, i)))] - v)
    return phi


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))
