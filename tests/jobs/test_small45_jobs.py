"""small45: what a job's target digest (``manifest._function_digest``) did not record.

* An ``Enum`` member the target reads (a global ``MODE = Color.G``, one in a closure, one as a
  config object's attribute) counted by its type's name only: ``Color.R`` resumed a job started
  with ``Color.G``.
* Config objects inside a list, tuple or dict (``CFGS[0].col``) and attributes reached through
  a chain (``cfg.sub.col``) counted by their type's name only.

In each case the resumed job mixed shards explaining two outputs. Truth: the merged rows of a
resumed job equal :func:`tribute.explain` on all rows with the target's value; a changed
setting is refused naming ``settings.explain.target``.
"""

from __future__ import annotations

import enum
import os
import time
import types
from pathlib import Path
from typing import Any

import jobs_fixtures
import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError
from tribute.jobs import manifest


class Color(enum.Enum):
    R = 0
    G = 2


class Cfg:
    def __init__(self, col: int, note: Any = None) -> None:
        self.col = col
        self.note = note


MODE = Color.G
CFGS = [Cfg(2)]
CHAIN = types.SimpleNamespace(sub=Cfg(2))


def t_enum(y: Any) -> Any:
    return y[:, MODE.value]


def t_list(y: Any) -> Any:
    return y[:, CFGS[0].col]


def t_chain(y: Any) -> Any:
    return y[:, CHAIN.sub.col]


def _digest(fn: Any) -> str:
    return str(manifest.canonical(fn)["code_sha256"])


def _ns(src: str, **values: Any) -> Any:
    ns: dict[str, Any] = {"Color": Color, "Cfg": Cfg, "types": types, **values}
    exec(src, ns)
    return ns["t"]


_job = jobs_fixtures.exact_shapley_job


@pytest.mark.parametrize(("target", "name", "changed", "same"), [
    (t_enum, "MODE", Color.R, Color.G),
    (t_list, "CFGS", [Cfg(0)], [Cfg(2)]),
    (t_chain, "CHAIN", types.SimpleNamespace(sub=Cfg(0)), types.SimpleNamespace(sub=Cfg(2))),
])
def test_a_resumed_job_with_a_changed_setting_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         target: Any, name: str, changed: Any, same: Any) -> None:
    out = tmp_path / "o"
    got, model, X = _job(out, target)
    ref = tribute.explain(model, torch.from_numpy(X), method="exact_shapley", target=2)
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(ref.values), rtol=0, atol=1e-12)
    os.remove(out / "shards" / "shard-000001.npz")
    monkeypatch.setitem(target.__globals__, name, changed)  # the job would mix outputs 2 and 0
    with pytest.raises(InputError, match=r"settings\.explain\.target\.code_sha256"):
        _job(out, target, resume=True)
    monkeypatch.setitem(target.__globals__, name, same)  # equal settings in new objects resume
    again, _, _ = _job(out, target, resume=True)
    np.testing.assert_allclose(np.asarray(again.values), np.asarray(ref.values), rtol=0, atol=1e-12)


_CHANGES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("t = lambda y: y[:, C.value]", {"C": Color.G}, {"C": Color.R}),
    ("t = lambda y: y[:, cfg.mode.value]", {"cfg": types.SimpleNamespace(mode=Color.G)},
     {"cfg": types.SimpleNamespace(mode=Color.R)}),
    ("t = lambda y: y[:, CFGS[0].col]", {"CFGS": [Cfg(2)]}, {"CFGS": [Cfg(0)]}),
    ("t = lambda y: y[:, CFGS[0].col]", {"CFGS": (Cfg(2),)}, {"CFGS": (Cfg(0),)}),
    ("t = lambda y: y[:, CFGS['a'].col]", {"CFGS": {"a": Cfg(2)}}, {"CFGS": {"a": Cfg(0)}}),
    ("t = lambda y: y[:, cfg.sub.col]", {"cfg": types.SimpleNamespace(sub=Cfg(2))},
     {"cfg": types.SimpleNamespace(sub=Cfg(0))}),
    ("t = lambda y: y[:, cfg.a.b.col]", {"cfg": types.SimpleNamespace(a=types.SimpleNamespace(b=Cfg(2)))},
     {"cfg": types.SimpleNamespace(a=types.SimpleNamespace(b=Cfg(0)))}),
    ("t = lambda y: y[:, cfg.sub.mode.value]", {"cfg": types.SimpleNamespace(sub=types.SimpleNamespace(mode=Color.G))},
     {"cfg": types.SimpleNamespace(sub=types.SimpleNamespace(mode=Color.R))}),
]


