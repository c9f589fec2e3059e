"""rev47z: Banzhaf on a data game trained one model past its budget after aud47e.

aud47e's flat-draws check read ``v(N)`` through ``game.full()``. Feature and component games
have it from their reference pass; a data game has none, so the check trained one more model
on the whole training set: ``budget=20`` gave ``n_evals`` 21 and 21 models trained (20 on the
base commit), on every call. The check now reads ``v(N)`` only where the game already knows it.
Truth: the budget contract (``n_evals <= budget``) and the fits counted at the fit callable.
"""

from __future__ import annotations

import pytest
import torch
from data_cases import CountingFit, ridge_case

import tribute


@pytest.mark.parametrize(("n", "budget", "estimator"),
                         [(12, 20, "msr"), (10, 8, "msr"), (16, 30, "msr"), (12, 20, "ols")])
def test_data_banzhaf_trains_no_model_past_its_budget(n: int, budget: int, estimator: str) -> None:
    case = ridge_case(n=n, n_test=2)
    counting = CountingFit(case.fit)
    data = tribute.TrainingData(case.X, case.y, fit=counting, loss="mse")
    attr = tribute.explain(case.model, case.X_test, method="banzhaf", players=data, budget=budget,
                           estimator=estimator, seed=0, progress=False)
    assert attr.n_evals <= budget
    assert data.bank.n_trained <= budget
    assert counting.calls <= budget + 1  # the bank's one determinism check at most
    assert torch.isfinite(torch.as_tensor(attr.values)).all()
