"""Audit aud42s (stop 42): concepts, SAEs and decision analyses against truths computed outside tribute.

- CRAFT on a layer whose 4-D output is channels-last (a Swin-style stage, ``batch x h x w x
  channels``) took it as ``batch x channels x h x w``: the NMF factorised the HEIGHT axis as if
  it were the channels (concepts of length h = 6 instead of c = 5), importances 0.859 / 0.477
  instead of 0.585 / 0.498, concept maps off by 1.82, silently. CRAFT now tells the channel axis
  as TCAV's ``spatial="mean"`` does (or takes ``channel_axis=``). Truth: a twin model whose layer
  computes the same activations in PyTorch's image layout (a 1x1 convolution with the Linear's
  weights), on which every number must agree to round-off.
- TCAV cast examples given as numpy arrays to the default float32: token ids (an Embedding
  model) and float64 arrays for a float64 model were refused as examples "the model cannot
  take". Truth: the same examples given as tensors.
- CRAFT on a layer that is zero on every crop (dead units) returned zero "concepts",
  importances 0 and a reconstruction error 0.0 silently; now an InputError.
- rashomon_interactions with a custom loss that returns its mean crashed in numpy's reshape.
- An SAE in training mode was not put in eval mode (the session covers the user's model only;
  a bound method's module was not even a child of the wrapper): a dropout in the encoder made
  exact Shapley credits random (two identical calls 0.035 apart). Truth: exact Shapley by hand
  enumeration with the SAE in eval mode.
- CRAFT with resize=False on a model that cannot take smaller images raised torch's bare shape
  error; now an InputError naming resize. TCAV's inputs likewise (concept / random examples were
  already named).
- label_leakage on a game the user built with tribute.build_game (no session) from a model with
  a dropout in training mode gave random KLs (0.165 vs 0.064 nats for one input, two identical
  calls); now refused, naming the modules and model.eval(). Truth: the eval-mode KLs by hand.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from tribute.errors import InputError
from tribute.methods.craft import craft, craft_decompose
from tribute.methods.tcav import TCAVResult
from tribute_testing import DropoutSAE

DT = torch.float64
C, H, W = 5, 6, 7


class _ChannelsLast(nn.Module):
    """``batch x 3 x H x W`` -> permute -> per-pixel Linear(3, C) -> ReLU ("act": ``batch x H x W x C``)
    -> ReLU ("act2") -> max over positions -> Linear(C, 2)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(42)
        self.proj = nn.Linear(3, C, dtype=DT)
        self.head = nn.Linear(C, 2, dtype=DT)
        with torch.no_grad():
            for p in (*self.proj.parameters(), *self.head.parameters()):
                p.copy_(torch.randn(p.shape, generator=g, dtype=DT))
        self.act = nn.ReLU()
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act2(self.act(self.proj(x.permute(0, 2, 3, 1))))
        out: torch.Tensor = self.head(h.amax(dim=(1, 2)))
        return out


class _ChannelsFirst(nn.Module):
    """The same function with the activations in PyTorch's image layout (``batch x C x H x W``)."""

    def __init__(self, twin: _ChannelsLast) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, C, 1, dtype=DT)
        self.head = twin.head
        with torch.no_grad():
            self.proj.weight.copy_(twin.proj.weight[:, :, None, None])
            self.proj.bias.copy_(twin.proj.bias)  # type: ignore[union-attr]
        self.act = nn.ReLU()
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act2(self.act(self.proj(x)))
        out: torch.Tensor = self.head(h.amax(dim=(2, 3)))
        return out


def _images() -> torch.Tensor:
    return torch.randn(3, 3, H, W, generator=torch.Generator().manual_seed(0), dtype=DT)


KW = {"layer": "act", "target": 1, "n_concepts": 2, "n_crops": 4, "crop_size": 4, "n_designs": 8, "seed": 0}


