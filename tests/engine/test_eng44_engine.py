"""eng44 (issue #9): the torch session and adapter walk the model without torch's generators
(``_all_modules``, ``_own_buffers``, ``_hook_dicts``), giving the same modules, buffers and
hook dicts as ``Module.modules()`` / ``named_buffers(recurse=False)`` / the nine hook names,
and restoring the model exactly as before."""

from __future__ import annotations

import collections
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

import tribute
from tribute.models import adapters as A
from tribute.models.adapters import _HOOK_DICTS, TorchModel


class _Shared(nn.Module):
    """A submodule reached twice (at two places, one inside a Sequential), a None child, a
    tied weight, buffers: None, the same tensor under two names, one shared with another
    module."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 4)
        self.b = nn.Linear(4, 3)
        self.seq = nn.Sequential(self.b, nn.ReLU(), nn.Sequential(self.a, nn.Tanh()))
        self.shared = self.a
        self.register_module("nothing", None)
        self.blocks = nn.ModuleList([nn.Linear(3, 3), self.b])
        self.table = nn.ModuleDict({"z": nn.Identity(), "y": self.seq})
        count = torch.zeros(2)
        self.register_buffer("count", count)
        self.register_buffer("empty", None)
        self.register_buffer("alias", count)  # the same tensor twice in one module
        self.b.register_buffer("mine", count)  # and in another module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


class _OwnWalk(nn.Module):
    """Overrides named_modules (hides its second child) and named_buffers: torch's listing."""

    def __init__(self) -> None:
        super().__init__()
        self.keep = nn.Linear(2, 2)
        self.hide = nn.Linear(2, 2)
        self.register_buffer("shown", torch.ones(1))
        self.register_buffer("hidden", torch.ones(1))

    def named_modules(self, memo: Any = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, nn.Module]]:
        for name, mod in super().named_modules(memo, prefix, remove_duplicate):
            if mod is not self.hide:
                yield name, mod

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, torch.Tensor]]:
        for name, b in super().named_buffers(prefix, recurse, remove_duplicate):
            if not name.endswith("hidden"):
                yield name, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.keep(x) + self.hide(x)


class _ValueEq(nn.Linear):
    """Modules equal by their shape (torch's walk dedups equal ones in its set)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ValueEq) and other.weight.shape == self.weight.shape

    def __hash__(self) -> int:
        return hash(tuple(self.weight.shape))


def _models() -> list[nn.Module]:
    torch.manual_seed(0)
    inner_own = nn.Sequential(nn.Linear(2, 2), _OwnWalk())
    return [
        nn.Sequential(nn.Linear(13, 64), nn.ReLU(), nn.Linear(64, 3)),
        _Shared(),
        _OwnWalk(),
        inner_own,  # an override below the root: torch's walk asks the child
        nn.Sequential(_ValueEq(2, 2), _ValueEq(2, 2), nn.Linear(2, 2)),
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU()),
        nn.MultiheadAttention(4, 2),
        nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 2, enable_nested_tensor=False),
        torch.jit.script(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))),
        nn.Linear(2, 2),
    ]


@pytest.mark.parametrize("i", range(len(_models())))
def test_the_walk_lists_what_torch_lists(i: int) -> None:
    """Modules: identity and order of ``list(m.modules())``; buffers: those of
    ``named_buffers(recurse=False)`` module by module (tied, None and repeated entries as torch
    has them); overrides and TorchScript go through torch."""
    m = _models()[i]
    want = list(m.modules())
    got = A._all_modules(m)
    assert len(got) == len(want) and all(a is b for a, b in zip(got, want))
    want_b = [(mod, name, b, b._version) for mod in want for name, b in mod.named_buffers(recurse=False)]
    got_b = A._own_buffers(want)
    assert [(id(a), n, id(b), v) for a, n, b, v in got_b] == \
        [(id(a), n, id(b), v) for a, n, b, v in want_b]
    want_d = [d for mod in want for name in _HOOK_DICTS
              if (d := mod.__dict__.get(name)) is not None]
    got_d = A._hook_dicts(want)
    assert [id(d) for d in got_d] == [id(d) for d in want_d]


def test_the_walk_counts_shared_modules_once_at_their_first_place() -> None:
    """By hand: the shared Linear ``a`` comes once, where the Sequential inside ``seq`` reaches
    it first; the ModuleList's repeat of ``b`` and the ModuleDict's repeat of ``seq`` add nothing."""
    m = _Shared()
    nested = m.seq[2]
    assert isinstance(nested, nn.Sequential)
    expect = [m, m.a, m.b, m.seq, m.seq[1], nested, nested[1], m.blocks, m.blocks[0], m.table,
              m.table["z"]]
    got = A._all_modules(m)
    assert [id(x) for x in got] == [id(x) for x in expect]
    bufs = [(name, b) for _, name, b, _ in A._own_buffers(got)]
    # the root first: 'alias' is the same tensor as 'count' there (listed once); then 'mine' in b
    assert [n for n, _ in bufs] == ["count", "mine"]
    assert all(b is m.count for _, b in bufs)


def test_a_plain_model_is_walked_without_torchs_generators(monkeypatch: pytest.MonkeyPatch) -> None:
    """The session and the adapter do not call named_modules / named_buffers on a plain model
    (main called both: 79 + 87 us on all-MiniLM-L6's 122 modules)."""
    calls: collections.Counter[str] = collections.Counter()
    base = nn.Module
    for name in ("named_modules", "named_buffers"):
        orig = getattr(base, name)

        def counted(self: nn.Module, *a: Any, _orig: Any = orig, _name: str = name, **k: Any) -> Any:
            calls[_name] += 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(base, name, counted)
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).eval()
    ad = TorchModel(m)
    with ad.session():
        pass
    assert calls == collections.Counter(), calls


