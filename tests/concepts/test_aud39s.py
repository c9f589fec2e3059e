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


def _conv_net(inplace: bool) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=inplace), nn.Conv2d(4, 4, 3, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))


def test_tcav_at_a_layer_followed_by_an_inplace_relu_equals_the_same_net_without_inplace() -> None:
    """torchvision's VGG/AlexNet/ResNet stems apply ReLU(inplace=True) right after the layer: TCAV
    crashed (a raw 'leaf Variable ... in-place operation' RuntimeError), and its captured activations
    aliased the layer's output, so the in-place ReLU rewrote them (min 0.0 instead of -2.9)."""
    torch.manual_seed(0)
    net = _conv_net(True)
    ref = _conv_net(False)
    ref.load_state_dict(net.state_dict())
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 1, 6, 6, generator=g)
    c = torch.randn(10, 1, 6, 6, generator=g) + 0.7
    r = torch.randn(20, 1, 6, 6, generator=g)
    kw = dict(layer="0", target=1, n_random=4, n_permutations=20)
    got = tribute.tcav(net, x, c, r, **kw)  # type: ignore[arg-type]
    want = tribute.tcav(ref, x, c, r, **kw)  # type: ignore[arg-type]
    assert got.scores.tolist() == want.scores.tolist()
    assert got.random_scores.tolist() == want.random_scores.tolist()
    assert torch.allclose(torch.from_numpy(got.cav), torch.from_numpy(want.cav), rtol=0, atol=1e-12)
    assert _hooks(net) == 0


def test_craft_sees_the_layer_output_not_what_an_inplace_op_after_it_makes_of_it() -> None:
    """float64 model: the captured activations aliased the layer's output, so a ReLU(inplace=True)
    after a conv made the conv's negative outputs look non-negative and CRAFT ran on them."""
    torch.manual_seed(0)
    net = _conv_net(True).double()
    x = torch.randn(3, 1, 6, 6, dtype=torch.float64)
    with pytest.raises(InputError, match="negative activations"):
        tribute.craft(net, x, layer="0", target=1, n_concepts=2, n_crops=4, n_designs=8)
    assert _hooks(net) == 0
