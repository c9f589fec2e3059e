"""Review rev44a (stop 44) of aud44s: the SAE reach and weights digest, CRAFT's layout check.

- A bundle of several layers' dictionaries in one dict of plain tensors (``P[f"blocks.{i}.W_enc"]``,
  over 64 entries): the reach took only a container's first 64 items, so the SAE's own tensors
  (entries 75 and 76) were left out of the weights digest; credits explained with one dictionary
  were scored on a retrained one's game silently (shapley_error 1.54, where the own game gives 0).
- Reading a slotted object's state called the class's ``__getattr__`` (for ``__dict__`` and an unset
  slot) and evaluated a subclass's property shadowing a slot: side effects of an object the SAE's
  function merely names.
- CRAFT told channels-last images by shape alone: 8-band channels-first images with a narrow width
  were refused, channels-last 8-band images for a model that permutes them ran on crops across the
  width and the bands. The model's first Conv2d (tribute.models.layout) now tells where it can.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute_testing import ChannelsLast, DropoutSAE, assert_sae_digest_tells_apart, sae_splice_loo

Bundle = dict[str, torch.Tensor]


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).double().eval()


def _bundle(seed: int) -> Bundle:
    g = torch.Generator().manual_seed(seed)
    return {f"blocks.{i}.{k}": torch.randn(6, 6, generator=g, dtype=torch.float64)
            for i in range(26) for k in ("W_enc", "W_dec", "b_enc")}


def _sae(p: Bundle) -> tribute.SAE:
    return tribute.SAE(lambda a: torch.relu(a @ p["blocks.25.W_enc"]), lambda z: z @ p["blocks.25.W_dec"], at="1")


def test_a_dictionary_past_the_64th_entry_of_a_bundle_is_in_the_digest() -> None:
    net = _net()
    x = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    first = _bundle(1)
    retrained = dict(first)  # layer 25 retrained, every other layer as it was
    g = torch.Generator().manual_seed(9)
    for k in ("blocks.25.W_enc", "blocks.25.W_dec"):
        retrained[k] = torch.randn(6, 6, generator=g, dtype=torch.float64)
    # before: accepted, shapley_error 1.54 (the credits' own game gives 0)
    assert_sae_digest_tells_apart(net, x, _sae, first, retrained, 0.5)


_LOG: list[str] = []


class _Lazy:
    """A slotted holder whose ``__getattr__`` would load something (logged here)."""

    __slots__ = ("cache", "sae")

    def __init__(self, sae: DropoutSAE) -> None:
        self.sae = sae  # ``cache`` stays unset

    def __getattr__(self, name: str) -> None:
        _LOG.append(f"__getattr__({name})")
        raise AttributeError(name)


class _Base:
    __slots__ = ("sae",)


class _Shadowing(_Base):
    """A subclass whose property shadows the base's slot (reading it has a side effect)."""

    @property
    def sae(self) -> None:
        _LOG.append("property")
        return None


@pytest.mark.parametrize("form", ["getattr_fallback", "property_over_a_slot"])
def test_the_reach_reads_a_slotted_holder_without_side_effects(form: str) -> None:
    sm = DropoutSAE().train()
    if form == "getattr_fallback":
        lazy = _Lazy(sm)

        def encode(a: torch.Tensor) -> torch.Tensor:  # the SAE is reached through the slot only
            out: torch.Tensor = lazy.sae.encode(a)
            return out
    else:
        holder = _Shadowing()
        _Base.sae.__set__(holder, sm)  # type: ignore[attr-defined]

        def encode(a: torch.Tensor) -> torch.Tensor:  # names the holder (an identity check only)
            return sm.encode(a) if holder is not None else a
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double().eval()
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(5, 3, dtype=torch.float64, generator=g)
    _LOG.clear()
    players = tribute.components(net, sae=tribute.SAE(encode, sm.d, at="1"))
    got = np.asarray(tribute.explain(net, x, method="feature_ablation", target=0, players=players).values)
    assert _LOG == []  # before: ['__getattr__(__dict__)', '__getattr__(cache)'] / ['property']
    assert sm.training and sm.drop.training  # restored
    # leave-one-out of the eval-mode splice, zero ablation, by hand
    truth = sae_splice_loo(net, lambda h: torch.relu(sm.e(h)), sm.d, x, 5)
    np.testing.assert_allclose(got, truth, atol=1e-12)


def _cnn(channels: int) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(6, 3)).eval()


_KW = {"target": 0, "n_concepts": 2, "n_crops": 5, "n_designs": 8}


def test_craft_reads_the_layout_from_the_models_first_conv() -> None:
    # 8-band images x C x H x W with a narrow width: before, refused as channels-last by shape
    narrow = tribute.craft(_cnn(8), torch.rand(2, 8, 16, 4, generator=torch.Generator().manual_seed(0)),
                           layer="1", n_concepts=2, n_crops=5, n_designs=8, target=0)
    # crops of half the shorter side (4 // 2), maps of the images' 16 x 4
    assert set(narrow.crop_boxes[:, 3].tolist()) == {2} and narrow.concept_maps.shape == (2, 2, 16, 4)
    # channels-last 8-band images for a model that permutes them: before, crops of side 4 cut across
    # the width and the bands, maps 32 x 8, without a word
    images = torch.rand(2, 32, 32, 8, generator=torch.Generator().manual_seed(1))
    with pytest.raises(tribute.InputError, match=r"channels-last.*first Conv2d reads 8.*permute\(0, 3, 1, 2\)"):
        tribute.craft(ChannelsLast(_cnn(8)), images, layer="net.1", n_concepts=2, n_crops=5, n_designs=8, target=0)
    # as the message asks: crops of half the side (16), maps of the images' 32 x 32
    res = tribute.craft(_cnn(8), images.permute(0, 3, 1, 2), layer="1", n_concepts=2, n_crops=5, n_designs=8,
                        target=0)
    assert set(res.crop_boxes[:, 3].tolist()) == {16} and res.concept_maps.shape == (2, 2, 32, 32)


def _beside_a_layernorm(p: Bundle) -> tribute.SAE:
    ln = nn.LayerNorm(6, dtype=torch.float64)  # parameters: the digest read only them, not the dictionary beside them

    def encode(a: torch.Tensor) -> torch.Tensor:
        return torch.relu(ln(a) @ p["W_enc"])

    return tribute.SAE(encode, lambda z: z @ p["W_dec"], at="1")


def _module_with_a_centring_tensor(p: Bundle) -> tribute.SAE:
    torch.manual_seed(4)
    enc = nn.Linear(6, 6, dtype=torch.float64)
    dec = nn.Linear(6, 6, dtype=torch.float64)
    mu = p["W_enc"][0]  # a centring vector held beside the modules (retrained with the dictionary)
    return tribute.SAE(lambda a: torch.relu(enc(a - mu)), dec, at="1")


@pytest.mark.parametrize("form", [_beside_a_layernorm, _module_with_a_centring_tensor],
                         ids=["plain_dictionary_beside_a_layernorm", "module_sae_with_a_centring_tensor"])
def test_plain_tensors_beside_a_module_with_parameters_are_in_the_digest(form: Any) -> None:
    net = _net()
    x = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(1)
    first = {k: torch.randn(6, 6, generator=g, dtype=torch.float64) for k in ("W_enc", "W_dec")}
    retrained = {k: torch.randn(6, 6, generator=g, dtype=torch.float64) for k in ("W_enc", "W_dec")}
    # before: accepted (shapley_error 4.47 for the LayerNorm form; the credits' own game gives 0)
    assert_sae_digest_tells_apart(net, x, form, first, retrained, 0.1)
