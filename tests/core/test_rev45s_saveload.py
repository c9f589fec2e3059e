"""rev45s: review of small45's ``Attribution.save`` / ``load`` codes.

* A tensor is hashable (by identity), so it can be a dict key or a set item of ``params`` /
  ``extra``. small45 wrote it as a list (params) or an array (extra) inside the set / key code,
  so ``save`` succeeded and ``load`` refused the file it had just written ("a saved set holds an
  unhashable item; the file is damaged"). 194a6f3 read these back as repr strings.
* small45 walks every ``params`` value with a recursive ``_needs_code``: a list nested 350 deep
  (saved by 194a6f3) raised RecursionError.

Truth: what 194a6f3 wrote (``repr`` of the tensor) and the object saved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import tribute
from tribute.attribution import Attribution


def _attr() -> Attribution:
    m = torch.nn.Linear(3, 2).double()
    return tribute.explain(m, torch.arange(6, dtype=torch.float64).reshape(2, 3), method="saliency", target=0)


_T = torch.arange(3)
_S = torch.tensor(1.0)


@pytest.mark.parametrize(("where", "value", "truth"), [
    ("params", {_T}, {repr(_T)}),
    ("params", {_T: "x"}, {repr(_T): "x"}),
    ("params", {(_T, 1): "x"}, {(repr(_T), 1): "x"}),
    ("params", frozenset({_S}), frozenset({repr(_S)})),
    ("extra", {_T}, {repr(_T)}),
    ("extra", {_S}, {repr(_S)}),
    ("extra", {(_S, 2): 0.5}, {(repr(_S), 2): 0.5}),
    ("extra", {frozenset({_T}): [1, 2]}, {frozenset({repr(_T)}): [1, 2]}),
])
def test_tensor_as_key_or_set_item_loads(tmp_path: Path, where: str, value: Any, truth: Any) -> None:
    a = _attr()
    if where == "params":
        a.params["x"] = value
    else:
        a.extra["x"] = value
    b = Attribution.load(a.save(tmp_path / "a.npz"))
    got = b.params["x"] if where == "params" else b.extra["x"]
    assert got == truth and type(got) is type(truth)


def test_deeply_nested_params_list_still_saves(tmp_path: Path) -> None:
    deep: Any = 1
    for _ in range(400):
        deep = [deep]
    a = _attr()
    a.params["x"] = deep
    b = Attribution.load(a.save(tmp_path / "a.npz"))
    got = b.params["x"]
    for _ in range(400):
        assert isinstance(got, list) and len(got) == 1
        got = got[0]
    assert got == 1
