"""aud43i: the sampling estimators (permutation Shapley, Banzhaf, LIME, Sobol, RISE) with seeds at
the edge of what their random generators take.

Regression (failed before the fix): a seed of ``2**64`` passed ``check_seed`` and reached
``torch.Generator.manual_seed``, which raised a bare ``ValueError("Overflow when unpacking long
long")`` from inside the estimator, after the game was built (banzhaf, lime, rise, sobol with
``sampler="random"``, permutation_shapley). Now an :class:`InputError` names the seed up front;
the largest seed torch takes, ``2**64 - 1``, still runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError

CASES: list[tuple[str, dict[str, Any], int]] = [
    ("permutation_shapley", {}, 2 + 2 * 5 * 2),  # sampled: 2^6 = 64 > budget
    ("banzhaf", {}, 20),
    ("banzhaf", {"estimator": "ols"}, 20),
    ("lime", {}, 20),
    ("sobol", {"sampler": "random"}, 2 * 8 + 1),
    ("rise", {}, 10),
]


def _setup() -> tuple[nn.Module, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return net, torch.randn(2, 6, generator=g, dtype=torch.float64)


@pytest.mark.parametrize(("method", "params", "budget"), CASES, ids=[f"{m}-{p}" for m, p, _ in CASES])
def test_a_seed_past_64_bits_is_refused_by_name(method: str, params: dict[str, Any], budget: int) -> None:
    net, x = _setup()
    kw: dict[str, Any] = {"target": 0, "baseline": 0.0, "progress": False, "budget": budget, **params}
    with pytest.raises(InputError, match=r"seed=18446744073709551616 .*2\*\*64"):
        tribute.explain(net, x, method=method, seed=2**64, **kw)
    # the largest seed torch's generators take still runs, and reproduces itself
    a = tribute.explain(net, x, method=method, seed=2**64 - 1, **kw)
    b = tribute.explain(net, x, method=method, seed=2**64 - 1, **kw)
    np.testing.assert_array_equal(np.asarray(a.values), np.asarray(b.values))
    assert np.isfinite(np.asarray(a.values)).all()
