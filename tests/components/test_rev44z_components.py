"""rev44z: a site whose activation is a view of another site's (same memory, same layout)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import tribute
from tribute.errors import InputError


class _View(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape)  # a new tensor object over the same memory


def _shapley_of_units(net: torch.nn.Sequential, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Exact Shapley values of the Linear's units (mean ablation), by enumeration by hand."""
    lin, rest = net[0], net[2:]
    h = lin(x)
    n = h.shape[1]
    out = torch.zeros(x.shape[0], n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for k in range(n):
            for s in itertools.combinations(others, k):
                w = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                keep = torch.zeros(n, dtype=torch.bool)
                keep[list(s)] = True
                without = torch.where(keep, h, mean)
                keep[i] = True
                with_i = torch.where(keep, h, mean)
                out[:, i] += w * (rest(with_i)[:, 0] - rest(without)[:, 0])
    return out


def test_a_view_of_a_site_activation_is_refused_like_the_tensor_itself() -> None:
    # before: ["0", "1"] gave each unit twice, each credited half (0.0238 twice for 0.0476)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), _View(), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    x = torch.randn(5, 4)
    with torch.no_grad():
        truth = _shapley_of_units(net, x, net[0](x).mean(0))
    one = tribute.explain(net, x, players=tribute.components(net, "0", ablation="mean"),
                          method="exact_shapley", target=0)
    torch.testing.assert_close(torch.as_tensor(one.values).float(), truth, rtol=1e-4, atol=1e-6)
    for mods in (["0", "1"], ["1", "0"]):
        with pytest.raises(InputError, match="give the same activation tensor"):
            tribute.explain(net, x, players=tribute.components(net, mods, ablation="mean"),
                            method="exact_shapley", target=0)


def test_a_reshaped_copy_or_an_edited_view_is_not_refused() -> None:
    # other values (an in-place edit) or another layout are other units: still two player sets
    class _Scaled(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.view(x.shape).mul_(2.0)

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), _Scaled(), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    x = torch.randn(5, 4)
    attr = tribute.explain(net, x, players=tribute.components(net, ["0", "1"], ablation="mean"),
                           method="exact_shapley", target=0)
    assert attr.values.shape == (5, 6)
