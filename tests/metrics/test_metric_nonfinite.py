"""Credits holding NaN or infinity have no score (NaN for that sample, with a warning)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metric_toys import TableGame, table_attr

from tribute.metrics import get_metric, mislabel_auc


def test_non_finite_credits_give_an_undefined_score_for_their_sample_only() -> None:
    # deletion ranked a NaN credit last and scored the sample; complexity read an infinite
    # credit as perfectly concentrated (0); auroc / precision_at_k / relevance_rank gave numbers
    n, b = 5, 4
    coef = torch.linspace(-1.0, 2.0, n, dtype=torch.float64)
    game = TableGame(lambda m: torch.tanh((m * coef).sum(-1)), n, b, kind="feature")
    phi = np.random.default_rng(0).normal(size=(b, n))
    bad = phi.copy()
    bad[1, 2] = np.nan
    bad[2, 0] = np.inf
    truth = np.zeros((b, n))
    truth[:, :2] = 1
    for name, kw in [("deletion", {}), ("insertion", {}), ("complexity", {}),
                     ("sparseness", {}), ("auroc", {"ground_truth": truth}),
                     ("precision_at_k", {"ground_truth": truth}),
                     ("relevance_rank", {"ground_truth": truth}),
                     ("relevance_mass", {"ground_truth": truth}), ("shapley_error", {})]:
        metric = get_metric(name)
        clean = metric(game, table_attr(game, phi), **kw)
        with pytest.warns(RuntimeWarning, match=r"sample\(s\) \[1, 2\] hold NaN or infinite"):
            res = metric(game, table_attr(game, bad), **kw)
        assert np.isnan(res.scores[1:3]).all(), name
        np.testing.assert_allclose(res.scores[[0, 3]], clean.scores[[0, 3]], err_msg=name)
        assert res.n == 2 and res.extra["n_undefined"] == 2, name
        np.testing.assert_array_equal(res.extra["nonfinite_credit_samples"], [1, 2])


def test_mislabel_auc_leaves_an_undefined_self_influence_out() -> None:
    n = 6
    game = TableGame(lambda m: m.sum(-1), n, n)
    phi = np.zeros((n, n))
    phi[np.arange(n), np.arange(n)] = [0.1, 0.2, 5.0, np.nan, 4.0, 0.4]
    with pytest.warns(RuntimeWarning, match=r"sample\(s\) \[3\]"):
        res = mislabel_auc(game, table_attr(game, phi), ground_truth=[2, 4])
    assert res.mean == 1.0  # the NaN clean example was counted as outranking both
