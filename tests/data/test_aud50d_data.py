"""aud50d: training-data attribution audit of stop 50.

``n_evals`` on a data game counted every drawn coalition, also the copies of one drawn twice,
while the retrain bank trains and the test points see each distinct subset once: datamodels at
``budget=150`` on 6 training examples reported ``n_evals=150`` and ``n_rows=300`` (2 test
points) for 57 distinct subsets (57 models trained, 114 rows seen). The documented contract
(:mod:`tribute.games.base`) counts the evaluations the model ran, and a coalition asked for
twice is evaluated and counted once where ``v(S)`` is a function of ``S`` (feature games);
a data game's ``v(S)`` is (one seed for every subset, each trained once). Truth: the distinct
rows of the drawn masks (``numpy.unique``) and the fits counted at the fit callable.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_cases import CountingFit, ridge_case

import tribute
from tribute.methods.data_retrain import datamodel_subsets


@pytest.mark.parametrize(("n", "budget", "groups"), [(6, 150, False), (6, 40, True), (9, 60, False)])
def test_data_game_counts_a_subset_drawn_twice_once(n: int, budget: int, groups: bool) -> None:
    case = ridge_case(n=n, d=3, n_test=2, l2=0.5)
    counting = CountingFit(case.fit)
    g = np.arange(n) % 3 if groups else None
    data = tribute.TrainingData(case.X, case.y, fit=counting, loss="mse", groups=g)
    attr = tribute.explain(case.model, case.X_test, method="datamodels", players=data, budget=budget,
                           seed=0, progress=False)
    masks = datamodel_subsets(data.n_players, 0.5, budget, 0).numpy()
    distinct = len(np.unique(masks, axis=0))
    assert attr.extra["n_subsets"] == budget
    assert attr.n_evals == distinct  # 150 before for 57 distinct subsets (n=6)
    assert attr.n_rows == (distinct + 1) * 2  # + the reference pass on the 2 test points (aud51d)
    fits = counting.calls - 1 if attr.extra["n_retrains"] > distinct else counting.calls
    assert fits == distinct  # each distinct subset trained once (the determinism check aside)


def test_data_game_dedup_leaves_credits_alone() -> None:
    """The credits are those of one evaluation per draw (values and stderr bit for bit equal
    to a regression on the drawn subsets' retrained values, copies included)."""
    case = ridge_case(n=6, d=3, n_test=2, l2=0.5)
    data = case.data(loss="mse")
    attr = tribute.explain(case.model, case.X_test, method="datamodels", players=data, budget=100,
                           seed=1, progress=False)
    masks = datamodel_subsets(6, 0.5, 100, 1).numpy()
    P = data.bank.params(masks)
    # the retrained ridge outputs on the test points, by hand from the stored parameters
    w, b = P[:, :3], P[:, 3]
    v = case.X_test.numpy() @ w.T + b  # 2 x 100
    A = np.c_[np.ones(100), masks]
    reg = 1e-3 * np.eye(7)
    reg[0, 0] = 0.0
    beta = np.linalg.solve(A.T @ A + reg, A.T @ v.T)[1:].T
    assert np.allclose(attr.values.reshape(2, 6).numpy(), beta, atol=1e-8)


def test_tracin_counts_one_gradient_point_per_checkpoint() -> None:
    """tracin over 3 checkpoints reported ``n_evals=1`` while trak over the same 3 reported 3
    (and every ensemble estimator counts one pass per model). The credits are TracInCP's by
    hand: ``sum_k lr_k * -(a_t . r_ik a_i)`` for linear least-squares checkpoints."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(7, 3, generator=g, dtype=torch.float64)
    y = torch.randn(7, generator=g, dtype=torch.float64)
    Xt = torch.randn(2, 3, generator=g, dtype=torch.float64)
    cks = []
    for _ in range(3):
        m = torch.nn.Linear(3, 1).double()
        with torch.no_grad():
            m.weight.copy_(torch.randn(1, 3, generator=g, dtype=torch.float64))
            m.bias.copy_(torch.randn(1, generator=g, dtype=torch.float64))
        cks.append(m)
    lrs = [0.3, 0.2, 0.1]
    data = tribute.TrainingData(X, y, loss="mse", checkpoints=list(zip(cks, lrs)))
    tr = tribute.explain(cks[-1], Xt, method="tracin", players=data, progress=False)
    tk = tribute.explain(cks[-1], Xt, method="trak", players=data, proj_dim=3, progress=False)
    assert tr.n_evals == tk.n_evals == 3  # tracin: 1 before
    A = torch.cat([X, torch.ones(7, 1, dtype=torch.float64)], 1)
    At = torch.cat([Xt, torch.ones(2, 1, dtype=torch.float64)], 1)
    truth = torch.zeros(2, 7, dtype=torch.float64)
    for m, lr in zip(cks, lrs):
        th = torch.cat([m.weight.detach().reshape(-1), m.bias.detach()])
        truth -= lr * (At @ ((A @ th - y)[:, None] * A).T)
    assert torch.allclose(tr.values.reshape(2, 7).double(), truth, atol=1e-12)


def test_feature_method_on_data_players_names_the_data_methods() -> None:
    """method="shapley" (gp_shapley) or "lime" with training-data players was refused without
    naming one method that runs there; a data method without them, without saying how."""
    case = ridge_case(n=6, d=3, n_test=1, l2=0.5)
    data = case.data(loss="mse")
    with pytest.raises(tribute.UnsupportedModelError,
                       match="Methods for 'data' games: exact_shapley, kernel_shap, permutation_shapley, banzhaf"):
        tribute.explain(case.model, case.X_test, method="shapley", players=data, progress=False)
    with pytest.raises(tribute.UnsupportedModelError, match="Methods for 'data' games: datamodels, "):
        tribute.explain(case.model, case.X_test, method="lime", players=data, progress=False)
    with pytest.raises(tribute.UnsupportedModelError, match=r"players=tribute\.TrainingData\(X_train"):
        tribute.explain(case.model, case.X_test, method="influence", progress=False)


def test_bank_reads_a_negative_zero_mask_entry_as_the_same_subset() -> None:
    """A mask holding ``-0.0`` (the same subset) was trained a second time."""
    case = ridge_case(n=5, d=2, n_test=1)
    counting = CountingFit(case.fit)
    data = tribute.TrainingData(case.X, case.y, fit=counting, loss="mse")
    data.bank.check_determinism = False
    first = data.bank.params(np.array([[1.0, 0.0, 1.0, 1.0, 1.0]]))
    again = data.bank.params(np.array([[1.0, -0.0, 1.0, 1.0, 1.0]]))
    assert counting.calls == 1 and data.bank.n_trained == 1  # 2 before
    assert np.array_equal(first, again)
