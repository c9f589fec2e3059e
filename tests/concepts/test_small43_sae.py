"""small43: an SAE given as a plain function that reaches its module (``lambda a: sae(a)``, a
nested function, a ``functools.partial``, a global the function names, a callable object) ran
in training mode: a dropout in it made two identical calls differ (2.36 apart, rev42b). The
modules a function reaches now run in eval mode per pass, their flags restored after, also
after an exception. Truth: exact Shapley by enumeration of the eval-mode splice by hand."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import UnsupportedModelError
from tribute_testing import DropoutSAE, seeded_tanh_net

DT = torch.float64


_DropSAE = DropoutSAE

_GLOBAL_SAE = _DropSAE().train()


def _global_encode(a: torch.Tensor) -> torch.Tensor:
    return _GLOBAL_SAE.encode(a)


def _encode_with(sae: _DropSAE, a: torch.Tensor) -> torch.Tensor:
    return sae.encode(a)


class _Caller:
    def __init__(self, sae: _DropSAE) -> None:
        self.sae = sae

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        return self.sae.encode(a)


class _Wrapper:
    """Not callable, not a module: holds the SAE (a bound ``wrapper.encode`` is given)."""

    def __init__(self, sae: _DropSAE) -> None:
        self.sae = sae

    def encode(self, a: torch.Tensor) -> torch.Tensor:
        return self.sae.encode(a)


def _encoders(sm: _DropSAE) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    def nested(a: torch.Tensor) -> torch.Tensor:
        inner = lambda b: sm.encode(b)  # noqa: E731  (a function reaching a function)
        return inner(a)

    return {"lambda": lambda a: sm.encode(a), "nested": nested, "partial": functools.partial(_encode_with, sm),
            "object": _Caller(sm), "wrapper_method": _Wrapper(sm).encode, "in_a_dict": (lambda mods: lambda a: mods["sae"].encode(a))({"sae": sm})}


def _net() -> nn.Sequential:
    return seeded_tanh_net(6)


def _hand(net: nn.Sequential, sm: _DropSAE, x: torch.Tensor) -> np.ndarray:
    """Exact Shapley of the 5 latents + error, eval-mode splice, by enumeration."""
    with torch.no_grad():
        h = net[1](net[0](x))
        z = torch.relu(sm.e(h))  # eval mode: no dropout
        rec = sm.d(z)
        e = h - rec
    out = np.zeros((len(x), 6))
    for i in range(len(x)):
        def v(s: set[int], i: int = i) -> float:
            keep = torch.tensor([float(j in s) for j in range(5)], dtype=DT)
            with torch.no_grad():
                hh = h[i] + (sm.d(z[i] * keep) - rec[i]) + (e[i] * float(5 in s) - e[i])
                return float(net[2](hh)[0])
        for j in range(6):
            others = [k for k in range(6) if k != j]
            for size in range(6):
                for s in itertools.combinations(others, size):
                    w = math.factorial(size) * math.factorial(5 - size) / math.factorial(6)
                    out[i, j] += w * (v(set(s) | {j}) - v(set(s)))
    return out


@pytest.mark.parametrize("how", ["lambda", "nested", "partial", "object", "wrapper_method", "in_a_dict",
                                 "global"])
def test_a_function_reaching_an_sae_in_training_mode_is_credited_in_eval_mode(how: str) -> None:
    net = _net()
    sm = _GLOBAL_SAE if how == "global" else _DropSAE().train()
    enc = _global_encode if how == "global" else _encoders(sm)[how]
    sae = tribute.SAE(enc, sm.d, at="1")  # the decoder reaches no dropout: the encoder must
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(1), dtype=DT)
    want = _hand(net, sm, x)
    for _ in range(2):  # two identical calls: equal, and equal to the eval-mode truth
        got = tribute.explain(net, x, method="exact_shapley", players=tribute.components(net, sae=sae), target=0)
        np.testing.assert_allclose(np.asarray(got.values), want, atol=1e-12)
        assert sm.training and sm.drop.training  # left as it was
        assert all(p.requires_grad for p in sm.parameters())


def test_flags_are_restored_after_a_failing_pass() -> None:
    net, sm = _net(), _DropSAE().train()
    sm.e.eval()  # a submodule the user set apart keeps its own flag
    sae = tribute.SAE(lambda a: sm.encode(a)[..., :3], lambda z: sm.d(z), at="1")  # decoder wants 5
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(1), dtype=DT)
    with pytest.raises(UnsupportedModelError, match="decoder failed"):
        tribute.explain(net, x, method="feature_ablation", players=tribute.components(net, sae=sae), target=0)
    assert sm.training and sm.drop.training and not sm.e.training
    assert all(p.requires_grad for p in sm.parameters())
