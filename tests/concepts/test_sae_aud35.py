"""SAE latents audited against truths computed outside tribute (audit aud35s, stop 35).

An identity SAE (``encode = decode = identity``) at a module makes its latents exactly the
module's units: every estimator must give the latents the units' credits and the error player 0.
AtP* (GradDrop) on a residual-stream SAE at a residual layer gave the latents the plain AtP term
for their own layer (the splice ran after the GradDrop hook on the same module), so their credit
was ``(|AtP| + sum_{l != own} |AtP_-l|) / (L - 1)`` instead of the documented
``sum_{l != own} |AtP_-l| / (L - 1)`` the units get: 0.26 off on a credit of 0.52 here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import UnsupportedModelError
from tribute.methods.component_methods import AtPStar

D = 4


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, D))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = h + self.mlp(h)
        return out


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(3, D)
        self.blocks = nn.ModuleList([Block(), Block(), Block()])
        self.head = nn.Linear(D, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for b in self.blocks:
            h = b(h)
        out: torch.Tensor = self.head(torch.tanh(h))
        return out


class Identity(nn.Module):
    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return t * 1.0


@pytest.fixture(scope="module")
def net() -> Net:
    with torch.random.fork_rng():
        torch.manual_seed(2)
        return Net().double().eval()


def _x() -> torch.Tensor:
    return torch.randn(5, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def _graddrop_by_hand(net: Net, x: torch.Tensor) -> torch.Tensor:
    """GradDrop of the units of ``blocks.0``'s output, zero ablation: layer 0 (their own) gives 0,
    layers 1, 2 the AtP with that layer's residual contribution carrying no gradient."""

    def grad(drop: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        h1 = net.blocks[0](net.inp(x)).detach().requires_grad_(True)
        h = h1
        for layer in (1, 2):
            b = net.blocks[layer]
            assert isinstance(b, Block)
            h = h + b.mlp(h).detach() if layer == drop else b(h)
        net.head(torch.tanh(h))[:, 0].sum().backward()
        assert h1.grad is not None
        return h1.grad, h1.detach()

    g, h1 = grad(None)
    mags = sum((grad(layer)[0] * h1).abs() for layer in (1, 2))
    net.zero_grad()
    return torch.sign(g * h1) * mags / 2


def test_atp_star_on_a_residual_stream_sae_credits_the_latents_as_the_layers_units(net: Net) -> None:
    x = _x()
    star = AtPStar(layers=["blocks.0", "blocks.1", "blocks.2"])
    sae = tribute.SAE(Identity(), Identity(), at="blocks.0")
    def credits(players: object) -> np.ndarray:
        return np.asarray(star.attribute(tribute.build_game(net, x, players=players, target=0)).values)

    lat = credits(tribute.components(net, sae=sae))
    units = credits(tribute.components(net, "blocks.0"))
    truth = _graddrop_by_hand(net, x).numpy()
    np.testing.assert_allclose(units, truth, atol=1e-12)
    np.testing.assert_allclose(lat[:, :-1], truth, atol=1e-12)  # was 0.26 off (|AtP| added for layer 0)
    assert np.all(lat[:, -1] == 0)  # identity SAE: no error
    assert float(np.abs(truth).max()) > 0.1
    # an SAE inside a layer (blocks.1.mlp) was already right: the layer's hook runs after it
    inner = tribute.SAE(Identity(), Identity(), at="blocks.1.mlp")
    a = credits(tribute.components(net, sae=inner))
    b = credits(tribute.components(net, "blocks.1.mlp"))
    np.testing.assert_allclose(a[:, :-1], b, atol=1e-12)


@pytest.mark.parametrize("method", ["feature_ablation", "atp", "exact_shapley"])
def test_identity_sae_latents_are_the_units(net: Net, method: str) -> None:
    x, ref = _x(), torch.randn(9, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    sae = tribute.SAE(Identity(), Identity(), at="blocks.1")
    lat = tribute.explain(net, x, method=method, target=1,
                          players=tribute.components(net, sae=sae, ablation="mean", reference=ref))
    units = tribute.explain(net, x, method=method, target=1,
                            players=tribute.components(net, "blocks.1", ablation="mean", reference=ref))
    np.testing.assert_allclose(np.asarray(lat.values)[:, :-1], np.asarray(units.values), atol=1e-12)
    assert np.all(np.asarray(lat.values)[:, -1] == 0)


def _hooks(m: nn.Module) -> int:
    return sum(len(a._forward_hooks) + len(a._forward_pre_hooks) for a in m.modules())


def test_failures_inside_the_sae_name_the_module_and_shape_and_leave_the_model_as_it_was(net: Net) -> None:
    x = _x()
    enc = nn.Sequential(nn.Linear(D + 1, 6), nn.ReLU()).double()  # trained for another width
    dec = nn.Linear(6, D).double()
    net.train()
    try:
        before = {k: v.clone() for k, v in net.state_dict().items()}
        hooks = _hooks(net)
        cases = [
            (tribute.SAE(enc, dec, at="blocks.0"),
             r"SAE at 'blocks\.0': the encoder failed on the module's output of shape \(5, 4\)"),
            (tribute.SAE(lambda h: h[..., :0], dec, at="blocks.0"),  # no latents at all
             r"the encoder maps \(5, 4\) to \(5, 0\).*d_sae >= 1"),
            (tribute.SAE(Identity(), lambda z: z.float(), at="blocks.0"),
             r"decoder returns torch\.float32 but the module outputs torch\.float64"),
            (tribute.SAE(Identity(), nn.Linear(D + 1, D).double(), at="blocks.0"),
             r"the decoder failed on the latents of shape \(5, 4\)"),
        ]
        for sae, msg in cases:
            with pytest.raises(UnsupportedModelError, match=msg):
                tribute.explain(net, x, method="feature_ablation", target=0, players=tribute.components(net, sae=sae))
            assert net.training and _hooks(net) == hooks
            assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    finally:
        net.eval()
