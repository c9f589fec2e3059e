"""aud44j: the job digest of a target function (``manifest._function_digest``).

* A plain global (a list of weights, a column number) read only in code nested in the target (a
  generator expression, an inner lambda) was not recorded: a resumed job with another value
  was accepted and mixed shards explaining two quantities.
* A registry of functions calling each other through a global list or dict (``REG[1](y)``)
  hung the job start: a function met inside a container started a fresh walk of its own, which
  met the container again (over 120 s at 100% CPU, measured, never finished).
* Functions calling each other through a global ``set`` gave a digest that depended on the
  set's iteration order (their addresses): two processes with the same code disagreed, and a
  resume was refused.
* A global only *named* like an attribute the target reads (``y.mean(1)`` beside an unrelated
  ``mean = 1.0``) was recorded: changing it refused the resume.

Truths: a resumed job's merged rows equal :func:`tribute.explain` on all rows with the
target's value (``y[:, 0]``, a weighted sum computed with the same weights); the digest of
one function's code is the same whatever the set order it is walked in.
"""

from __future__ import annotations

import os
import sys
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

_W = [1.0, 0.0, 0.0]


def _weighted(y: Any) -> Any:
    return sum(y[:, c] * _W[c] for c in range(3))  # _W is read in the generator only


mean = 1.0  # an unrelated global named like the tensor method the target calls


def _mean_target(y: Any) -> Any:
    return y.mean(1)


_job = jobs_fixtures.exact_shapley_job


def test_a_global_read_in_a_generator_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "o"
    got, model, X = _job(out, _weighted)
    ref = tribute.explain(model, torch.from_numpy(X), method="exact_shapley", target=0)
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(ref.values), rtol=0, atol=1e-12)
    os.remove(out / "shards" / "shard-000001.npz")
    # the same job explaining output 1 would mix rows 0..3 (output 0) and 4..7 (output 1)
    monkeypatch.setitem(_weighted.__globals__, "_W", [0.0, 1.0, 0.0])
    with pytest.raises(InputError, match=r"settings\.explain\.target"):
        _job(out, _weighted, resume=True)
    monkeypatch.setitem(_weighted.__globals__, "_W", [1.0, 0.0, 0.0])
    again, _, _ = _job(out, _weighted, resume=True)  # the same values resume
    np.testing.assert_allclose(np.asarray(again.values), np.asarray(ref.values), rtol=0, atol=1e-12)


def test_an_inner_lambda_reading_a_global_column_is_recorded() -> None:
    ns: dict[str, Any] = {"COL": 2}
    exec("t = lambda y: (lambda z: z[:, COL])(y)", ns)
    before = manifest.canonical(ns["t"])["code_sha256"]
    ns["COL"] = 0
    assert manifest.canonical(ns["t"])["code_sha256"] != before


def test_an_unrelated_global_named_like_an_attribute_does_not_refuse_the_resume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "o"
    _job(out, _mean_target)
    os.remove(out / "shards" / "shard-000001.npz")
    monkeypatch.setitem(_mean_target.__globals__, "mean", 2.0)  # the target never reads it
    got, model, X = _job(out, _mean_target, resume=True)
    ref = tribute.explain(model, torch.from_numpy(X), method="exact_shapley",
                          target=lambda y: y.mean(1))
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(ref.values), rtol=0, atol=1e-12)


_REGISTRY = """
K = 3
REG = []
def first(y):
    return REG[1](y) if y is None else y[:, 0] * K
def second(y):
    return REG[0](y)
REG += [first, second]
DREG = {}
def f1(y):
    return DREG["g"](y)
def g1(y):
    return DREG["f"](y) * K
DREG.update(f=f1, g=g1)
def t(y):
    return REG[0](y) + DREG["f"](y)
"""


