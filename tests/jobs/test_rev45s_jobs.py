"""rev45s: review of small45's job fingerprints (configs in containers, chains, Enums).

* ``cfg.fn = functools.partial(scale, k=2)`` in a config the target reads (in a list): the
  partial was skipped as library code (``functools``), so ``k=3`` resumed the job.
* An Enum whose values are objects (``A = Obj(1)``): canonical() could not record the value and
  the member fell back to its attributes, so ``ObjE.B`` resumed a job of ``ObjE.A``.
* Objects reaching each other through several paths (30 nodes, 6 neighbours each, the target
  reads ``n.nbrs`` and ``n.i``) were walked once per path: job start hung (> 120 s; 0.0 s at
  194a6f3). Now each object is read once per walk.

Truth: a changed setting the target reads must change the digest (the job refuses the
resume); equal settings in new objects must keep it.
"""

from __future__ import annotations

import enum
import functools
from typing import Any

import pytest

from tribute.jobs import manifest


def _digest(src: str, **glob: Any) -> str:
    ns: dict[str, Any] = dict(glob)
    exec(src, ns)
    out = manifest.canonical(ns["t"])
    assert isinstance(out, dict)
    return str(out["code_sha256"])


class _Cfg:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def _scale(y: Any, k: int) -> Any:
    return y * k


_SRC = "t = lambda y: CFGS[0].fn(y)"


def test_partial_in_a_config_in_a_list_is_recorded() -> None:
    two = _digest(_SRC, CFGS=[_Cfg(fn=functools.partial(_scale, k=2))])
    assert two != _digest(_SRC, CFGS=[_Cfg(fn=functools.partial(_scale, k=3))])
    assert two == _digest(_SRC, CFGS=[_Cfg(fn=functools.partial(_scale, k=2))])  # rebuilt equal


class _Obj:
    def __init__(self, k: int) -> None:
        self.k = k


class _ObjE(enum.Enum):
    A = _Obj(1)
    B = _Obj(2)


@pytest.mark.parametrize("src", ["t = lambda y: y * MODE.value.k", "t = lambda y: y * CFGS[0].mode.value.k"])
def test_enum_with_object_values_is_recorded(src: str) -> None:
    a = _digest(src, MODE=_ObjE.A, CFGS=[_Cfg(mode=_ObjE.A)])
    assert a != _digest(src, MODE=_ObjE.B, CFGS=[_Cfg(mode=_ObjE.B)])
    assert a == _digest(src, MODE=_ObjE["A"], CFGS=[_Cfg(mode=_ObjE(_ObjE.A.value))])


class _Node:
    def __init__(self, i: int) -> None:
        self.i = i
        self.nbrs: list[_Node] = []


def _lattice(n: int = 30, change: int | None = None) -> list[_Node]:
    nodes = [_Node(i) for i in range(n)]
    for i, node in enumerate(nodes):
        node.nbrs = [nodes[(i + d) % n] for d in (-3, -2, -1, 1, 2, 3)]
    if change is not None:
        nodes[change].i = -1
    return nodes


def test_object_graph_is_read_once_per_object(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = [0]
    own = manifest._own_dict

    def counting(g: Any) -> Any:
        calls[0] += 1
        if calls[0] > 20_000:  # small45 walked every path (hours): fail fast instead
            raise AssertionError("the digest walk read objects far more than once each")
        return own(g)

    monkeypatch.setattr(manifest, "_own_dict", counting)
    src = "t = lambda y: sum(y[:, n.i] for n in NODES[0].nbrs)"
    base = _digest(src, NODES=_lattice())
    assert calls[0] < 20 * 30
    assert base == _digest(src, NODES=_lattice())  # equal graph, new objects
    assert base != _digest(src, NODES=_lattice(change=5))  # a node 2 hops away
    assert base != _digest(src, NODES=_lattice(change=1))


class _Peer:
    """Hashed by ``h`` (which the target never reads): it decides the set's order."""

    def __init__(self, col: int, h: int) -> None:
        self.col, self.h, self.peer = col, h, None

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        return self is other


def _peers(h_a: int, h_b: int, col_b: int = 2) -> set[_Peer]:
    a, b = _Peer(1, h_a), _Peer(col_b, h_b)
    a.peer, b.peer = b, a  # type: ignore[assignment]
    return {a, b}


def test_set_order_does_not_change_the_digest() -> None:
    src = "t = lambda y: [(g.col, g.peer.col) for g in GROUP]"
    first = _digest(src, GROUP=_peers(0, 1))
    assert [g.col for g in _peers(0, 1)] != [g.col for g in _peers(1, 0)]  # the orders differ
    assert first == _digest(src, GROUP=_peers(1, 0))  # the same settings in another order
    assert first != _digest(src, GROUP=_peers(0, 1, col_b=3))
