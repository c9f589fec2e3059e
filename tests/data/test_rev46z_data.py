"""rev46z: aud46d's refusal of one checkpoint given alone (a path, a state_dict, a model) also
refused a ``torch.nn.ModuleList`` of checkpoint models ("checkpoints is one ModuleList"), which
scored before. Truth: TracInCP by hand for a linear model under the mse loss,
``sum_k lr_k * -<[x_t, 1], (theta_k . a_i - y_i) a_i>`` (lr 1 each).
"""
from __future__ import annotations

from typing import Any

import pytest
import torch

import tribute
from tribute.errors import InputError


def test_a_module_list_of_checkpoint_models_is_taken() -> None:
    g = torch.Generator().manual_seed(0)
    n, d = 6, 3
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    Xt = torch.randn(2, d, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    mods = [torch.nn.Linear(d, 1).double() for _ in range(3)]
    A = torch.cat([X, torch.ones(n, 1, dtype=torch.float64)], 1)
    At = torch.cat([Xt, torch.ones(2, 1, dtype=torch.float64)], 1)
    thetas = [torch.cat([m.weight.detach().reshape(-1), m.bias.detach()]) for m in mods]
    truth = sum((-At @ ((A @ th - y)[:, None] * A).T for th in thetas), torch.zeros(2, n, dtype=torch.float64))
    both: list[Any] = [torch.nn.ModuleList(mods), list(mods)]  # typed Sequence; a ModuleList ran before
    for cks in both:
        data = tribute.TrainingData(X, y, loss="mse", checkpoints=cks)
        attr = tribute.explain(mods[2], Xt, method="tracin", players=data)
        assert torch.allclose(torch.as_tensor(attr.values).reshape(2, n), truth, rtol=1e-12, atol=1e-14)
    # one model (a Sequential is one model too) is still refused
    ones: list[Any] = [mods[0], torch.nn.Sequential(*mods)]
    for one in ones:
        with pytest.raises(InputError, match="pass a list of checkpoints"):
            tribute.TrainingData(X, y, loss="mse", checkpoints=one)
