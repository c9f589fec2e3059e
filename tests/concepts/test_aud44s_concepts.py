"""Audit aud44s (stop 44): SAE latents, TCAV and CRAFT against truths computed outside tribute.

- An SAE whose dictionary is plain tensors (held in a closure, a dict of tensors loaded from a
  file, a module's plain attributes) had an empty weights digest: two dictionaries of one width
  (a retrained SAE) gave the same component-site keys, and credits explained with one were
  scored on the other's game silently (shapley_error 2.14 where the credits' own game gives 0).
  Truth: the credits are about the first dictionary's latents; exact Shapley on the own game has
  shapley_error 0 (efficiency and the values by enumeration).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute_testing import DropoutSAE, assert_sae_digest_tells_apart, sae_splice_loo

Weights = dict[str, torch.Tensor]


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).double().eval()


def _weights(seed: int) -> Weights:
    g = torch.Generator().manual_seed(seed)
    return {"W_enc": torch.randn(6, 3, generator=g, dtype=torch.float64),
            "W_dec": torch.randn(3, 6, generator=g, dtype=torch.float64)}


class _PlainModule(nn.Module):
    """A dictionary kept as plain tensor attributes (not parameters): ``sae.W_enc = state[...]``."""

    def __init__(self, w: Weights) -> None:
        super().__init__()
        self.W_enc = w["W_enc"]
        self.W_dec = w["W_dec"]

    def encode(self, a: torch.Tensor) -> torch.Tensor:
        return torch.relu(a @ self.W_enc)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.W_dec


def _closure_sae(w: Weights) -> tribute.SAE:
    def encode(a: torch.Tensor) -> torch.Tensor:
        return torch.relu(a @ w["W_enc"])

    return tribute.SAE(encode, lambda z: z @ w["W_dec"], at="1")


def _module_sae(w: Weights) -> tribute.SAE:
    m = _PlainModule(w)
    return tribute.SAE(m.encode, m.decode, at="1")


@pytest.mark.parametrize("form", [_closure_sae, _module_sae], ids=["closure_dict", "plain_module_attributes"])
def test_credits_of_a_plain_tensor_sae_are_not_scored_on_another_dictionarys_game(
        form: Callable[[Weights], tribute.SAE]) -> None:
    net = _net()
    x = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    first, other = _weights(1), _weights(2)
    # the two dictionaries' credits are far apart: scoring one on the other's game is no check; the
    # same dictionary (a new SAE object over equal tensors) is the same game: exact Shapley's error is 0
    assert_sae_digest_tells_apart(net, x, form, first, other, 0.5)


class _SlotsConfig:
    """A ``__slots__`` config whose ``__getattr__`` looks names up in a dict (KeyError, not
    AttributeError, for a missing one, ``__dict__`` included)."""

    __slots__ = ("values",)

    def __init__(self, **values: float) -> None:
        self.values = values

    def __getattr__(self, name: str) -> float:
        return self.values[name]


def test_an_sae_function_naming_an_object_without_a_readable_dict_is_credited() -> None:
    net = _net()
    x = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    w = _weights(1)
    cfg = _SlotsConfig(scale=2.0)

    def encode(a: torch.Tensor) -> torch.Tensor:
        return torch.relu(a @ w["W_enc"]) * cfg.scale

    def decode(z: torch.Tensor) -> torch.Tensor:
        return z @ w["W_dec"]

    # before: building the players failed with KeyError: '__dict__' (the reach read cfg.__dict__)
    attr = tribute.explain(net, x, method="feature_ablation", target=1,
                           players=tribute.components(net, sae=tribute.SAE(encode, decode, at="1")))

    def value(keep: torch.Tensor, error: bool) -> torch.Tensor:  # hand splice, zero ablation
        h = torch.relu(net[0](x))
        z = encode(h)
        out: torch.Tensor = net[2](decode(z * keep) + (h - decode(z)) * float(error))[:, 1]
        return out

    with torch.no_grad():
        full = value(torch.ones(3, dtype=torch.float64), True)
        truth = [full - value((torch.arange(3) != j).double(), True) for j in range(3)]
        truth.append(full - value(torch.ones(3, dtype=torch.float64), False))
    np.testing.assert_allclose(np.asarray(attr.values), torch.stack(truth, 1).numpy(), atol=1e-12)


def _cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(6, 3)).eval()


class _ChannelsLastModel(nn.Module):
    """Takes images x height x width x channels and permutes them itself."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x.permute(0, 3, 1, 2))
        return out


