"""Audit aud46k (stop 46): SAE latents on token activations, TCAV and CRAFT inputs, label leakage.

- An SAE whose encoder picks latents across the whole batch (batch top-k: the ``k x rows``
  largest pre-activations of the batch, as such SAEs are trained) gave each row latents that
  depend on the rows the game stacks with it: credits of three inputs explained together were
  0.21 off the same inputs explained one at a time (feature_ablation), silently. The engine's own
  check that rows do not depend on each other reads gradients, and a top-k selection carries
  none. Now refused, naming the inference form. Truth: the credits by hand (a forward hook
  replacing the activation by ``decode(z * keep) + e``) with each input encoded alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import UnsupportedModelError

DT = torch.float64


def _token_net() -> nn.Module:
    class Tok(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Linear(3, 6, dtype=DT)
            self.mid = nn.Sequential(nn.Linear(6, 6, dtype=DT), nn.GELU())
            self.head = nn.Linear(6, 3, dtype=DT)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.mid(self.emb(x)).mean(1))

    torch.manual_seed(0)
    return Tok().eval()


def _dictionary(m: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(m, 6, generator=g, dtype=DT), torch.randn(6, m, generator=g, dtype=DT) * 2.0  # non-unit decoder


def _batch_topk(W: torch.Tensor, k: int = 2) -> Any:
    def encode(a: torch.Tensor) -> torch.Tensor:
        z = torch.relu(a @ W.T)
        flat = z.reshape(-1)
        keep = torch.zeros_like(flat)
        keep[flat.topk(k * int(np.prod(a.shape[:-1]))).indices] = 1.0
        return (flat * keep).reshape(z.shape)

    return encode


def _row_encoders(W: torch.Tensor) -> dict[str, Any]:
    def topk(a: torch.Tensor) -> torch.Tensor:
        z = torch.relu(a @ W.T)
        v, i = z.topk(2, -1)
        return torch.zeros_like(z).scatter(-1, i, v)

    return {"relu": lambda a: torch.relu(a @ W.T), "jumprelu": lambda a: (a @ W.T) * (a @ W.T > 0.4), "topk": topk}


def _hand_ablation(net: nn.Module, enc: Any, dec: Any, x: torch.Tensor, target: torch.Tensor, m: int) -> np.ndarray:
    """Leave-one-out credits by hand, each input run alone: v(all) - v(all but player i)."""
    mod = net.get_submodule("mid")

    def v(keep: torch.Tensor, err: float) -> np.ndarray:
        def hook(_m: nn.Module, _i: Any, o: torch.Tensor) -> torch.Tensor:
            z = enc(o)
            return dec(z * keep) + err * (o - dec(z))

        h = mod.register_forward_hook(hook)
        try:
            with torch.no_grad():
                outs = [net(x[b : b + 1])[0, int(target[b])] for b in range(x.shape[0])]
        finally:
            h.remove()
        return torch.stack(outs).numpy()

    ones = torch.ones(m, dtype=DT)
    full = v(ones, 1.0)
    cols = [full - v(ones.index_fill(0, torch.tensor(j), 0.0), 1.0) for j in range(m)]
    return np.stack([*cols, full - v(ones, 0.0)], axis=1)


def _hooks(net: nn.Module) -> int:
    return sum(len(k._forward_hooks) + len(k._forward_pre_hooks) for k in net.modules())


def test_a_batch_topk_encoder_is_refused_instead_of_credits_that_depend_on_the_batch() -> None:
    net = _token_net()
    W, D = _dictionary()
    enc, dec = _batch_topk(W), (lambda z: z @ D.T)
    x = torch.randn(3, 4, 3, dtype=DT, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0, 2, 1])
    # the wrong numbers main gave are real: this input set's latents differ together and alone
    with torch.no_grad():
        h = net.get_submodule("mid")(net.get_submodule("emb")(x))
    assert not torch.equal(enc(h), torch.cat([enc(h[b : b + 1]) for b in range(3)]))
    hooks = _hooks(net)
    with pytest.raises(UnsupportedModelError, match=r"(?s)latents.*batch top-k.*JumpReLU"):
        tribute.explain(net, x, method="feature_ablation", target=target,
                        players=tribute.components(net, sae=tribute.SAE(enc, dec, at="mid")))
    assert _hooks(net) == hooks and not net.training


@pytest.mark.parametrize("kind", ["relu", "jumprelu", "topk"])
def test_per_row_encoders_on_tokens_are_credited_as_each_input_alone(kind: str) -> None:
    net = _token_net()
    W, D = _dictionary(5)
    enc, dec = _row_encoders(W)[kind], (lambda z: z @ D.T)
    x = torch.randn(3, 4, 3, dtype=DT, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0, 2, 1])
    attr = tribute.explain(net, x, method="feature_ablation", target=target,
                           players=tribute.components(net, sae=tribute.SAE(enc, dec, at="mid")))
    np.testing.assert_allclose(np.asarray(attr.values), _hand_ablation(net, enc, dec, x, target, 5), atol=1e-12)
    # exact Shapley: efficiency against the hand values of all and none
    ex = tribute.explain(net, x, method="exact_shapley", target=target,
                         players=tribute.components(net, sae=tribute.SAE(enc, dec, at="mid")))
    with torch.no_grad():
        full = net(x).gather(1, target[:, None])[:, 0].numpy()
    h = net.get_submodule("mid").register_forward_hook(lambda _m, _i, o: torch.zeros_like(o))
    try:
        with torch.no_grad():
            empty = net(x).gather(1, target[:, None])[:, 0].numpy()
    finally:
        h.remove()
    np.testing.assert_allclose(np.asarray(ex.values).sum(1), full - empty, atol=1e-12)
