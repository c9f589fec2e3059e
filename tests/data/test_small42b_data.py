"""small42b: ``grad_cos`` with ``groups`` credits a group with the sum of its members' cosines
(documented; checked against the cosines by plain autograd)."""

from __future__ import annotations

import numpy as np
from data_cases import ridge_case
from test_data_gradient import _manual_grads

import tribute
from tribute.methods.data_gradient import GradCos


def test_grad_cos_group_credit_is_the_sum_of_member_cosines() -> None:
    case = ridge_case(n=20, n_test=3)
    test, train = _manual_grads(case)
    cos = (-(test / test.norm(dim=1, keepdim=True)) @ (train / train.norm(dim=1, keepdim=True)).T).numpy()
    groups = np.arange(20) // 5
    got = tribute.explain(case.model, case.X_test, method="grad_cos", players=case.data(groups=groups)).values.numpy()
    want = np.stack([cos[:, groups == g].sum(1) for g in range(4)], 1)
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert np.abs(got).max() > 1.0  # not a cosine
    doc = GradCos.__doc__ or ""
    assert "sum of its members' cosines" in doc and "exceed 1" in doc