def test_the_session_restores_hooks_flags_and_sees_the_model_as_it_is_now() -> None:
    """Hooks added during a session are removed (next to hooks that were there before, on
    modules without any, on a module added after the first session, and in a dict a module
    lacked at entry); training flags and requires_grad come back; nothing is cached across
    sessions."""
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).train()
    keep = m[0].register_forward_hook(lambda mod, i, o: None)
    m[2].weight.requires_grad_(False)
    ad = TorchModel(m)
    with ad.session():
        assert not m.training and not any(p.requires_grad for p in m.parameters())
        m[0].register_forward_hook(lambda mod, i, o: None)
        m[1].register_forward_pre_hook(lambda mod, i: None)
    assert list(m[0]._forward_hooks) == [keep.id] and not m[1]._forward_pre_hooks
    assert m.training and m[0].weight.requires_grad and not m[2].weight.requires_grad
    m.append(nn.Tanh())  # a module added between sessions
    del m[1].__dict__["_state_dict_hooks"]  # a module lacking one hook dict
    with ad.session():
        m[3].register_forward_hook(lambda mod, i, o: None)
        m[1].register_full_backward_hook(lambda mod, gi, go: None)
        m[1].__dict__["_state_dict_hooks"] = collections.OrderedDict(x=1)  # not there at entry
    assert not m[3]._forward_hooks and not m[1]._backward_hooks
    assert m[1].__dict__["_state_dict_hooks"] == {"x": 1}  # unknown at entry: left as found
    assert list(m[0]._forward_hooks) == [keep.id] and m.training


def test_a_buffer_written_in_a_session_is_still_reported() -> None:
    """The version counters of the buffers read off the dicts tell a forward that wrote one
    (the module named), and a buffer read twice in one module is reported once."""
    class Counting(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 2)
            calls = torch.zeros(())
            self.register_buffer("calls", calls)
            self.register_buffer("again", calls)
            self.counter = calls

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.counter.add_(1)  # writes the buffer in place
            return self.lin(x)

    m = nn.Sequential(Counting())
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        tribute.explain(m, x, method="feature_ablation", target=0, progress=False)
    msgs = [str(w.message) for w in got if "changed its buffer" in str(w.message)]
    assert len(msgs) == 1 and "'0.calls'" in msgs[0] and "again" not in msgs[0], msgs


def test_an_instance_with_its_own_walk_is_walked_by_torch() -> None:
    """``m.named_modules = ...`` / ``m.named_buffers = ...`` / ``m.parameters = ...`` set on an
    instance (as torch's ``modules()`` would call them) hide a module, a buffer and a parameter:
    the walk, the buffers and the adapter's parameters follow them (the class-only check missed
    instance attributes)."""
    m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 1))
    hidden, bn = m[2], m[1]
    walk, bufs, params = m.named_modules, bn.named_buffers, m.parameters

    def named_modules(*a: Any, **k: Any) -> Iterator[tuple[str, nn.Module]]:
        return ((n, x) for n, x in walk(*a, **k) if x is not hidden)

    def named_buffers(*a: Any, **k: Any) -> Iterator[tuple[str, torch.Tensor]]:
        return ((n, b) for n, b in bufs(*a, **k) if n != "running_var")

    def parameters(*a: Any, **k: Any) -> Iterator[nn.Parameter]:
        return (p for p in params(*a, **k) if p is not m[0].bias)

    m.named_modules = named_modules  # type: ignore[method-assign]
    bn.named_buffers = named_buffers  # type: ignore[method-assign]
    m.parameters = parameters  # type: ignore[method-assign]
    got = A._all_modules(m)
    assert [id(x) for x in got] == [id(x) for x in m.modules()] and hidden not in got
    names = [n for _, n, _, _ in A._own_buffers(got)]
    assert names == [n for x in m.modules() for n, _ in x.named_buffers(recurse=False)]
    assert "running_var" not in names and "running_mean" in names
    got_p = A._unique_parameters(m)
    # the hidden Linear and the hidden bias left out: Linear 0 weight, BatchNorm weight and bias
    assert [id(p) for p in got_p] == [id(p) for p in m.parameters()] and len(got_p) == 3