def _same(a: object, b: object) -> None:
    for name in ("concepts", "importances", "stderr", "coefficients", "concept_maps"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("channel_axis", [None, -1, 3])
def test_craft_on_a_channels_last_layer_equals_the_channels_first_twin(channel_axis: int | None) -> None:
    last = _ChannelsLast().train()
    first = _ChannelsFirst(last)
    x = _images()
    with torch.no_grad():
        assert float((last(x) - first(x)).abs().max()) < 1e-12
    got = craft(last, x, channel_axis=channel_axis, **KW)  # type: ignore[arg-type]
    truth = craft(first, x, **KW)  # type: ignore[arg-type]
    assert got.concepts.shape == (2, C)
    _same(got, truth)
    assert last.training  # left as it was


def test_craft_decompose_on_a_channels_last_layer_equals_the_channels_first_twin() -> None:
    last = _ChannelsLast()
    first = _ChannelsFirst(last)
    x = _images()
    kw = {**KW, "layer": "act2"}
    parent_l, parent_f = craft(last, x, **kw), craft(first, x, **kw)  # type: ignore[arg-type]
    sub_l = craft_decompose(last, parent_l, 0, layer="act", n_concepts=2, n_designs=8, top_fraction=1.0)
    sub_f = craft_decompose(first, parent_f, 0, layer="act", n_concepts=2, n_designs=8, top_fraction=1.0)
    assert sub_l.concepts.shape == (2, C)
    _same(sub_l, sub_f)


@pytest.mark.parametrize("bad", [True, 1.5, "1"])
def test_craft_refuses_a_bad_channel_axis(bad: object) -> None:
    with pytest.raises(InputError, match="channel_axis"):
        craft(_ChannelsLast(), _images(), channel_axis=bad, **KW)  # type: ignore[arg-type]


def test_craft_refuses_a_channel_axis_the_layer_does_not_have() -> None:
    with pytest.raises(InputError, match="channel_axis=4"):
        craft(_ChannelsLast(), _images(), channel_axis=4, **KW)  # type: ignore[arg-type]
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * H * W, 6), nn.ReLU(), nn.Linear(6, 2)).double()
    with pytest.raises(InputError, match="4-D output"):
        craft(net, _images(), layer="2", target=1, n_concepts=2, n_crops=4, channel_axis=1)


