"""Review rev46d of aud46d: training-data attribution checked against truths computed outside
tribute (the exact Gauss-Newton solve of a model linear in one weight, squared error)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tribute
from tribute.errors import UnsupportedModelError

N, D, L2 = 10, 3, 0.4


def _data(seed: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    return (torch.tensor(rng.normal(size=(N, D))), torch.tensor(rng.normal(size=N)),
            torch.tensor(rng.normal(size=(2, D))))


class _Functional(torch.nn.Module):
    """``out = lin(x) + F.linear(x, lin.weight)``: the Linear's weight also used functionally."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(D, 1, bias=False).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + F.linear(x, self.lin.weight)


class _Matmul(torch.nn.Module):
    """``out = 2 w.x`` through a registered Linear that is never called (``x @ w.T``)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(D, 1, bias=False).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x @ self.lin.weight.T


@pytest.mark.parametrize("cls", [_Functional, _Matmul])
def test_ekfac_refuses_a_linear_weight_used_outside_the_layers_call(cls: type[torch.nn.Module]) -> None:
    # before: EK-FAC took the weight's gradient from the Linear's call alone (or none, for a
    # Linear never called) and the credits were 2.2x off the exact solve (or 0), with no error.
    # Truth: out = 2 w.x, squared error: the Gauss-Newton matrix is 4 X^T X + l2 I exactly
    X, y, Xt = _data()
    m = cls()
    lin = m.lin
    assert isinstance(lin, torch.nn.Linear)
    H = 4 * X.T @ X + L2 * torch.eye(D, dtype=torch.float64)
    w = torch.linalg.solve(H, 2 * X.T @ y)
    with torch.no_grad():
        lin.weight.copy_(w[None])
    r = 2 * X @ w - y
    truth = -(2 * Xt) @ torch.linalg.solve(H, (2 * r[:, None] * X).T)
    data = tribute.TrainingData(X, y, loss="mse", l2=L2, reduction="sum")
    exact = tribute.explain(m, Xt, method="influence", solver="explicit", damping=0.0, players=data)
    assert torch.allclose(exact.values.reshape(2, N), truth, rtol=1e-10, atol=1e-12)
    sd = copy.deepcopy(m.state_dict())
    with pytest.raises(UnsupportedModelError, match=r"also used outside that layer's call") as info:
        tribute.explain(m, Xt, method="influence", solver="ekfac", damping=0.0, players=data)
    assert "solver='cg' or 'explicit'" in str(info.value)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in sd.items())
    assert sum(len(x._forward_hooks) for x in m.modules()) == 0
    assert all(p.requires_grad for p in m.parameters())


def test_tracin_takes_checkpoints_given_as_a_module_list() -> None:
    # before (aud46d): an nn.ModuleList of checkpoint models was refused as "one ModuleList"
    # (main took it). Truth: TracInCP by hand, sum_k lr_k * -<[x_t, 1], (theta_k . a_i - y_i) a_i>
    X, y, Xt = _data(11)
    torch.manual_seed(4)
    mods = [torch.nn.Linear(D, 1).double() for _ in range(3)]
    A = torch.cat([X, torch.ones(N, 1, dtype=torch.float64)], 1)
    At = torch.cat([Xt, torch.ones(2, 1, dtype=torch.float64)], 1)
    thetas = [torch.cat([m.weight.detach().reshape(-1), m.bias.detach()]) for m in mods[:2]]
    truth = sum(-At @ ((A @ th - y)[:, None] * A).T for th in thetas)
    assert isinstance(truth, torch.Tensor)
    ckpts: Any = torch.nn.ModuleList(mods[:2])  # iterable of models, not typed a Sequence
    data = tribute.TrainingData(X, y, loss="mse", checkpoints=ckpts)
    attr = tribute.explain(mods[2], Xt, method="tracin", players=data)
    assert torch.allclose(attr.values.reshape(2, N), truth, rtol=1e-12, atol=1e-14)
