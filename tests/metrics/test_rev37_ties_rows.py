"""``extra["stderr_ties"]`` of deletion / insertion is per sample (review rev37, stop 37).

A sample none of whose steps splits a tie has one curve whatever the tie order, so its
stderr is 0, also when another sample of the batch has a tie. Before the fix, with
``tie_orders=1`` it was NaN (the batch had a tie somewhere), and its curve was re-evaluated per
order (values could differ in the last bits). Truth: the same sample scored alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from metric_toys import TableGame, table_attr

from tribute.metrics import deletion, insertion

W = torch.tensor([[3.0, -1.0, 2.0, 0.5, 4.0, -2.0], [1.0, 2.0, -0.5, 1.5, 0.25, 3.0]],
                 dtype=torch.float64)
PHI = np.array([[0.0, 0.0, 0.0, 1.0, 1.0, 2.0],     # ties: {0, 1, 2} and {3, 4}
                [0.3, -1.2, 2.5, 0.7, 1.1, -0.4]])  # no ties


def _game(rows: list[int]) -> TableGame:
    w = W[rows]
    return TableGame(lambda m: (m * w[:, None, :]).sum(-1) ** 2 / 10, W.shape[1], len(rows))


@pytest.mark.parametrize("metric", [deletion, insertion])
@pytest.mark.parametrize("tie_orders", [1, 2, 8])
def test_an_untied_sample_has_zero_stderr_next_to_a_tied_one(metric: Any, tie_orders: int) -> None:
    both = _game([0, 1])
    res = metric(both, table_attr(both, PHI), steps=6, tie_orders=tie_orders, seed=2)
    alone = _game([1])
    ref = metric(alone, table_attr(alone, PHI[1:]), steps=6, tie_orders=tie_orders, seed=2)
    se = np.asarray(res.extra["stderr_ties"], dtype=np.float64)
    assert se[1] == 0.0  # was NaN with tie_orders=1
    assert ref.extra["stderr_ties"][0] == 0.0
    assert res.scores[1] == pytest.approx(ref.scores[0], rel=1e-14, abs=1e-14)
    assert np.isnan(se[0]) if tie_orders == 1 else np.isfinite(se[0])  # the tied sample
