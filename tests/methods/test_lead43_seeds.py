"""Seeds near the top of the accepted range (``params.check_seed``: below 2**64) run everywhere.

gp_shapley's NNGP grid seeded ``seed + 7919`` and TRAK's projection ``seed * 7919 + block``:
seeds at or above ``2**64 - 7919`` (shapley) and above ``2**64 / 7919`` (TRAK) failed with torch's
bare ``ValueError: Overflow when unpacking long long``. Both derived seeds are now taken modulo
2**64, which leaves every smaller seed's draws as they were (checked against the formula below).
"""

from __future__ import annotations

from typing import Any

import torch

import tribute
from tribute.games.data_fits import LogisticFit
from tribute.methods.data_trak import make_projector


def _net(n: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(n, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()


def test_shapley_runs_at_the_largest_accepted_seed() -> None:
    net = _net(14)
    x = torch.randn(2, 14, dtype=torch.float64)
    attr = tribute.explain(net, x, method="shapley", budget=128, target=0, seed=2**64 - 1)
    full = net(x)[:, 0] - net(torch.zeros_like(x))[:, 0]
    torch.testing.assert_close(attr.values.sum(1), full.detach(), atol=1e-6, rtol=0)  # efficiency


def test_trak_runs_at_large_seeds_and_small_seeds_are_unchanged() -> None:
    torch.manual_seed(0)
    X = torch.randn(40, 14, dtype=torch.float64)
    y = torch.randint(0, 2, (40,))
    fit = LogisticFit(2, l2=1.0)
    model = fit(X, y, seed=0)
    data = tribute.TrainingData(X, y, fit=fit)
    x = torch.randn(2, 14, dtype=torch.float64)
    kw: dict[str, Any] = {"target": torch.tensor([0, 1]), "players": data, "proj_dim": 8}
    big = tribute.explain(model, x, method="trak", seed=10**16, **kw)  # 10**16 * 7919 > 2**64
    assert torch.isfinite(torch.as_tensor(big.values)).all()
    top = tribute.explain(model, x, method="trak", seed=2**64 - 1, **kw)
    assert torch.isfinite(torch.as_tensor(top.values)).all()


def test_trak_projection_of_ordinary_seeds_is_the_documented_draw() -> None:
    # R ~ N(0, 1/k) drawn from torch.Generator().manual_seed(seed * 7919 + block): unchanged by the
    # modulo for every seed whose derived seed fits in 64 bits
    k, n = 4, 6
    for seed in (0, 3, 2**40):
        project = make_projector(n, k, seed)
        g = torch.Generator().manual_seed(seed * 7919)
        R = torch.randn(n, k, generator=g, dtype=torch.float64) / k**0.5
        torch.testing.assert_close(project(torch.eye(n, dtype=torch.float64)), R, atol=0, rtol=0)
