"""aud50x: TCAV and CRAFT refuse a target past the model's output columns on their first
forward pass, before the activations, CAVs or NMF; TCAV's scores against a hand computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tribute.errors import InputError, UnsupportedModelError
from tribute.methods.craft import craft
from tribute.methods.tcav import tcav


class _Mlp(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 4),
                                       torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += int(x.shape[0])
        out: torch.Tensor = self.net(x)
        return out


class _Cnn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.f = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += int(x.shape[0])
        out: torch.Tensor = self.head(self.f(x))
        return out


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return (torch.randn(30, 5, generator=g).double(), torch.randn(50, 5, generator=g).double() + 1,
            torch.randn(100, 5, generator=g).double())


@pytest.mark.parametrize("target", [3, -1])
def test_tcav_refuses_a_bad_target_on_its_first_forward_pass(target: int) -> None:
    # measured: refused by the gradient pass after 160 model rows (50 concept + 100 random
    # examples' activations + one batch of 10 inputs)
    model = _Mlp()
    x, xc, xr = _data()
    with pytest.raises(InputError, match=rf"target={target} must index a column.*\(10, 3\)"):
        tcav(model, x, xc, xr, layer="net.0", target=target, n_random=4, n_permutations=10, batch_size=10)
    assert model.rows == 10


def test_craft_refuses_a_bad_target_on_its_first_forward_pass() -> None:
    # measured: refused after the crops' activations, the NMF and the images' pass (134 rows)
    model = _Cnn()
    imgs = torch.rand(6, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    with pytest.raises(InputError, match=r"target=3 must index a column.*\(8, 3\)"):
        craft(model, imgs, layer="f.1", target=3, n_concepts=2, n_designs=8, n_crops=20, batch_size=8)
    assert model.rows == 8


def test_tcav_scores_match_a_hand_computation() -> None:
    # per run: the fraction of inputs whose logit gradient at the layer (hand autograd) has a
    # positive dot product with the ridge CAV (centred least squares, l2=1e-2) of the run's draw
    model = _Mlp()
    x, xc, xr = _data()
    res = tcav(model, x, xc, xr, layer="net.2", target=2, n_random=6, n_permutations=0, test="welch",
               seed=3, batch_size=7)
    net = model.net
    with torch.no_grad():
        ac, ar = net[:3](xc).numpy(), net[:3](xr).numpy()
    h = net[:3](x).detach().requires_grad_(True)
    grad = torch.autograd.grad(net[3:](h)[:, 2].sum(), h)[0].numpy()
    draws = np.argsort(np.random.default_rng(3).random((6, len(ar))), axis=1)
    m = min(len(ac), len(ar) // 2)

    def score(pos: np.ndarray, neg: np.ndarray) -> float:
        a = np.concatenate([pos, neg])
        c = a - a.mean(0)
        y = np.r_[np.ones(len(pos)), -np.ones(len(neg))]
        w = np.linalg.solve(c.T @ c + 1e-2 * np.eye(c.shape[1]), c.T @ y)
        return float(np.mean(grad @ w > 0))

    hand = [score(ac, ar[draws[i, :m]]) for i in range(6)]
    hand_random = [score(ar[draws[i, :m]], ar[draws[i, m : 2 * m]]) for i in range(6)]
    np.testing.assert_array_equal(res.scores, hand)
    np.testing.assert_array_equal(res.random_scores, hand_random)
    assert res.score == pytest.approx(float(np.mean(hand)), abs=1e-15)
    # runs whose sign fraction is neither 0 nor 1: the per-input signs are compared, not only a constant
    assert any(0.0 < s < 1.0 for s in hand_random)


def test_tcav_refusal_of_a_tuple_output_names_the_layer() -> None:
    # it said "the layer outputs tuple" without naming which layer, or how to reach one tensor
    class Lstm(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(5, 4, batch_first=True)
            self.head = torch.nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.lstm(x)
            y: torch.Tensor = self.head(out[:, -1])
            return y

    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(n, 6, 5, generator=g) for n in (4, 4, 8)]
    with pytest.raises(UnsupportedModelError, match=r"layer 'lstm' outputs a tuple, not a tensor.*wrap the layer"):
        tcav(Lstm(), *xs, layer="lstm", target=1, n_random=2, n_permutations=1)