@pytest.mark.parametrize(("src", "before", "after"), _CHANGES)
def test_a_changed_enum_listed_or_chained_setting_changes_the_digest(
        src: str, before: dict[str, Any], after: dict[str, Any]) -> None:
    assert _digest(_ns(src, **before)) != _digest(_ns(src, **after))


def _make_closure(value: Any) -> Any:
    return lambda y: y[:, value.sub.col] if isinstance(value, types.SimpleNamespace) else y[:, value.value]


def test_closures_holding_an_enum_or_a_chained_config_are_recorded() -> None:
    assert _digest(_make_closure(Color.G)) != _digest(_make_closure(Color.R))
    assert _digest(_make_closure(Color.G)) == _digest(_make_closure(Color.G))
    a = _make_closure(types.SimpleNamespace(sub=Cfg(2)))
    assert _digest(a) != _digest(_make_closure(types.SimpleNamespace(sub=Cfg(0))))
    assert _digest(a) == _digest(_make_closure(types.SimpleNamespace(sub=Cfg(2))))


class _Addressed:  # the default repr holds the address, new in every process
    pass


def _linked(n: int) -> Any:
    node: Any = types.SimpleNamespace(col=2, next=None)
    for _ in range(n):
        node = types.SimpleNamespace(col=2, next=node)
    return node


_SAME: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # equal settings rebuilt in new objects, an unread attribute changed, dict order: one digest
    ("t = lambda y: y[:, C.value]", {"C": Color.G}, {"C": Color(2)}),
    ("t = lambda y: y[:, CFGS[0].col]", {"CFGS": [Cfg(2)]}, {"CFGS": [Cfg(2)]}),
    ("t = lambda y: y[:, CFGS[1].col]", {"CFGS": (Cfg(1), Cfg(2))}, {"CFGS": (Cfg(1), Cfg(2))}),
    ("t = lambda y: y[:, CFGS['b'].col]", {"CFGS": {"a": Cfg(1), "b": Cfg(2)}},
     {"CFGS": {"b": Cfg(2), "a": Cfg(1)}}),
    ("t = lambda y: y[:, cfg.sub.col]", {"cfg": types.SimpleNamespace(sub=Cfg(2), x=1)},
     {"cfg": types.SimpleNamespace(x=1, sub=Cfg(2))}),
    ("t = lambda y: y[:, cfg.sub.col]", {"cfg": types.SimpleNamespace(sub=Cfg(2, note=_Addressed()))},
     {"cfg": types.SimpleNamespace(sub=Cfg(2, note=_Addressed()))}),
    ("t = lambda y: y[:, cfg.sub.col]", {"cfg": types.SimpleNamespace(sub=Cfg(2), other=Cfg(5))},
     {"cfg": types.SimpleNamespace(sub=Cfg(2), other=Cfg(7))}),
    ("t = lambda y: y[:, CFGS[0].col]", {"CFGS": [Cfg(2, note={"k": 1, "j": 2})]},
     {"CFGS": [Cfg(2, note={"j": 2, "k": 1})]}),
    ("t = lambda y: y[:, cfg.mode.value]", {"cfg": types.SimpleNamespace(mode=Color.G)},
     {"cfg": types.SimpleNamespace(mode=Color["G"])}),
    ("t = lambda y: y[:, node.next.next.col]", {"node": _linked(200)}, {"node": _linked(200)}),
    ("t = lambda y: y[:, W[0]] * s.k", {"W": [2], "s": types.SimpleNamespace(k=1.0)},
     {"W": [2], "s": types.SimpleNamespace(k=1.0)}),
]


@pytest.mark.parametrize(("src", "a", "b"), _SAME)
def test_equal_settings_in_new_objects_keep_the_digest(src: str, a: dict[str, Any], b: dict[str, Any]) -> None:
    assert _digest(_ns(src, **a)) == _digest(_ns(src, **b))


def test_a_config_object_holding_itself_is_digested_at_once() -> None:
    a = types.SimpleNamespace(col=2)
    a.me = a
    b = types.SimpleNamespace(col=2)
    b.me = b
    t0 = time.perf_counter()
    da = _digest(_ns("t = lambda y: y[:, cfg.me.me.col]", cfg=a))
    assert time.perf_counter() - t0 < 5
    assert da == _digest(_ns("t = lambda y: y[:, cfg.me.me.col]", cfg=b))
    b.col = 0
    assert da != _digest(_ns("t = lambda y: y[:, cfg.me.me.col]", cfg=b))


def test_an_enum_as_an_explain_setting_is_recorded_by_name_and_value() -> None:
    assert manifest.canonical({"mode": Color.G}) == manifest.canonical({"mode": Color(2)})
    assert manifest.canonical({"mode": Color.G}) != manifest.canonical({"mode": Color.R})
