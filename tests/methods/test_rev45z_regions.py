"""rev45z: extremal_perturbation under the caller's torch.no_grad() (eng45 covered the engine's rows)."""

from __future__ import annotations

import numpy as np
import torch

import tribute


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(16, 2)).eval()


def test_extremal_perturbation_runs_under_no_grad() -> None:
    net = _net()
    x = torch.rand(1, 3, 8, 8)
    plain = tribute.explain(net, x, method="extremal_perturbation", target=0, steps=3, areas=(0.2,))
    for ctx in (torch.no_grad, lambda: torch.set_grad_enabled(False)):
        with ctx():
            got = tribute.explain(net, x, method="extremal_perturbation", target=0, steps=3, areas=(0.2,))
        np.testing.assert_array_equal(np.asarray(got.values), np.asarray(plain.values))
        assert got.n_evals == plain.n_evals
    assert torch.is_grad_enabled()
    assert all(p.grad is None and p.requires_grad for p in net.parameters())
