"""small45: a model with an uninitialised lazy module (``nn.LazyLinear`` before its first forward)
got torch's raw ``ValueError``, one whose module graph has a cycle (a module registered as its own
descendant) torch's ``RecursionError`` from ``m.eval()``: both are now an ``InputError`` naming
the module path and the fix, and the model is left as it was (flags, parameters, hooks).

Truth for the models that still run: the saliency of ``x -> f(x)[:, target]`` by autograd on a
copy of the call outside tribute."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

import tribute
from tribute.errors import InputError

X = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
METHODS = ["saliency", "integrated_gradients", "kernel_shap", "occlusion"]


def _cycle(train: bool = True) -> torch.nn.Module:
    m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh()).double()
    m.train(train)
    m[1].add_module("back", m)
    return m


def _deep_cycle() -> torch.nn.Module:
    inner = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh())
    m = torch.nn.Sequential(torch.nn.Sequential(inner), torch.nn.Linear(3, 2)).double()
    inner[1].add_module("loop", m[0])  # '0.0.1.loop' is '0'
    return m


def _state(m: torch.nn.Module) -> list[Any]:
    out: list[Any] = []
    seen: set[int] = set()
    stack = [m]
    while stack:
        a = stack.pop()
        if id(a) in seen:
            continue
        seen.add(id(a))
        out.append((a.training, dict(a._forward_hooks), dict(a._forward_pre_hooks), dict(a._backward_hooks)))
        for p in a._parameters.values():
            if p is not None:
                out.append((p.requires_grad, p if torch.nn.parameter.is_lazy(p) else p.detach().clone()))
        stack.extend(c for c in a._modules.values() if c is not None)
    return out


def _same(a: list[Any], b: list[Any]) -> bool:
    def eq(x: Any, y: Any) -> bool:
        if isinstance(x, torch.Tensor):
            return x is y if torch.nn.parameter.is_lazy(x) else torch.equal(x, y)
        if isinstance(x, tuple):
            return len(x) == len(y) and all(eq(u, v) for u, v in zip(x, y))
        return bool(x == y)
    return len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("make", "pattern"), [
    (lambda: torch.nn.Sequential(torch.nn.LazyLinear(2)).double(), r"module '0' \(LazyLinear\).*model\(x\)"),
    (lambda: torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Sequential(torch.nn.LazyLinear(2))),
     r"module '1\.0' \(LazyLinear\).*uninitialised"),
    (lambda: torch.nn.LazyLinear(2), r"the model itself \(LazyLinear\)"),
    (_cycle, r"cycle: '1\.back' is the model itself \(Sequential\).*weakref"),
    (_deep_cycle, r"cycle: '0\.0\.1\.loop' is '0' \(Sequential\)"),
])
def test_a_lazy_module_or_a_module_cycle_is_refused_clearly(method: str, make: Callable[[], torch.nn.Module],
                                                            pattern: str) -> None:
    m = make()
    before = _state(m)
    with pytest.raises(InputError, match=pattern):
        tribute.explain(m, X, method=method, target=0)
    assert _same(before, _state(m))


def _lazy_run() -> torch.nn.Module:
    m = torch.nn.Sequential(torch.nn.LazyLinear(2)).double()
    m(X)
    return m


def _parent_ref() -> torch.nn.Module:
    m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh()).double()
    object.__setattr__(m[1], "parent", m)  # a back reference kept out of the module tree
    return m


def _shared() -> torch.nn.Module:
    t = torch.nn.Tanh()
    return torch.nn.Sequential(torch.nn.Linear(3, 3), t, torch.nn.Linear(3, 2), t).double()


def _deep() -> torch.nn.Module:
    m: torch.nn.Module = torch.nn.Linear(3, 2)
    for _ in range(60):
        m = torch.nn.Sequential(m)
    return m.double()


class _NoneChild(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.register_module("gone", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def _lazy_conv() -> torch.nn.Module:
    m = torch.nn.Sequential(torch.nn.Unflatten(1, (1, 3)), torch.nn.LazyConv1d(2, 2), torch.nn.Flatten(),
                            torch.nn.LazyLinear(2)).double()
    m(X)
    return m


LEGIT: dict[str, Callable[[], torch.nn.Module]] = {
    "lazy after a forward": _lazy_run,
    "lazy conv + linear after a forward": _lazy_conv,
    "back reference outside the tree": _parent_ref,
    "shared module": _shared,
    "60 nested Sequentials": _deep,
    "a None child": lambda: _NoneChild().double(),
    "cycle, already in eval mode": lambda: _cycle(train=False),
    "train mode, no cycle": lambda: torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.5)).double(),
    "ModuleList beside": lambda: torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Sequential()).double(),
    "plain Linear": lambda: torch.nn.Linear(3, 2).double(),
    "parameter-free": lambda: torch.nn.Tanh(),
}


@pytest.mark.parametrize("case", list(LEGIT))
def test_neighbouring_models_still_run_and_match_autograd(case: str) -> None:
    m = LEGIT[case]()
    before = _state(m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = tribute.explain(m, X, method="saliency", target=0).values
    assert _same(before, _state(m))
    flags = [mod.training for mod in m.modules()]
    x = X.clone().requires_grad_(True)
    m.eval() if case != "cycle, already in eval mode" else None
    (grad,) = torch.autograd.grad(m(x)[:, 0].sum(), x)
    for mod, f in zip(m.modules(), flags):
        mod.training = f
    torch.testing.assert_close(torch.as_tensor(got).abs(), grad.abs(), rtol=1e-10, atol=1e-12)
