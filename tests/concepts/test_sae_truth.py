"""SAE latents on per-token activations against a truth computed with the test's own hooks
(audit aud33s, stop 33): a TopK encoder with a tied decoder spliced after a residual block,
coalition values for every coalition, exact Shapley by enumeration, attribution patching as
``grad x (actual - ablation)`` at the latents, and ``"mean"`` taken per token position."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

import tribute

D, T, D_SAE = 6, 3, 4
N = D_SAE + 1  # latents and the error player


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(D, 2 * D), nn.Linear(2 * D, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.fc2(torch.tanh(self.fc1(x)))
        return out


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Linear(3, D)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(D, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x)
        for b in self.blocks:
            h = b(h)
        out: torch.Tensor = self.head(torch.tanh(h)).sum(1)
        return out


class TopK(nn.Module):
    """``z = TopK_2(ReLU(W (h - b_dec) + b))``."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(D, D_SAE)
        self.b_dec = nn.Parameter(0.1 * torch.randn(D))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.lin(h - self.b_dec))
        v, i = a.topk(2, dim=-1)
        return torch.zeros_like(a).scatter(-1, i, v)


class Tied(nn.Module):
    """``h_hat = z W + b_dec`` with the encoder's ``W``."""

    def __init__(self, enc: TopK) -> None:
        super().__init__()
        self.enc = (enc,)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = z @ self.enc[0].lin.weight + self.enc[0].b_dec
        return out


@pytest.fixture(scope="module")
def case() -> tuple[Net, tribute.SAE, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net = Net().double().eval()
    enc = TopK().double()
    sae = tribute.SAE(enc, Tied(enc), at="blocks.0")
    g = torch.Generator().manual_seed(1)
    return net, sae, torch.randn(4, T, 3, generator=g, dtype=torch.float64), torch.randn(
        7, T, 3, generator=g, dtype=torch.float64)


Ablate = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _latents(net: Net, sae: tribute.SAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _a: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        seen["z"] = sae.encoder(out)
        seen["e"] = out - sae.decoder(seen["z"])

    handle = net.blocks[0].register_forward_hook(hook)
    with torch.no_grad():
        net(x)
    handle.remove()
    return seen["z"], seen["e"]


def _value(net: Net, sae: tribute.SAE, x: torch.Tensor, keep: set[int], ablate: Ablate) -> torch.Tensor:
    """Target 0 of the model with the block's output replaced by ``dec(z') + e'``."""

    def hook(_m: nn.Module, _a: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
        z = sae.encoder(out)
        e = out - sae.decoder(z)
        az, ae = ablate(z, e)
        m = torch.tensor([float(j in keep) for j in range(D_SAE)], dtype=z.dtype)
        out2: torch.Tensor = sae.decoder(az + m * (z - az)) + (e if D_SAE in keep else ae)
        return out2

    handle = net.blocks[0].register_forward_hook(hook)
    with torch.no_grad():
        v = net(x)[:, 0]
    handle.remove()
    return v


def _ablations(net: Net, sae: tribute.SAE, ref: torch.Tensor) -> dict[str, Ablate]:
    zr, er = _latents(net, sae, ref)
    return {"zero": lambda z, e: (torch.zeros_like(z), torch.zeros_like(e)),
            # per token position: the mean over the reference rows only
            "mean": lambda z, e: (zr.mean(0, keepdim=True), er.mean(0, keepdim=True))}


@pytest.mark.parametrize("kind", ["zero", "mean"])
def test_coalition_values_and_exact_shapley_match_an_own_enumeration(case: tuple, kind: str) -> None:
    net, sae, x, ref = case
    ablate = _ablations(net, sae, ref)[kind]
    players = tribute.components(net, sae=sae, ablation=kind, reference=ref if kind == "mean" else None)
    coalitions = [frozenset(c) for r in range(N + 1) for c in itertools.combinations(range(N), r)]
    masks = torch.zeros(len(coalitions), N, dtype=torch.float64)
    for k, s in enumerate(coalitions):
        masks[k, sorted(s)] = 1.0
    truth = {s: _value(net, sae, x, set(s), ablate) for s in coalitions}
    got = players.make_game(net, x, target=0).value(masks)[:, :, 0]
    np.testing.assert_allclose(got.numpy(), torch.stack([truth[s] for s in coalitions], 1).numpy(), atol=1e-12)
    with torch.no_grad():
        assert torch.equal(got[:, -1], net(x)[:, 0])  # every player present: the model itself
    phi = torch.zeros(x.shape[0], N, dtype=torch.float64)
    for i in range(N):
        for s in coalitions:
            if i not in s:
                w = math.factorial(len(s)) * math.factorial(N - len(s) - 1) / math.factorial(N)
                phi[:, i] += w * (truth[s | {i}] - truth[s])
    attr = tribute.explain(net, x, method="exact_shapley", players=players, target=0)
    np.testing.assert_allclose(np.asarray(attr.values), phi.numpy(), atol=1e-12)


@pytest.mark.parametrize("kind", ["zero", "mean"])
def test_atp_is_the_latent_gradient_times_actual_minus_ablation_summed_over_tokens(case: tuple, kind: str) -> None:
    net, sae, x, ref = case
    ablate = _ablations(net, sae, ref)[kind]
    seen: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _a: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
        z = sae.encoder(out).detach().requires_grad_(True)
        e = (out - sae.decoder(z)).detach().requires_grad_(True)
        seen.update(z=z, e=e)
        out2: torch.Tensor = sae.decoder(z) + e
        return out2

    handle = net.blocks[0].register_forward_hook(hook)
    net(x)[:, 0].sum().backward()
    handle.remove()
    net.zero_grad()
    z, e = seen["z"], seen["e"]
    assert z.grad is not None and e.grad is not None
    az, ae = ablate(z.detach(), e.detach())
    truth = torch.cat([(z.grad * (z.detach() - az)).sum(1), (e.grad * (e.detach() - ae)).sum((1, 2))[:, None]], 1)
    players = tribute.components(net, sae=sae, ablation=kind, reference=ref if kind == "mean" else None)
    attr = tribute.explain(net, x, method="atp", players=players, target=0)
    np.testing.assert_allclose(np.asarray(attr.values), truth.detach().numpy(), atol=1e-12)