def _module(source: str, name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__file__ = f"/nonexistent/{name}.py"  # the user's code, not an installed library
    sys.modules[name] = mod
    try:
        exec(compile(source, mod.__file__, "exec"), vars(mod))
    finally:
        sys.modules.pop(name, None)
    return mod


def test_a_registry_of_functions_calling_each_other_is_digested_at_once() -> None:
    mod = _module(_REGISTRY, "aud44j_registry")
    t0 = time.perf_counter()
    first = manifest.canonical(mod.t)["code_sha256"]
    assert time.perf_counter() - t0 < 5.0  # it never finished before (> 120 s measured)
    # still recorded: a constant the registry's functions read
    vars(mod)["K"] = 4
    assert manifest.canonical(mod.t)["code_sha256"] != first


_CYCLE = """
K = 3
def a(y, n=0):
    return c(y, n + 1)
def b(y, n=0):
    return c(y, n + 1) * 2
def c(y, n=0):
    return y * K if n > 3 else a(y, n + 1)
HELPERS = {a, b}
def t(y):
    return sum(h(y) for h in HELPERS)[:, 0]
"""


def test_functions_calling_each_other_through_a_set_digest_alike_in_either_set_order() -> None:
    digests: dict[tuple[str, ...], set[str]] = {}
    keep = []  # modules kept alive, so each new one's functions get new addresses
    for i in range(200):
        mod = _module(_CYCLE, f"aud44j_cycle_{i}")
        keep.append(mod)
        order = tuple(f.__name__ for f in mod.HELPERS)
        digests.setdefault(order, set()).add(manifest.canonical(mod.t)["code_sha256"])
        if len(digests) == 2:
            break
    assert len(digests) == 2, "every copy iterated its set in one order: nothing was compared"
    assert len(set.union(*digests.values())) == 1, digests


class _Picker:
    def __init__(self, col: int) -> None:
        self.col = col

    def pick(self, y: Any) -> Any:
        return y[:, self.col]


def test_a_bound_method_target_records_what_it_reads_from_its_object(tmp_path: Path) -> None:
    out = tmp_path / "o"
    _job(out, _Picker(2).pick)
    os.remove(out / "shards" / "shard-000001.npz")
    # rows 4..7 would explain output 0, rows 0..3 output 2
    with pytest.raises(InputError, match=r"settings\.explain\.target"):
        _job(out, _Picker(0).pick, resume=True)
    got, model, X = _job(out, _Picker(2).pick, resume=True)  # another object, the same state
    ref = tribute.explain(model, torch.from_numpy(X), method="exact_shapley", target=2)
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(ref.values), rtol=0, atol=1e-12)


def _column_target(cfg: Any) -> Any:
    return lambda y: y[:, cfg.col]


_CFG2 = types.SimpleNamespace(col=2)


def _default_target(y: Any, cfg: Any = _CFG2) -> Any:
    return y[:, cfg.col]


def test_a_config_object_in_the_closure_records_what_the_target_reads(tmp_path: Path) -> None:
    out = tmp_path / "o"
    _job(out, _column_target(types.SimpleNamespace(col=2)))
    os.remove(out / "shards" / "shard-000001.npz")
    with pytest.raises(InputError, match=r"settings\.explain\.target"):
        _job(out, _column_target(types.SimpleNamespace(col=0)), resume=True)
    got, model, X = _job(out, _column_target(types.SimpleNamespace(col=2)), resume=True)
    ref = tribute.explain(model, torch.from_numpy(X), method="exact_shapley", target=2)
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(ref.values), rtol=0, atol=1e-12)


def test_a_config_object_as_a_default_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    before = manifest.canonical(_default_target)["code_sha256"]
    monkeypatch.setattr(_default_target, "__defaults__", (types.SimpleNamespace(col=0),))
    assert manifest.canonical(_default_target)["code_sha256"] != before


_HEAD = torch.nn.Linear(3, 1)
_WEIGHTS = [0.0, 0.0, 1.0]
_SERIES: Any = None  # a pandas Series of _WEIGHTS, set by the test


def _head_target(y: Any) -> Any:
    return _HEAD(y)[:, 0]


def _series_target(y: Any) -> Any:
    return (y * torch.as_tensor(_SERIES.to_numpy(), dtype=y.dtype)).sum(1)


def test_a_module_or_series_the_target_reads_is_recorded_by_value(monkeypatch: pytest.MonkeyPatch) -> None:
    pd = pytest.importorskip("pandas")
    monkeypatch.setitem(globals(), "_SERIES", pd.Series(_WEIGHTS))
    head, series = (manifest.canonical(f)["code_sha256"] for f in (_head_target, _series_target))
    other = torch.nn.Linear(3, 1)
    with torch.no_grad():
        other.weight.copy_(-_HEAD.weight)
        other.bias.copy_(_HEAD.bias)
    monkeypatch.setitem(globals(), "_HEAD", other)  # explains another function of the outputs
    monkeypatch.setitem(globals(), "_SERIES", pd.Series([1.0, 0.0, 0.0]))  # output 0, not 2
    assert manifest.canonical(_head_target)["code_sha256"] != head
    assert manifest.canonical(_series_target)["code_sha256"] != series
    with torch.no_grad():
        other.weight.mul_(-1)  # the first weights again, in another module object
    monkeypatch.setitem(globals(), "_SERIES", pd.Series(list(_WEIGHTS)))  # equal values
    assert manifest.canonical(_head_target)["code_sha256"] == head
    assert manifest.canonical(_series_target)["code_sha256"] == series