# ------------------------------------------------------------------ TCAV: examples given as numpy arrays
class _Tokens(nn.Module):
    """Token ids ``batch x 5`` -> Embedding(10, 4) -> tanh ("act") -> mean over tokens -> Linear(4, 2)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.emb = nn.Embedding(10, 4, dtype=DT)
        self.head = nn.Linear(4, 2, dtype=DT)
        with torch.no_grad():
            for p in (*self.emb.parameters(), *self.head.parameters()):
                p.copy_(torch.randn(p.shape, generator=g, dtype=DT))
        self.act = nn.Tanh()

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.act(self.emb(t)).mean(1))
        return out


def _same_tcav(a: TCAVResult, b: TCAVResult) -> None:
    for name in ("scores", "random_scores", "null_scores", "cav", "sensitivities"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-10, atol=1e-12, err_msg=name)
    assert a.p_values == b.p_values


def test_tcav_takes_numpy_token_ids_as_the_same_ids_in_a_tensor() -> None:
    # aud42s: numpy token ids were cast to float32 by tcav itself, then refused as examples
    # "the model cannot take" (Embedding: expected Long indices)
    from tribute.methods.tcav import tcav

    rng = np.random.default_rng(0)
    x, c, r = rng.integers(0, 10, (6, 5)), rng.integers(0, 5, (4, 5)), rng.integers(0, 10, (10, 5))
    kw = {"layer": "act", "target": 1, "n_permutations": 20, "spatial": "mean", "channel_axis": -1, "seed": 2}
    net = _Tokens()
    truth = tcav(net, torch.as_tensor(x), torch.as_tensor(c), torch.as_tensor(r), **kw)  # type: ignore[arg-type]
    _same_tcav(tcav(net, x, c, r, **kw), truth)  # type: ignore[arg-type]


def test_tcav_takes_float64_numpy_examples_for_a_float64_model() -> None:
    # aud42s: float64 arrays were cast to float32 and refused for a float64 model ("mat1 and mat2
    # must have the same dtype ... Give concept examples the model accepts")
    from tribute.methods.tcav import tcav

    rng = np.random.default_rng(1)
    x, c, r = rng.normal(size=(6, 3)), rng.normal(size=(4, 3)) + 1.0, rng.normal(size=(10, 3))
    g = torch.Generator().manual_seed(3)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT))
    kw = {"layer": "1", "target": 1, "n_permutations": 20, "seed": 2}
    truth = tcav(net, *(torch.as_tensor(a) for a in (x, c, r)), **kw)  # type: ignore[arg-type]
    _same_tcav(tcav(net, x, c, r, **kw), truth)  # type: ignore[arg-type]
    # integer pixel arrays for a model without an embedding are still read as floats
    conv = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    imgs = [rng.integers(0, 255, (n, 1, 6, 6)).astype(np.uint8) for n in (5, 4, 8)]
    kw = {"layer": "1", "target": 0, "n_permutations": 10}
    truth = tcav(conv, *(torch.as_tensor(a, dtype=torch.float32) for a in imgs), **kw)  # type: ignore[arg-type]
    _same_tcav(tcav(conv, *imgs, **kw), truth)  # type: ignore[arg-type]


def test_craft_refuses_a_layer_that_is_zero_on_every_crop() -> None:
    # aud42s: a dead layer gave concepts that are zero vectors, importances [0, 0] and a
    # reconstruction error 0.0, without a word
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2))
    with torch.no_grad():
        net[0].bias.fill_(-100.0)  # type: ignore[operator]
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(InputError, match="only zeros on all 8 crops"):
        craft(net, x, layer="1", target=1, n_concepts=2, n_crops=4, n_designs=8)


# ------------------------------------------------------------------ rashomon: a custom loss
def test_rashomon_refuses_a_custom_loss_that_returns_its_mean() -> None:
    # aud42s: loss=lambda p, y: mean((p - y) ** 2) crashed with numpy's "cannot reshape array of
    # size 1 into shape (6,100)"
    from tribute.methods.rashomon import rashomon_interactions

    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    y = X[:, 0] * X[:, 1] + X[:, 2]

    def fit(X: np.ndarray, y: np.ndarray, *, seed: int, **cfg: object) -> object:
        return lambda Z: Z[:, 0] * Z[:, 1] + Z[:, 2]

    with pytest.raises(InputError, match=r"returned 1 value.*for 100 examples"):
        rashomon_interactions(X, y, fit=fit, n_candidates=2, n_repeats=2,
                              loss=lambda p, t: float(np.mean((p - t) ** 2)))
    # one loss per example: FIS of the exact formula by hand, with the same permutations
    r = rashomon_interactions(X, y, fit=fit, n_candidates=1, n_repeats=1, loss=lambda p, t: (p - t) ** 2, seed=4)
    g = np.random.default_rng(4 + 7919)
    ps = [g.permutation(100) for _ in range(3)]

    def rel(cols: tuple[int, ...]) -> float:
        Z = X.copy()
        for i in cols:
            Z[:, i] = X[ps[i], i]
        return float(np.mean((Z[:, 0] * Z[:, 1] + Z[:, 2] - y) ** 2))

    for q, (i, j) in enumerate(r.pairs):
        assert r.fis[0, q] == pytest.approx(rel((i, j)) - rel((i,)) - rel((j,)), abs=1e-12)


# ------------------------------------------------------------------ SAE in training mode
_DropSAE = DropoutSAE  # moved to tribute_testing (small43's tests use it too)


def _exact_shapley_by_hand(v: Any, n: int) -> np.ndarray:
    phi = np.zeros(n)
    for j in range(n):
        others = [k for k in range(n) if k != j]
        for size in range(n):
            for s in itertools.combinations(others, size):
                w = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                phi[j] += w * (v(set(s) | {j}) - v(set(s)))
    return phi


@pytest.mark.parametrize("as_methods", [False, True])
def test_sae_latents_of_an_sae_in_training_mode_are_credited_as_in_eval_mode(as_methods: bool) -> None:
    # aud42s: the SAE was not in the session (it covers the user's model only): a dropout in the
    # encoder stayed on, two identical exact_shapley calls differed by 0.035
    import tribute

    g = torch.Generator().manual_seed(6)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT))
    sm = _DropSAE().train()
    if as_methods:
        sae = tribute.SAE(sm.encode, sm.decode, at="1")
    else:
        sae = tribute.SAE(nn.Sequential(sm.e, sm.drop, nn.ReLU()), sm.d, at="1")
    x = torch.randn(2, 3, generator=g, dtype=DT)
    got = np.asarray(tribute.explain(net, x, method="exact_shapley", players=tribute.components(net, sae=sae),
                                     target=0).values)
    assert sm.training and sm.drop.training  # left as it was
    with torch.no_grad():
        h = net[1](net[0](x))
        z = torch.relu(sm.e(h))  # eval mode: no dropout
        rec = sm.d(z)
        e = h - rec
    for i in range(2):
        def v(s: set[int], i: int = i) -> float:
            keep = torch.tensor([float(j in s) for j in range(5)], dtype=DT)
            with torch.no_grad():
                hh = h[i] + (sm.d(z[i] * keep) - rec[i]) + (e[i] * float(5 in s) - e[i])
                return float(net[2](hh)[0])
        np.testing.assert_allclose(got[i], _exact_shapley_by_hand(v, 6), atol=1e-12)


def test_craft_names_resize_when_the_model_cannot_take_crops_at_their_own_size() -> None:
    # aud42s: resize=False on a model with a Linear head raised torch's bare "mat1 and mat2 shapes
    # cannot be multiplied (8x64 and 256x2)"
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 2)).train()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(InputError, match="resize=False"):
        craft(net, x, layer="1", target=1, n_concepts=2, n_crops=4, resize=False)
    assert net.training


def test_tcav_names_inputs_the_model_cannot_take() -> None:
    # aud42s: concept and random examples the model cannot take were named; inputs raised torch's
    # bare "mat1 and mat2 shapes cannot be multiplied (5x4 and 3x4)"
    from tribute.methods.tcav import tcav

    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).train()
    g = torch.Generator().manual_seed(0)
    with pytest.raises(InputError, match=r"fails on the inputs \(shape \(5, 4\)"):
        tcav(net, torch.randn(5, 4, generator=g), torch.randn(4, 3, generator=g), torch.randn(8, 3, generator=g),
             layer="1", target=0, n_permutations=5)
    assert net.training
    assert all(not m._forward_hooks for m in net.modules())


# ------------------------------------------------------------------ label leakage on a user-built game
def test_label_leakage_refuses_a_model_with_dropout_in_training_mode_and_reads_eval_mode_by_hand() -> None:
    # aud42s: tribute.build_game opens no session, so a dropout in training mode made p(.|x) and
    # every KL random: two identical label_leakage calls gave 0.165 and 0.064 nats for one input
    import tribute
    from tribute.methods.shap_kl import label_leakage

    g = torch.Generator().manual_seed(7)
    net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Tanh(), nn.Linear(8, 3)).double().train()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT))
    x = torch.randn(5, 4, generator=g, dtype=DT)
    sel = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 0, 0, 1], [1, 1, 1, 0], [0, 0, 0, 1]], dtype=bool)
    with pytest.raises(InputError, match=r"training mode \(\['1'\]\).*model.eval\(\)"):
        label_leakage(tribute.build_game(net, x, output="kl", baseline=0.0), sel)
    net.eval()
    got = label_leakage(tribute.build_game(net, x, output="kl", baseline=0.0), sel)
    with torch.no_grad():
        pr = torch.softmax(net(x), 1).numpy()
        q = torch.softmax(net(x * torch.as_tensor(sel, dtype=DT)), 1).numpy()
    np.testing.assert_allclose(got.kl_per_input, (pr * np.log(pr / q)).sum(1), rtol=1e-10, atol=1e-14)
