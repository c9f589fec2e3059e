"""Audit aud39s (stop 39): concept methods and SAE players against truths computed outside tribute.

- CRAFT / TCAV on a layer whose module runs twice per forward pass (torchvision's
  ``BasicBlock.relu`` pattern): CRAFT stacked both calls' activations as if they were rows of
  more images (NMF on 2x the crops, importances of image ``i`` read from another call) and
  replaced both calls by one perturbation; TCAV silently used the last call. Both now refuse,
  naming the layer and the count, and leave the model as it was.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError, UnsupportedModelError


class _SharedReLU(nn.Module):
    """A block whose one ReLU module runs twice per forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.c1(x))
        h = self.relu(self.c2(h) + h)
        out: torch.Tensor = self.head(h.amax(dim=(2, 3)))
        return out


def _hooks(net: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules())


def test_craft_refuses_a_layer_that_runs_twice_per_forward_pass() -> None:
    torch.manual_seed(0)
    net = _SharedReLU().double().train()
    imgs = torch.randn(3, 1, 10, 10, dtype=torch.float64)
    with pytest.raises((InputError, UnsupportedModelError), match=r"'relu'.*2 times"):
        tribute.craft(net, imgs, layer="relu", target=1, n_concepts=2, n_crops=4, n_designs=8)
    assert net.training and _hooks(net) == 0


def test_tcav_refuses_a_layer_that_runs_twice_per_forward_pass() -> None:
    torch.manual_seed(0)
    net = _SharedReLU().double().train()
    x = torch.randn(8, 1, 10, 10, dtype=torch.float64)
    with pytest.raises((InputError, UnsupportedModelError), match=r"'relu'.*2 times"):
        tribute.tcav(net, x, x + 1.0, torch.randn(8, 1, 10, 10, dtype=torch.float64), layer="relu", target=1,
                     n_random=2, n_permutations=5)
    assert net.training and _hooks(net) == 0


class _Tok(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(7, 5)
        self.blocks = nn.ModuleList([nn.Linear(5, 5), nn.Linear(5, 5)])
        self.head = nn.Linear(5, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids)
        for b in self.blocks:
            h = h + torch.tanh(b(h))
        out: torch.Tensor = self.head(h.mean(1))
        return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_an_sae_in_another_dtype_than_the_model_is_named_with_the_fix(dtype: torch.dtype) -> None:
    """A dictionary loaded from safetensors keeps its file's dtype (float32, bfloat16); on a float64
    model the encoder's raw torch error was wrapped with 'check that the SAE was trained for this
    module', which is not the problem."""
    torch.manual_seed(0)
    net = _Tok().double().train()
    enc = nn.Sequential(nn.Linear(5, 6), nn.ReLU()).to(dtype)
    dec = nn.Linear(6, 5).to(dtype)
    sae = tribute.SAE(enc, dec, at="blocks.0")
    ids = torch.randint(0, 7, (3, 4))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(UnsupportedModelError, match=rf"(?=.*weights are {str(dtype).replace('torch.', '')})(?=.*dtype torch\.float64).*\.to\(torch\.float64\)"):
        tribute.explain(net, ids, method="feature_ablation", target=0, players=tribute.components(net, sae=sae))
    assert net.training and _hooks(net) == 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
