"""evaluate scores component credits only on the components they describe (rev34c)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 5), torch.nn.Tanh(),
                               torch.nn.Linear(5, 2)).double()


def _sae(at: str) -> tribute.SAE:
    return tribute.SAE(torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU()).double(),
                       torch.nn.Linear(4, 5).double(), at=at)


@pytest.mark.parametrize("method", ["feature_ablation", "exact_shapley"])
def test_sae_credits_of_another_module_are_refused(method: str) -> None:
    # two SAEs of one (default) name and width have the same player names: deletion ablated
    # the SAE at layer 3 for credits of the one at layer 1 (0.128 for 0.044), silently
    net, x = _net(), torch.randn(3, 6, dtype=torch.float64)
    s1, s3 = _sae("1"), _sae("3")
    attr = tribute.explain(net, x, method=method, players=tribute.components(net, sae=s1), target=1, progress=False)
    with pytest.raises(InputError, match=r"component site 0 hooks 'sae@1\|"):
        tribute.evaluate(net, x, attr, metric="deletion", players=tribute.components(net, sae=s3), progress=False)
    same = tribute.evaluate(net, x, attr, metric="deletion", players=tribute.components(net, sae=s1), progress=False)
    assert np.isfinite(np.asarray(same.scores)).all()


def test_the_same_heads_named_by_another_path_are_accepted() -> None:
    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.attn(x, x, x, need_weights=False)[0]

    torch.manual_seed(0)
    net = torch.nn.Sequential(Block(), torch.nn.Flatten(), torch.nn.Linear(32, 2)).double().eval()
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    attr = tribute.explain(net, x, method="exact_shapley", players=tribute.components(net, "0", unit="head"),
                           target=0, progress=False)
    res = tribute.evaluate(net, x, attr, metric="shapley_error", players=tribute.components(net, "0.attn", unit="head"),
                           progress=False)
    np.testing.assert_allclose(res.scores, 0.0, atol=1e-12)


def test_an_sae_with_other_weights_at_the_same_module_is_refused() -> None:
    # same module, kind, name and width, another training run: deletion 0.0902 was scored for
    # credits whose own score is 0.0899, silently (rev34d)
    net, x = _net(), torch.randn(3, 6, dtype=torch.float64)
    torch.manual_seed(1)
    a = _sae("1")
    torch.manual_seed(2)
    b = _sae("1")
    attr = tribute.explain(net, x, method="feature_ablation", players=tribute.components(net, sae=a), target=1,
                           progress=False)
    with pytest.raises(InputError, match=r"component site 0 hooks 'sae@1\|"):
        tribute.evaluate(net, x, attr, metric="deletion", players=tribute.components(net, sae=b), progress=False)
    tribute.evaluate(net, x, attr, metric="deletion", players=tribute.components(net, sae=a), progress=False)


def test_an_sae_given_as_bound_methods_is_fingerprinted_too() -> None:
    # SAELens-style tribute.SAE(sae.encode, sae.decode): the digest was empty, so a retrained
    # SAE at the same module passed (rev34e)
    class Holder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc, self.dec = torch.nn.Linear(5, 4).double(), torch.nn.Linear(4, 5).double()

        def encode(self, a: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.enc(a))

        def decode(self, z: torch.Tensor) -> torch.Tensor:
            return self.dec(z)

    net, x = _net(), torch.randn(3, 6, dtype=torch.float64)
    torch.manual_seed(1)
    h1 = Holder()
    torch.manual_seed(2)
    h2 = Holder()
    a, b = tribute.SAE(h1.encode, h1.decode, at="1"), tribute.SAE(h2.encode, h2.decode, at="1")
    attr = tribute.explain(net, x, method="feature_ablation", players=tribute.components(net, sae=a), target=1,
                           progress=False)
    with pytest.raises(InputError, match=r"component site 0 hooks 'sae@1\|"):
        tribute.evaluate(net, x, attr, metric="deletion", players=tribute.components(net, sae=b), progress=False)
    tribute.evaluate(net, x, attr, metric="deletion", players=tribute.components(net, sae=a), progress=False)
