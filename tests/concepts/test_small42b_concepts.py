"""small42b: TCAV / CRAFT at a layer inside a sequence-first torch module (``batch_first=False``).

With as many tokens as examples, a layer inside a seq-first ``nn.TransformerEncoder`` outputs
``tokens x batch x channels``, the shape of a batch-first output: TCAV read token t as example t
(scores 0.333 vs 0.667 for the batch-first twin of the same weights, silently). Such layers are
refused up front from torch's own ``batch_first`` (rev42c's ``sequence_first_owner``)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from tribute.errors import UnsupportedModelError
from tribute.methods.craft import craft
from tribute.methods.tcav import tcav

T = B = 6  # tokens == examples: the shapes cannot tell the layouts apart


class _Enc(nn.Module):
    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.bf = batch_first
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=batch_first)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.enc(x if self.bf else x.transpose(0, 1))
        h = h if self.bf else h.transpose(0, 1)
        out: torch.Tensor = self.head(h.mean(1))
        return out


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return (torch.randn(B, T, 8, generator=g), torch.randn(B, T, 8, generator=g) + 1.0,
            torch.randn(B, T, 8, generator=g))


def _act(model: nn.Module, path: str, x: torch.Tensor) -> torch.Tensor:
    seen: dict[str, torch.Tensor] = {}

    def keep(_m: nn.Module, _a: Any, o: Any) -> None:
        seen["a"] = o.detach()

    h = model.get_submodule(path).register_forward_hook(keep)
    try:
        with torch.no_grad():
            model(x)
    finally:
        h.remove()
    return seen["a"]


@pytest.mark.parametrize("layer", ["enc.layers.0.linear1", "enc.layers.0.norm2", "enc"])
def test_tcav_refuses_a_layer_inside_a_sequence_first_encoder(layer: str) -> None:
    x, xc, xr = _data()
    sf, bf = _Enc(False), _Enc(True)
    bf.load_state_dict(sf.state_dict())
    path = "enc.layers.0.linear1" if layer == "enc" else layer
    # by hand: the seq-first activation is the batch-first one transposed, of the same shape,
    # and read as it comes (token t as example t) it is a different matrix
    a_sf, a_bf = _act(sf, path, x), _act(bf, path, x)
    assert a_sf.shape == a_bf.shape
    assert torch.allclose(a_sf.transpose(0, 1), a_bf, atol=1e-5)
    assert (a_sf - a_bf).abs().max() > 0.1
    with pytest.raises(UnsupportedModelError, match=r"batch_first=False") as err:
        tcav(sf, x, xc, xr, layer=layer, target=0, n_random=4, n_permutations=20, batch_size=B)
    assert repr(layer) in str(err.value) and "TransformerEncoder" in str(err.value)
    r = tcav(bf, x, xc, xr, layer=layer, target=0, n_random=4, n_permutations=20, batch_size=B)
    assert r is not None  # the batch-first twin is read as before


class _ImgEnc(nn.Module):
    """Images -> 4 row tokens of width 12 -> a seq-first encoder layer (ReLU module) -> head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(12, 8)
        self.enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tok = self.proj(x.reshape(x.shape[0], 3, 4, 4).permute(0, 2, 1, 3).reshape(x.shape[0], 4, 12))
        h = self.enc(tok.transpose(0, 1)).transpose(0, 1)
        out: torch.Tensor = self.head(h.mean(1))
        return out


def test_craft_refuses_a_layer_inside_a_sequence_first_encoder() -> None:
    images = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(UnsupportedModelError, match=r"'enc.activation' sits in module 'enc'.*batch_first=False"):
        craft(_ImgEnc(), images, layer="enc.activation", target=0, n_concepts=2, n_crops=4, n_designs=4,
              batch_size=4)
