"""rev44j: the job digest of a target function (``manifest.canonical(target)["code_sha256"]``).

* A dict the target reads keyed by functions or by objects with the default repr was recorded
  by ``str(key)``, which holds the key's address: every process got another digest and a resume
  of an unchanged job was refused.
* A callable instance the target calls (``PICK = Picker(1)``, ``PICK(y)``), as a global or in
  the closure, and a bound method of an ``nn.Module`` reading its own parameter (``m.pick``,
  ``y @ self.w``) were recorded without their state: a resume with other values was accepted.
* A global with ``__slots__`` and a ``__getattr__`` that raises, or a list holding an object
  whose ``__repr__`` raises, made the job start fail with the user's own error.
* A torch module read by several helpers was hashed once per helper.

Truths: the same source executed twice (two sets of objects at other addresses) must give one
digest; a changed value must give another; the user's ``__getattr__``/``__repr__`` is not needed.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tribute.errors import InputError
from tribute.jobs import manifest
from tribute.jobs import model as job_model

_SRC = '''
import torch

class K:
    pass

class Picker:
    def __init__(self, c):
        self.c = c
    def __call__(self, y):
        return y[:, self.c]

class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.0, 0.0, 0.0]))
    def pick(self, y):
        return y @ self.w

def fa(y):
    return y[:, 0]

def fb(y):
    return y[:, 1]

FN_KEYS = {fa: 1.0, fb: 2.0}
OBJ_KEYS = {K(): 1.0, K(): 2.0}
PICK = Picker(1)

def t_fn_keys(y):
    return sum(w * f(y) for f, w in FN_KEYS.items())

def t_obj_keys(y):
    return y[:, 0] * sum(OBJ_KEYS.values())

def t_pick(y):
    return PICK(y)

def make(p):
    return lambda y: p(y)

t_closure_pick = make(Picker(1))
m = M()
'''


def _load(tag: str) -> dict[str, Any]:
    ns: dict[str, Any] = {"__name__": "rev44j_targets"}
    junk = [object() for _ in range(len(tag) * 97)]  # other addresses for the copies
    exec(compile(_SRC, "rev44j_targets.py", "exec"), ns)
    ns["_junk"] = junk
    return ns


def _digest(fn: Any) -> str:
    return str(manifest.canonical(fn)["code_sha256"])


@pytest.mark.parametrize("name", ["t_fn_keys", "t_obj_keys"])
def test_a_dict_keyed_by_functions_or_objects_digests_alike_in_every_copy(name: str) -> None:
    a, b = _load("a"), _load("bb")
    assert a["fa"] is not b["fa"]
    assert _digest(a[name]) == _digest(b[name])
    if name == "t_fn_keys":  # and a changed weight still counts
        b["FN_KEYS"][b["fa"]] = 9.0
        assert _digest(a[name]) != _digest(b[name])


def test_a_dict_with_object_keys_as_a_setting_is_refused_clearly() -> None:
    ns = _load("a")
    with pytest.raises(InputError, match="dict keyed by a function"):
        manifest.canonical({"weights": ns["FN_KEYS"]})


def test_a_callable_instance_the_target_calls_is_recorded_by_its_state() -> None:
    a, b = _load("a"), _load("bb")
    for name in ("t_pick", "t_closure_pick"):
        assert _digest(a[name]) == _digest(b[name])  # equal state, other objects
    b["PICK"].c = 0
    assert _digest(a["t_pick"]) != _digest(b["t_pick"])
    b["t_closure_pick"].__closure__[0].cell_contents.c = 0
    assert _digest(a["t_closure_pick"]) != _digest(b["t_closure_pick"])


def test_a_module_bound_method_records_its_parameters() -> None:
    a, b = _load("a"), _load("bb")
    assert _digest(a["m"].pick) == _digest(b["m"].pick)
    with torch.no_grad():
        b["m"].w.copy_(torch.tensor([0.0, 1.0, 0.0]))
    assert _digest(a["m"].pick) != _digest(b["m"].pick)


class _Slots:
    __slots__ = ("col",)

    def __init__(self) -> None:
        self.col = 1

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"__getattr__({name!r}) must not run")


class _CallableGetattr:
    def __call__(self, y: Any) -> Any:
        return y

    def __getattr__(self, name: str) -> Any:
        raise KeyError(name)


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("__repr__ must not decide the digest")


@pytest.mark.parametrize("obj", [_Slots(), _CallableGetattr(), [_BadRepr()], {"k": _BadRepr()}],
                         ids=["slots-getattr", "callable-getattr", "list-bad-repr", "dict-bad-repr"])
def test_user_dunder_methods_that_raise_do_not_fail_the_job_start(obj: Any) -> None:
    ns: dict[str, Any] = {"O": obj}
    exec("def t(y):\n    return y[:, 0] if O else y", ns)
    assert len(_digest(ns["t"])) == 64


def test_a_module_read_by_several_helpers_is_hashed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = job_model.fingerprint_model

    def counting(m: Any) -> str:
        calls.append(id(m))
        return real(m)

    monkeypatch.setattr(job_model, "fingerprint_model", counting)
    ns: dict[str, Any] = {"HEAD": torch.nn.Linear(3, 4)}
    exec("def h1(y):\n    return HEAD(y)[:, 1]\n"
         "def h2(y):\n    return HEAD(y)[:, 2]\n"
         "def t(y):\n    return HEAD(y)[:, 0] + h1(y) + h2(y)\n", ns)
    first = _digest(ns["t"])
    assert calls == [id(ns["HEAD"])]
    with torch.no_grad():
        ns["HEAD"].weight.add_(1.0)
    assert _digest(ns["t"]) != first


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_a_low_precision_weight_the_target_reads_is_recorded(dtype: torch.dtype) -> None:
    ns: dict[str, Any] = {"W": torch.tensor([1.0, 0.0, 0.0], dtype=dtype)}
    exec("def t(y):\n    return y @ W", ns)
    first = _digest(ns["t"])
    ns["W"] = torch.tensor([1.0, 0.0, 0.0], dtype=dtype)  # equal values, another tensor
    assert _digest(ns["t"]) == first
    ns["W"] = torch.tensor([0.0, 1.0, 0.0], dtype=dtype)
    assert _digest(ns["t"]) != first
