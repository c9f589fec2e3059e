"""rev48c: siblings of aud48c's batch check on component games.

An SAE game (a ComponentGame subclass) on a model that mixes the batch after the SAE's site was
silent before aud48c (exact_shapley credits moved with ``batch_size``); it is refused now and the
model keeps no hooks. A CNN with BatchNorm2d in eval mode (running statistics) evaluates each row
on its own: not refused, and its channel credits equal hand leave-one-out with a forward hook.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import ModelOutputError


class _SaeNet(nn.Module):
    def __init__(self, mix: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.blocks, self.head = nn.Linear(3, 4), nn.ModuleList([nn.Linear(4, 4)]), nn.Linear(4, 2)
        self.mix = mix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks[0](self.emb(x))
        if self.mix:  # a batch statistic after the SAE's site
            h = h - 0.5 * h.mean(0, keepdim=True)
        out: torch.Tensor = self.head(torch.tanh(h))
        return out


def _sae() -> tribute.SAE:
    torch.manual_seed(1)
    enc, dec = nn.Linear(4, 5).double(), nn.Linear(5, 4).double()
    return tribute.SAE(nn.Sequential(enc, nn.ReLU()), dec, at="blocks.0")


def _hooks(m: nn.Module) -> int:
    return sum(len(x._forward_hooks) + len(x._forward_pre_hooks) for x in m.modules())


@pytest.mark.parametrize("method", ["exact_shapley", "feature_ablation", "atp"])
@pytest.mark.parametrize("batch_size", [None, 64])
def test_an_sae_game_on_a_batch_mixing_model_is_refused(method: str, batch_size: int | None) -> None:
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    net = _SaeNet(mix=True).double().eval()
    with pytest.raises(ModelOutputError, match="changes with the other rows"):
        tribute.explain(net, x, method=method, players=tribute.components(net, sae=_sae()), target=0,
                        batch_size=batch_size, progress=False)
    assert _hooks(net) == 0 and not net.training
    ok = _SaeNet(mix=False).double().eval()  # the same model without the mix runs
    attr = tribute.explain(ok, x, method=method, players=tribute.components(ok, sae=_sae()), target=0,
                           batch_size=batch_size, progress=False)
    assert np.isfinite(np.asarray(attr.values)).all() and _hooks(ok) == 0


class _Cnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.bn, self.head = nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Linear(4, 3)
        mean, var = self.bn.running_mean, self.bn.running_var
        assert mean is not None and var is not None
        with torch.no_grad():
            mean.uniform_(-0.5, 0.5)
            var.uniform_(0.5, 2.0)
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += int(x.shape[0])
        out: torch.Tensor = self.head(torch.relu(self.bn(self.conv(x))).mean((2, 3)))
        return out


@pytest.mark.parametrize("batch_size", [None, 3, 64])
@pytest.mark.parametrize("site", ["bn", "conv"])
def test_batchnorm_with_running_stats_is_not_refused_and_gives_hand_loo(batch_size: int | None, site: str) -> None:
    net = _Cnn().double().eval()
    x = torch.randn(5, 2, 4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    target = np.array([0, 1, 2, 0, 1])
    attr = tribute.explain(net, x, method="feature_ablation", target=target, batch_size=batch_size,
                           players=tribute.components(net, site, unit="channel"), progress=False)
    assert attr.n_rows == net.seen and _hooks(net) == 0 and not net.training
    mod = getattr(net, site)
    rows = torch.arange(5)
    truth = np.zeros((5, 4))
    with torch.no_grad():
        full = net(x)[rows, torch.as_tensor(target)]
        for c in range(4):
            def drop(m: nn.Module, a: Any, o: torch.Tensor, c: int = c) -> torch.Tensor:
                o = o.clone()
                o[:, c] = 0.0
                return o
            h = mod.register_forward_hook(drop)
            try:
                truth[:, c] = (full - net(x)[rows, torch.as_tensor(target)]).numpy()
            finally:
                h.remove()
    assert np.allclose(np.asarray(attr.values), truth, atol=1e-12)
