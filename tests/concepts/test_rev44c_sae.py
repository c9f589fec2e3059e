"""rev44c: an SAE spliced at a module that returns a named tuple gave the model a plain tuple back,
and the model's ``out.h`` raised ``AttributeError: 'tuple' object has no attribute 'h'`` (the same
rebuild aud44c fixed for component sites). Truth: zero ablation of each latent by hand, the error
term kept and the named tuple's other field unchanged."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

import tribute

DT = torch.float64


class _Out(NamedTuple):
    h: torch.Tensor
    aux: torch.Tensor


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 4, dtype=DT)

    def forward(self, x: torch.Tensor) -> _Out:
        h = torch.tanh(self.lin(x))
        return _Out(h, h.sum(-1))


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blk = _Block()
        self.out = nn.Linear(4, 2, dtype=DT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.blk(x)
        return self.out(o.h) + o.aux[:, None]  # reads the fields by name


def test_an_sae_at_a_module_returning_a_named_tuple_keeps_its_fields() -> None:
    torch.manual_seed(0)
    net = _Net().eval()
    enc, dec = nn.Linear(4, 5, dtype=DT), nn.Linear(5, 4, dtype=DT)
    sae = tribute.SAE(lambda a: torch.relu(enc(a)), lambda z: dec(z), at="blk")
    x = torch.randn(3, 3, dtype=DT)
    got = tribute.explain(net, x, method="feature_ablation", players=tribute.components(net, sae=sae), target=0)
    with torch.no_grad():
        h = torch.tanh(net.blk.lin(x))
        aux = h.sum(-1)  # the other field: from the module's own (unspliced) output
        z = torch.relu(enc(h))
        rec = dec(z)

        def f(a: torch.Tensor) -> torch.Tensor:
            return (net.out(a) + aux[:, None])[:, 0]

        want = np.stack([(f(h) - f(h + dec(z * (torch.arange(5) != j)) - rec)).numpy() for j in range(5)], 1)
    assert np.abs(want).max() > 0.01
    np.testing.assert_allclose(np.asarray(got.values)[:, :5], want, atol=1e-12)
