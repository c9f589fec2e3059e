"""aud48r (stop 48): checks against independently computed truths (no defect found here).

- Integrated Hessians on a quadratic model with a 3-row background set and per-sample targets:
  the matrix equals the mean over the background rows of the closed form
  ``Gamma_ij = A_ij d_i d_j / 4`` (``i != j``), ``Gamma_ii = d_i ((A b)_i + c_i + (A d)_i / 4)
  + A_ii d_i^2 / 4`` (``d = x - b``), at ``steps=1``; float64 and float32.
- The lazy submodular search equals the plain greedy, both equal to the greedy written out by
  hand, when ``F`` is submodular (a concave function of a modular coverage, ``remove_weight=0``;
  Minoux's lazy greedy is exact there), for ``lazy_batch`` 1, 3 and 9.
- The pairwise Shapley interaction index and the Shapley values against a sum over every
  coalition written out with factorial weights (5 players, batch of 3, per-sample targets).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import tribute
from tribute_testing import RowCounter


class _Quad(torch.nn.Module):
    def __init__(self, n: int, dtype: torch.dtype) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        a = torch.randn(3, n, n, generator=g, dtype=torch.float64)
        self.a = torch.nn.Parameter((a + a.transpose(1, 2)).to(dtype))
        self.c = torch.nn.Parameter(torch.randn(3, n, generator=g, dtype=torch.float64).to(dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.einsum("bi,tij,bj->bt", x, self.a, x) + x @ self.c.T


def _closed_form(a: np.ndarray, c: np.ndarray, x: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = x - b
    gam = np.outer(d, d) * a / 4
    for i in range(len(x)):
        gam[i, i] = d[i] * ((a @ b)[i] + c[i] + (a @ d)[i] / 4) + d[i] ** 2 * a[i, i] / 4
    return gam


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_integrated_hessians_with_a_background_set_is_the_mean_closed_form(dtype: torch.dtype) -> None:
    n = 4
    model = _Quad(n, dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, n, generator=g, dtype=torch.float64).to(dtype)
    background = torch.randn(3, n, generator=g, dtype=torch.float64).to(dtype)
    target = np.array([1, 2])
    counter = RowCounter(model)
    attr = tribute.explain(counter, x, method="integrated_hessians", target=target, baseline=background, steps=1)
    gam = np.asarray(attr.extra["shap_interaction_values"]).reshape(2, n, n)
    a, c = model.a.detach().double().numpy(), model.c.detach().double().numpy()
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    for i in range(2):
        truth = np.mean([_closed_form(a[target[i]], c[target[i]], x[i].double().numpy(),
                                      background[k].double().numpy()) for k in range(3)], axis=0)
        np.testing.assert_allclose(gam[i], truth, atol=tol * max(1.0, np.abs(truth).max()))
        np.testing.assert_allclose(np.asarray(attr.values)[i].reshape(n), truth.sum(1),
                                   atol=tol * max(1.0, np.abs(truth).max()))
    assert attr.n_evals == n + 2
    assert counter.rows == 2 * (1 + (attr.n_evals - 1) * 3)  # v(N) once, every other row per background row


def test_lazy_search_equals_greedy_written_by_hand_on_a_submodular_objective() -> None:
    g = torch.Generator().manual_seed(0)
    h = w = 12
    groups = (np.arange(h)[:, None] // 4) * 3 + (np.arange(w)[None] // 4)  # 9 blocks of 4x4
    weights = torch.rand(1, h, w, generator=g, dtype=torch.float64)

    class Coverage(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = (x * weights).flatten(1).sum(1)
            return torch.stack([torch.sqrt(t + 1e-3), torch.log1p(t)], 1)

    x = torch.rand(2, 1, h, w, generator=g, dtype=torch.float64)
    fns = [lambda t: math.sqrt(t + 1e-3), math.log1p]
    for b in range(2):  # target b for sample b; baseline 0: v(S) = f(coverage of S)
        contrib = [float((x[b, 0] * weights[0]).numpy()[groups == r].sum()) for r in range(9)]
        order: list[int] = []
        cur = 0.0
        for _ in range(9):
            rest = [r for r in range(9) if r not in order]
            best = max(rest, key=lambda r: fns[b](cur + contrib[r]) - fns[b](cur))
            order.append(best)
            cur += contrib[best]
        rank = np.empty(9, dtype=np.int64)
        rank[order] = np.arange(9)
        for search, lazy_batch in [("greedy", 4), ("lazy", 1), ("lazy", 3), ("lazy", 9)]:
            attr = tribute.explain(Coverage(), x, method="submodular_regions", target=np.array([0, 1]),
                                   groups=groups, remove_weight=0.0, search=search, lazy_batch=lazy_batch,
                                   budget=10_000)
            np.testing.assert_array_equal(attr.extra["region_rank"][b, 0], rank)


def test_shapley_interaction_index_against_every_coalition() -> None:
    n = 5
    g = torch.Generator().manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Linear(n, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).double()
    with torch.no_grad():
        for param in net.parameters():
            param.copy_(torch.randn(param.shape, generator=g, dtype=torch.float64))
    x = torch.randn(3, n, generator=g, dtype=torch.float64)
    base = torch.randn(1, n, generator=g, dtype=torch.float64)
    target = np.array([0, 2, 1])
    attr = tribute.explain(net, x, method="shapley_interactions", target=target, baseline=base)
    inter = np.asarray(attr.extra["interactions"])
    for i in range(3):
        v = {}
        with torch.no_grad():
            for r in range(n + 1):
                for s in itertools.combinations(range(n), r):
                    m = torch.zeros(n, dtype=torch.float64)
                    m[list(s)] = 1.0
                    v[frozenset(s)] = float(net((base[0] + m * (x[i] - base[0]))[None])[0, target[i]])
        truth = np.zeros((n, n))
        for p in range(n):
            others = [q for q in range(n) if q != p]
            truth[p, p] = sum(math.factorial(len(s)) * math.factorial(n - len(s) - 1) / math.factorial(n)
                              * (v[frozenset(s) | {p}] - v[frozenset(s)])
                              for r in range(n) for s in itertools.combinations(others, r))
        for p, q in itertools.combinations(range(n), 2):
            others = [o for o in range(n) if o not in (p, q)]
            truth[p, q] = truth[q, p] = sum(
                math.factorial(len(s)) * math.factorial(n - len(s) - 2) / math.factorial(n - 1)
                * (v[frozenset(s) | {p, q}] - v[frozenset(s) | {p}] - v[frozenset(s) | {q}] + v[frozenset(s)])
                for r in range(n - 1) for s in itertools.combinations(others, r))
        np.testing.assert_allclose(inter[i, 0], truth, atol=1e-12)
        np.testing.assert_allclose(np.asarray(attr.values)[i].reshape(n), np.diag(truth), atol=1e-12)
