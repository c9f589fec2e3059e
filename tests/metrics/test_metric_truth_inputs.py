"""Ground-truth arguments of the metrics read the way the user meant them (or are refused)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metric_toys import TableGame, table_attr

from tribute.attribution import Attribution
from tribute.errors import InputError
from tribute.metrics import mislabel_auc


def _self_influence_game() -> tuple[TableGame, Attribution]:
    n = 6
    game = TableGame(lambda m: m.sum(-1), n, n)
    phi = np.zeros((n, n))
    phi[np.arange(n), np.arange(n)] = [0.1, 0.2, 5.0, 0.3, 4.0, 0.4]  # 2 and 4 stand out
    return game, table_attr(game, phi)


def test_mislabel_auc_refuses_a_zero_one_mask_that_would_read_as_indices() -> None:
    # flipped.astype(int) was read as the indices {0, 1}: a perfect detector scored 0.67, not 1
    game, attr = _self_influence_game()
    flipped = np.zeros(6, dtype=bool)
    flipped[[2, 4]] = True
    for good in (flipped, [2, 4], np.array([4.0, 2.0]), torch.as_tensor(flipped)):
        assert mislabel_auc(game, attr, ground_truth=good).mean == 1.0
    for bad in (flipped.astype(int), flipped.astype(float), torch.as_tensor(flipped.astype(int))):
        with pytest.raises(InputError, match=r"repeats indices .*0/1 mask.*boolean mask"):
            mislabel_auc(game, attr, ground_truth=bad)
    with pytest.raises(InputError, match="non-integer values"):
        mislabel_auc(game, attr, ground_truth=[2.5, 4])
    with pytest.raises(InputError, match=r"must be in 0..5; got 2..6"):
        mislabel_auc(game, attr, ground_truth=[2, 6])
    with pytest.raises(InputError, match="repeats indices; pass distinct"):
        mislabel_auc(game, attr, ground_truth=[2, 2, 4])
