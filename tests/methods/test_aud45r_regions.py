"""aud45r (stop 45): checks of integrated Hessians on grouped games and of the submodular region
search with per-sample targets against independently computed truths (no defect found).

- Integrated Hessians on a grouped game equal the element-level matrix summed over each pair of
  groups (the module docstring's claim), rows sum to IG by a 4000-point Riemann sum, and
  ``n_evals = steps * players + 2``.
- Submodular greedy/lazy search on a batch of 2 with per-sample targets equals the greedy written
  out by hand on ``F(S) = v(S) - v(N \\ S)``, and the model sees ``n_evals`` rows per sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute_testing import RowCounter


def test_integrated_hessians_grouped_is_the_element_matrix_summed_over_groups() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Softplus(), torch.nn.Linear(8, 3)).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    tg = np.array([0, 2, 1])
    a = tribute.explain(net, x, method="integrated_hessians", target=tg, baseline=0.0, steps=64)
    gam = np.asarray(a.extra["shap_interaction_values"]).reshape(3, 6, 6)
    # IG by a midpoint Riemann sum with 4000 points (independent of the log-quadrature)
    al = (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000
    ig = []
    for i in range(3):
        pts = (al[:, None] * x[i][None]).requires_grad_(True)
        (g,) = torch.autograd.grad(net(pts)[:, int(tg[i])].sum(), pts)
        ig.append((g.mean(0) * x[i]).numpy())
    np.testing.assert_allclose(gam.sum(-1), np.array(ig), atol=1e-6)
    groups = [0, 0, 1, 2, 2, 2]
    ag = tribute.explain(net, x, method="integrated_hessians", target=tg, baseline=0.0, steps=64, groups=groups)
    onehot = np.zeros((6, 3))
    onehot[range(6), groups] = 1
    summed = np.einsum("bij,ip,jq->bpq", gam, onehot, onehot)
    np.testing.assert_allclose(np.asarray(ag.extra["shap_interaction_values"]).reshape(3, 3, 3), summed,
                               atol=1e-9)
    assert a.n_evals == 64 * 6 + 2 and ag.n_evals == 64 * 3 + 2


_Count = RowCounter  # counts the rows the model is called on


@pytest.mark.parametrize("search", ["greedy", "lazy"])
def test_submodular_per_sample_targets_is_the_hand_greedy(search: str) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 12), torch.nn.Softplus(),
                              torch.nn.Linear(12, 3)).double()
    cm = _Count(net)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    grid = (np.arange(8)[:, None] // 4) * 2 + (np.arange(8)[None, :] // 4)
    tg = np.array([2, 0])
    kw: dict[str, Any] = {"groups": grid, "search": search, "budget": 40, "baseline": 0.0}
    a = tribute.explain(cm, x, method="submodular_regions", target=tg, **kw)
    assert cm.rows == 2 * a.n_evals == 2 * (2 + 2 * (4 + 3 + 2 + 1))
    rank = np.asarray(a.extra["region_rank"])
    gains = np.asarray(a.extra["gains"])

    def v(i: int, keep: list[int]) -> float:
        m = torch.zeros(8, 8, dtype=torch.float64)
        for r in keep:
            m[torch.from_numpy(grid == r)] = 1.0
        with torch.no_grad():
            return float(net((x[i] * m)[None])[0, int(tg[i])])

    for i in range(2):
        def f(s: list[int], i: int = i) -> float:
            return v(i, s) - v(i, [r for r in range(4) if r not in s])

        s: list[int] = []
        hand_gains = []
        while len(s) < 4:
            best = max((r for r in range(4) if r not in s), key=lambda r: f([*s, r]))
            hand_gains.append(f([*s, best]) - f(s))
            s.append(best)
        order = np.argsort(rank[i, 0])  # a position per region (the players)
        assert order.tolist() == s
        np.testing.assert_allclose(gains[i, 0], hand_gains, atol=1e-12)
