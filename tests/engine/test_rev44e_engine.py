"""rev44e: a module hidden from torch's listing by a ``named_modules``/``modules`` override is
still switched by ``m.eval()``; the session now records and restores its training flag (and
hook dicts). Before, such a module was left in eval mode after the run, and a hidden module
that alone was in training mode (a Dropout) stayed active while tribute evaluated the model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

import tribute


class _Seen(nn.Module):
    """Records the training flag every forward sees."""

    def __init__(self) -> None:
        super().__init__()
        self.flags: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.flags.append(self.training)
        return x


class _HideByClass(nn.Module):
    """``named_modules`` hides the ``hidden`` subtree (a Dropout and a flag recorder)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)
        self.hidden = nn.Sequential(nn.Dropout(0.5), _Seen())

    def named_modules(self, memo: Any = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, nn.Module]]:
        for name, mod in super().named_modules(memo, prefix, remove_duplicate):
            if "hidden" not in name:
                yield name, mod

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.lin(self.hidden(x))
        return out


class _HideByModules(_HideByClass):
    """``modules`` (not ``named_modules``) hides the subtree."""

    named_modules = nn.Module.named_modules

    def modules(self, remove_duplicate: bool = True) -> Iterator[nn.Module]:
        yield self
        yield self.lin


def _hide_on_instance() -> nn.Module:
    m = _HideByClass()
    walk = nn.Module.named_modules

    def named(memo: Any = None, prefix: str = "",
              remove_duplicate: bool = True) -> Iterator[tuple[str, nn.Module]]:
        for name, mod in walk(m, memo, prefix, remove_duplicate):
            if "hidden" not in name:
                yield name, mod

    object.__setattr__(m, "named_modules", named)  # the instance, not the class, hides it
    return m


def _every(m: nn.Module) -> list[nn.Module]:
    """Every module, listed by hand (the overrides hide some from torch's walks)."""
    hidden: Any = m.hidden
    return [m, m.lin, hidden, hidden[0], hidden[1]]


def _truth(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Feature ablation to a zero baseline of a linear model (the Dropout off): W[0, i] * x_i."""
    lin: Any = m.lin
    w = lin.weight.detach()[0]
    return (w * x).double()


@pytest.mark.parametrize("make", [_HideByClass, _HideByModules, _hide_on_instance])
def test_a_hidden_module_in_training_mode_is_evaluated_in_eval_mode_and_restored(make: Any) -> None:
    torch.manual_seed(0)
    m = make()
    m.train()
    x = torch.randn(3, 4) + 2.0
    attr = tribute.explain(m, x, method="feature_ablation", target=0, baseline=0.0, progress=False)
    seen: list[bool] = _every(m)[4].flags  # type: ignore[assignment]
    assert seen and not any(seen)  # every forward ran with the Dropout off
    assert torch.allclose(torch.as_tensor(attr.values).double(), _truth(m, x), atol=1e-5)
    assert all(mod.training for mod in _every(m))  # all restored to train mode


def test_a_hidden_module_alone_in_training_mode_is_switched_too() -> None:
    torch.manual_seed(0)
    m = _HideByClass()
    m.eval()
    m.hidden.train()  # the only module in training mode is one torch's listing hides
    x = torch.randn(5, 4) + 2.0
    attr = tribute.explain(m, x, method="feature_ablation", target=0, baseline=0.0, progress=False)
    seen: list[bool] = _every(m)[4].flags  # type: ignore[assignment]
    assert seen and not any(seen)
    assert torch.allclose(torch.as_tensor(attr.values).double(), _truth(m, x), atol=1e-5)
    assert [mod.training for mod in _every(m)] == [False, False, True, True, True]


class _Boom(_HideByClass):
    """Registers a hook on the hidden module in its forward, then fails from its second call on."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.hidden[0].register_forward_hook(lambda mod, inp, out: None)
        if self.calls >= 2:
            raise RuntimeError("boom")
        return super().forward(x)


def test_a_hidden_module_is_restored_after_an_exception() -> None:
    m = _Boom()
    m.train()
    own = m.hidden[0].register_forward_pre_hook(lambda mod, inp: None)
    with pytest.raises(RuntimeError, match="boom"):
        tribute.explain(m, torch.randn(2, 4), method="feature_ablation", target=0, progress=False)
    assert m.calls >= 2
    assert all(mod.training for mod in _every(m))
    assert dict(m.hidden[0]._forward_hooks) == {}  # the forward's hooks removed
    assert list(m.hidden[0]._forward_pre_hooks) == [own.id]  # the user's kept


class _Cache(nn.Module):
    """Stores the mean of its last output in a buffer: tribute runs the forward under
    ``torch.inference_mode()``, so the stored tensor is an inference tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)
        self.register_buffer("cache", torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.lin(x)
        self.cache = out.detach().mean(0)
        return out


def test_a_buffer_the_forward_stored_does_not_break_the_next_call() -> None:
    torch.manual_seed(0)
    m = _Cache()
    x = torch.randn(3, 4)
    for _ in range(2):  # the second call found an inference tensor in the buffer and raised
        with pytest.warns(UserWarning, match="'cache'"):
            attr = tribute.explain(m, x, method="feature_ablation", target=0, baseline=0.0,
                                   progress=False)
        assert torch.allclose(torch.as_tensor(attr.values).double(), _truth(m, x), atol=1e-5)
    assert m.cache.is_inference()


def _ablate_by_hand(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Feature ablation to a zero baseline, output 0: f(x) - f(x with feature i zeroed)."""
    with torch.inference_mode():
        full = m(x)[:, 0]
        cols = []
        for i in range(x.shape[1]):
            z = x.clone()
            z[:, i] = 0.0
            cols.append(full - m(z)[:, 0])
        return torch.stack(cols, 1).double()


def test_a_model_built_under_inference_mode_is_explained_and_left_as_it_was() -> None:
    torch.manual_seed(0)
    with torch.inference_mode():  # parameters and buffers are inference tensors
        m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).eval()
        bn: Any = m[1]
        lin: Any = m[0]
        bn.running_mean.add_(0.5)
        lin.bias.requires_grad_(False)
    x = torch.randn(3, 4)
    flags = [p.requires_grad for p in m.parameters()]
    attr = tribute.explain(m, x, method="feature_ablation", target=0, baseline=0.0, progress=False)
    assert torch.allclose(torch.as_tensor(attr.values).double(), _ablate_by_hand(m, x), atol=1e-5)
    assert [p.requires_grad for p in m.parameters()] == flags == [True, False, True, True, True, True]
