"""eng43 (issue #9): the torch adapter lists a module's parameters in one walk over its modules
(``_unique_parameters``), the same list as ``Module.parameters()`` without its generators."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from tribute.models.adapters import TorchModel, _unique_parameters


class _Tied(nn.Module):
    """A tied weight (one Parameter in two modules and twice in one), a None parameter, a
    submodule reached twice, and a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 4)
        self.b = nn.Linear(4, 3)
        self.b.weight = nn.Parameter(self.a.weight.detach().t().clone())
        self.c = nn.Linear(3, 4)
        self.c.weight = self.a.weight  # tied with a
        self.c.register_parameter("bias", None)
        self.c.register_parameter("again", self.a.bias)  # the same tensor under another name
        self.shared = self.a  # the same submodule twice
        self.seq = nn.Sequential(self.b, nn.ReLU(), self.a)
        self.register_buffer("count", torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)) + self.c(x))


class _OwnListing(nn.Module):
    """Overrides parameters(): the adapter keeps asking it."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.extra = torch.ones(5, dtype=torch.float64)

    def parameters(self, recurse: bool = True) -> Any:
        yield self.extra
        yield from super().parameters(recurse)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def _models() -> list[nn.Module]:
    torch.manual_seed(0)
    return [
        nn.Sequential(nn.Linear(13, 64), nn.ReLU(), nn.Linear(64, 3)),
        _Tied(),
        nn.Sequential(nn.ReLU()),  # no parameters
        nn.BatchNorm1d(3, affine=False),  # buffers only
        nn.Sequential(nn.Embedding(5, 2), nn.Linear(2, 1).double()),  # the first float is float32
        nn.MultiheadAttention(4, 2),  # in_proj_weight registered directly, None biases skipped
        _OwnListing(),
    ]


@pytest.mark.parametrize("i", range(len(_models())))
def test_the_adapter_lists_what_module_parameters_lists(i: int) -> None:
    m = _models()[i]
    truth = list(m.parameters())  # torch's own listing: order, tied parameters once
    got = _unique_parameters(m)
    assert [id(p) for p in got] == [id(p) for p in truth]
    ad = TorchModel(m)
    # brute force: every distinct parameter counted once, by identity
    assert ad.n_params == sum(p.numel() for p in {id(p): p for p in truth}.values())
    tensors = truth if truth and any(p.dtype.is_floating_point for p in truth) else \
        truth + list(m.buffers())
    want_dtype = next((t.dtype for t in tensors if t.dtype.is_floating_point), None)
    assert ad.compute_dtype(torch.float16) == (want_dtype or torch.float16)
    assert ad.device == (tensors[0].device if tensors else torch.device("cpu"))


def test_a_plain_module_is_walked_once_without_module_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cut itself (fails before it: the adapter called Module.parameters, whose
    named_parameters machinery hashes every tensor into a set)."""
    calls: list[str] = []
    orig = nn.Module.named_parameters

    def counted(self: nn.Module, *a: Any, **k: Any) -> Any:
        calls.append(type(self).__name__)
        return orig(self, *a, **k)

    monkeypatch.setattr(nn.Module, "named_parameters", counted)
    m = nn.Sequential(nn.Linear(13, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    ad = TorchModel(m)
    assert calls == []
    assert ad.n_params == 13 * 64 + 64 + 64 * 64 + 64 + 64 * 3 + 3


def test_the_adapter_sees_the_model_as_it_is_now() -> None:
    """Nothing is cached across adapters: a replaced parameter, an added module and a dtype
    change show in the next adapter (and the next explain's engine cap reads them)."""
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert TorchModel(m).n_params == 3 * 4 + 4 + 4 * 2 + 2
    m[2].weight = m[0].weight  # tied (4 x 3 in place of 2 x 4): counted once
    assert TorchModel(m).n_params == 3 * 4 + 4 + 2
    m.append(nn.Linear(2, 7))
    assert TorchModel(m).n_params == 3 * 4 + 4 + 2 + 2 * 7 + 7
    m.double()
    assert TorchModel(m).compute_dtype(torch.float32) == torch.float64
