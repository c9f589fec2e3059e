"""rev44c: review of aud44c (component sites).

aud44c refused two sites whose modules give the same tensor object with the same values. That
also refused sites that are different players: two eval-mode Dropouts on one hidden state in two
branches (ablating ``drop_a``'s unit changes branch a only), or a site and the ``nn.Identity``
norm of the residual block after it (ablating the norm's unit leaves the skip path alone). Truth:
zero ablation of each unit by a hand forward hook (feature ablation = leave-one-out)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import tribute

DT = torch.float64


class _Branches(nn.Module):
    """One hidden state feeds two heads, each behind its own (eval-mode) Dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4, dtype=DT)
        self.drop_a, self.drop_b = nn.Dropout(0.1), nn.Dropout(0.1)
        self.ha, self.hb = nn.Linear(4, 1, dtype=DT), nn.Linear(4, 1, dtype=DT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc(x))
        return self.ha(self.drop_a(h)) + self.hb(self.drop_b(h) ** 2)


class _Residual(nn.Module):
    """A pre-norm residual block whose norm is an ``nn.Identity`` placeholder."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4, dtype=DT)
        self.norm = nn.Identity()
        self.mlp = nn.Linear(4, 4, dtype=DT)
        self.out = nn.Linear(4, 1, dtype=DT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return self.out(h + torch.tanh(self.mlp(self.norm(h))))


def _hand_loo(net: nn.Module, x: torch.Tensor, paths: list[str]) -> np.ndarray:
    with torch.no_grad():
        full = net(x)[:, 0]
    cols = []
    for path in paths:
        for j in range(4):
            def zero(m: nn.Module, i: object, o: torch.Tensor, j: int = j) -> torch.Tensor:
                o = o.clone()
                o[:, j] = 0
                return o

            h = net.get_submodule(path).register_forward_hook(zero)
            with torch.no_grad():
                cols.append((full - net(x)[:, 0]).numpy())
            h.remove()
    return np.stack(cols, 1)


@pytest.mark.parametrize(("make", "paths"), [(_Branches, ["drop_a", "drop_b"]), (_Residual, ["fc", "norm"])])
def test_one_tensor_reaching_two_sites_that_are_other_players_is_not_refused(make: type, paths: list[str]) -> None:
    torch.manual_seed(1)
    net = make().eval()
    x = torch.randn(5, 3, dtype=DT)
    got = tribute.explain(net, x, method="feature_ablation", players=tribute.components(net, paths), target=0)
    want = _hand_loo(net, x, paths)
    half = want.shape[1] // 2
    assert np.abs(want[:, :half] - want[:, half:]).max() > 0.05  # other players, not halves of one
    np.testing.assert_allclose(np.asarray(got.values), want, atol=1e-12)


def test_a_sequential_child_and_its_container_giving_one_tensor_are_still_refused() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Sequential(nn.Linear(5, 3), nn.Identity()),
                        nn.Linear(3, 1)).double().eval()
    x = torch.randn(3, 4, dtype=DT)
    for pair in (["2", "2.1"], ["2.0", "2.1"], ["2.0", "2"]):
        with pytest.raises(tribute.errors.InputError, match="give the same activation tensor"):
            tribute.explain(net, x, method="feature_ablation", players=tribute.components(net, pair))
