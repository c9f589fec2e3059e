"""gp_shapley_fit's search path (more pairs than ``search_pairs``) ranks tied kernels by rule.

On a search subset of mutually orthogonal codes (also orthogonal to all-ones) every isotropic
kernel's matrix is diagonal and every likelihood equal in exact arithmetic; ``topk`` / ``argmax``
then kept kernels by the likelihoods' last bits: 16 players, 12 orthogonal pairs searched on 8,
credits up to 0.14 of the largest apart after a 1e-15 relative change of the differences
(0.33 at 32 players, 20 pairs searched on 16; 0.25 at 256 players, 200 pairs on 128).
"""

from __future__ import annotations

import importlib

import torch


def _hadamard(k: int) -> torch.Tensor:
    h = torch.ones(1, 1, dtype=torch.float64)
    for _ in range(k):
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def test_search_path_is_stable_under_rounding_of_the_differences() -> None:
    gp = importlib.import_module("tribute.methods.gp_shapley")
    codes = _hadamard(4)[1:13].contiguous()  # 12 pairs of 16 players, orthogonal, balanced
    assert torch.equal(codes @ codes.T, 16 * torch.eye(12, dtype=torch.float64))
    assert torch.equal(codes.sum(1), torch.zeros(12, dtype=torch.float64))
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(2, 12, generator=gen, dtype=torch.float64)
    delta = torch.randn(2, generator=gen, dtype=torch.float64)
    phi_a = gp.gp_shapley_fit(codes, d, delta, search_pairs=8)[0]
    for eps in (1e-15, -1e-15, -3e-15):  # each moved the credits before (1e-3 to 1e-2 here)
        phi_b = gp.gp_shapley_fit(codes, d * (1 + eps), delta, search_pairs=8)[0]
        gap = float((phi_a - phi_b).abs().max())
        assert gap <= 1e-9 * float(phi_a.abs().max()), (eps, gap)


def test_top_first_ranks_rounding_ties_in_index_order() -> None:
    gp = importlib.import_module("tribute.methods.gp_shapley")
    a = -11.190412345
    ll = torch.tensor([[a, a * (1 - 1e-15), a, a - 1.0], [a - 1.0, a, a * (1 + 1e-15), a]],
                      dtype=torch.float64)
    assert gp._top_first(ll, 3).tolist() == [[0, 1, 2], [1, 2, 3]]
    # clear differences keep the likelihood order (as topk)
    ll = torch.tensor([[-3.0, -1.0, -2.0, 5.0]], dtype=torch.float64)
    assert gp._top_first(ll, 4).tolist() == ll.topk(4, dim=1).indices.tolist()