def test_craft_refuses_channels_last_images_instead_of_cropping_width_and_colour() -> None:
    images = torch.rand(3, 16, 16, 3, generator=torch.Generator().manual_seed(0))  # numpy / PIL layout
    kw: dict[str, Any] = {"target": 2, "n_concepts": 2, "n_crops": 5, "n_designs": 8}
    # before: a model permuting its input ran on 1-pixel crops across width and colour (crop_boxes of
    # size 1, concept maps 16 x 3) without a word; an images x C x H x W model's failure blamed resize=False
    for model, layer in ((_ChannelsLastModel(_cnn()), "net.1"), (_cnn(), "1")):
        with pytest.raises(tribute.InputError, match=r"channels-last.*permute\(0, 3, 1, 2\)"):
            tribute.craft(model, images, layer=layer, **kw)
    # the layout the message asks for: crops of half the side, maps of the images' size
    res = tribute.craft(_cnn(), images.permute(0, 3, 1, 2), layer="1", **kw)
    assert set(res.crop_boxes[:, 3].tolist()) == {8} and res.concept_maps.shape == (3, 2, 16, 16)
    # images x C x H x W with a narrow width (3 channels, width 4) are not taken for channels-last
    narrow = tribute.craft(_cnn(), torch.rand(2, 3, 8, 4), layer="1", **kw)
    assert narrow.concept_maps.shape == (2, 2, 8, 4)


def test_craft_blames_resize_false_only_when_the_crops_were_kept_at_their_own_size() -> None:
    torch.manual_seed(0)
    wrong = nn.Sequential(nn.Conv2d(5, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)).eval()
    images = torch.rand(2, 3, 8, 8)  # 3 channels for a 5-channel model: not a resize problem
    with pytest.raises(tribute.InputError, match="check that the model takes") as err:
        tribute.craft(wrong, images, layer="1", target=0, n_concepts=2, n_crops=4, n_designs=4)
    assert "resize=False" not in str(err.value)


# an SAE in training mode (a dropout in its encoder) reached through a class attribute or a Python
# module's attribute: the reach skipped classes and Python modules, so it stayed in training mode
_saelib = types.ModuleType("_aud44s_saelib")  # as ``import my_saes`` gives it
_saelib.sae = DropoutSAE().train()  # type: ignore[attr-defined]


def _lib_encode(a: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = _saelib.sae.encode(a)
    return out


class _Holder:
    sae = DropoutSAE().train()

    @classmethod
    def encode(cls, a: torch.Tensor) -> torch.Tensor:
        return cls.sae.encode(a)


class _Static:
    sae = DropoutSAE().train()

    @staticmethod
    def encode(a: torch.Tensor) -> torch.Tensor:
        return _Static.sae.encode(a)


@dataclass(slots=True)
class _SlottedPair:
    """A slotted holder (``@dataclass(slots=True)``, ``attrs.define``): no ``__dict__`` to walk."""

    sae: DropoutSAE

    def encode(self, a: torch.Tensor) -> torch.Tensor:
        return self.sae.encode(a)


_PAIR = _SlottedPair(DropoutSAE().train())


class _ClassAttribute:
    sae = DropoutSAE().train()

    def encode(self, a: torch.Tensor) -> torch.Tensor:
        return self.sae.encode(a)


_REGISTRY = {"sae": DropoutSAE().train()}


class _Property:
    @property
    def sae(self) -> DropoutSAE:
        return _REGISTRY["sae"]

    def encode(self, a: torch.Tensor) -> torch.Tensor:
        return self.sae.encode(a)


def _class_in_a_closure() -> tuple[Callable[[torch.Tensor], torch.Tensor], DropoutSAE]:
    class Local:
        sae = DropoutSAE().train()

    return (lambda a: Local.sae.encode(a)), Local.sae

_FORMS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], DropoutSAE]] = {
    "python_module_attribute": (_lib_encode, _saelib.sae),
    "classmethod": (_Holder.encode, _Holder.sae),
    "class_attribute_in_a_lambda": (lambda a: _Holder.sae.encode(a), _Holder.sae),
    "staticmethod": (_Static.encode, _Static.sae),
    "slotted_dataclass_method": (_PAIR.encode, _PAIR.sae),
    "lambda_over_a_slotted_object": (lambda a: _PAIR.sae.encode(a), _PAIR.sae),
    "class_in_a_closure": _class_in_a_closure(),
    "class_attribute_via_self": (_ClassAttribute().encode, _ClassAttribute.sae),
    "property_via_self": (_Property().encode, _REGISTRY["sae"]),
}


@pytest.mark.parametrize("form", list(_FORMS))
def test_an_sae_reached_through_a_class_a_python_module_or_a_slotted_object_runs_in_eval_mode(form: str) -> None:
    encode, sm = _FORMS[form]
    g = torch.Generator().manual_seed(6)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(5, 3, dtype=torch.float64, generator=g)
    # the decoder is the module sm.d: only the encoder's form can reach the dropout
    sae = tribute.SAE(encode, sm.d, at="1")
    got = [np.asarray(tribute.explain(net, x, method="feature_ablation", target=0,
                                      players=tribute.components(net, sae=sae)).values) for _ in range(2)]
    assert sm.training and sm.drop.training  # restored

    # leave-one-out of the eval-mode splice, zero ablation, by hand
    truth = sae_splice_loo(net, lambda h: torch.relu(sm.e(h)), sm.d, x, 5)
    for g_ in got:  # before: two calls 0.08-0.13 apart (slotted: 2.25), off the eval-mode truth by up to 0.08
        np.testing.assert_allclose(g_, truth, atol=1e-12)
