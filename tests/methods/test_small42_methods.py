"""small42: carried small items.

1. Submodular region search on a batch of images with different superpixel counts: every round
   padded each sample to the most candidates of any sample and stopped all samples at once, so a
   small image got fewer rounds (and another map) than explained alone, with a warning. Each
   sample now searches on its own budget; the batch equals its samples explained one at a time.
4. ``tree_shap`` took ``budget=`` silently though it is exact and spends none of it. It is
   accepted, as ``exact_shapley`` accepts a budget above its ``2^n`` (a cap, not a target), and
   ``extra["budget_unused"]`` now says it was not used; the values are shap's either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute


class _Pool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.c(x)).mean((2, 3)))


def _pool_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return _Pool().double().eval()


def _blocky(rows: int, cols: int, h: int = 12, w: int = 16) -> torch.Tensor:
    """A grayscale image of rows x cols constant blocks, far apart in value (known segments)."""
    ids = (torch.arange(h)[:, None] * rows // h) * cols + torch.arange(w)[None] * cols // w
    return (ids.to(torch.float64) * 7 % 11 / 11.0)[None]


@pytest.mark.parametrize("search,budget", [("greedy", 40), ("lazy", 40), ("greedy", 60)])
def test_submodular_batch_of_different_region_counts_equals_each_image_alone(
        search: str, budget: int, recwarn: pytest.WarningsRecorder) -> None:
    net = _pool_net(5)
    x = torch.stack([_blocky(3, 4), _blocky(2, 2), _blocky(1, 3)])  # 12, 4 and 3 superpixels
    tg = torch.tensor([0, 1, 0])
    kw: dict[str, Any] = dict(method="submodular_regions", baseline=0.5, search=search,
                              min_size=0.02, sigma=0.0, progress=False)
    alone = [tribute.explain(net, x[b:b + 1], target=tg[b:b + 1], budget=budget, **kw)
             for b in range(3)]
    assert [int(a.extra["n_regions"][0]) for a in alone] == [12, 4, 3]
    # alone, the 4-region image finishes its search: 2 + 2 (4 + 3 + 2 + 1) = 22 evaluations
    assert alone[1].n_evals == 22 and np.isfinite(alone[1].extra["objective"][0, 0]).all()
    batch = tribute.explain(net, x, target=tg, budget=budget, **kw)
    assert not [w for w in recwarn.list if issubclass(w.category, UserWarning)
                and "submodular" in str(w.message)]
    for b in range(3):
        np.testing.assert_allclose(np.asarray(batch.values)[b], np.asarray(alone[b].values)[0],
                                   rtol=1e-12, atol=1e-15)
        r = alone[b].extra["n_regions"][0]
        np.testing.assert_array_equal(batch.extra["region_rank"][b], alone[b].extra["region_rank"][0])
        np.testing.assert_allclose(batch.extra["gains"][b, :, :r], alone[b].extra["gains"][0],
                                   rtol=1e-12, atol=1e-15)
    # each sample's own evaluations are within the budget, and no row is spent on padding
    assert batch.n_evals == max(a.n_evals for a in alone) <= budget
    assert batch.n_rows == sum(a.n_rows for a in alone)


@pytest.mark.parametrize("budget", [1, 7, 10**6])
def test_tree_shap_records_that_a_budget_was_not_used(budget: int) -> None:
    shap = pytest.importorskip("shap")
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    rf = RandomForestRegressor(n_estimators=5, max_depth=3, random_state=0).fit(
        x, x[:, 0] + x[:, 1] * x[:, 2])
    attr = tribute.explain(rf, x[:3], method="tree_shap", budget=budget, progress=False)
    note = attr.extra["budget_unused"]
    assert f"budget={budget} was not used" in note and "1 evaluation(s) per input" in note
    assert attr.n_evals == 1 and attr.params["budget"] == budget
    # the credits do not depend on it: shap's path-dependent TreeSHAP (float32 thresholds)
    truth = shap.TreeExplainer(rf).shap_values(x[:3])
    np.testing.assert_allclose(np.asarray(attr.values), truth, rtol=1e-6, atol=1e-9)
    plain = tribute.explain(rf, x[:3], method="tree_shap", progress=False)
    assert "budget_unused" not in plain.extra
