"""rev43s: the job digest of a target function follows the user's helper functions (small43),
once per call path: a user module of 30 helpers calling 8 others each took 83 s to digest
(8**6 paths), at every job start and resume. Each function is digested once per depth now.
Truth: a walk that digests each function once per depth asks for at most ``7 x 30 x (5 + 1)``
digests (5 callees each);
a call graph without cycles keeps the digest of a fresh walk (computed here by hand from the
leaf up, with the same rule)."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tribute.jobs import manifest


def _module(tmp_path: Path, name: str, n: int, calls: int, cyclic: bool, leaf: str = "y * K") -> ModuleType:
    rng = random.Random(0)
    lines = ["K = 3"]
    for i in range(n):
        pool = list(range(n)) if cyclic else list(range(i + 1, n))
        callees = rng.sample(pool, min(calls, len(pool)))
        body = " + ".join(f"f{j}(y, d - 1)" for j in callees) or leaf
        lines.append(f"def f{i}(y, d):\n    if d <= 0:\n        return {leaf}\n    return {body}")
    path = tmp_path / f"{name}.py"
    path.write_text("\n".join(lines) + "\n")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _count_digests(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    real = manifest._function_digest
    calls = [0]

    def counting(*a: Any, **kw: Any) -> str:
        calls[0] += 1
        return real(*a, **kw)

    monkeypatch.setattr(manifest, "_function_digest", counting)
    return calls


def test_helpers_calling_helpers_are_digested_once_per_depth(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    mod = _module(tmp_path, "rev43s_cyclic_helpers", n=30, calls=5, cyclic=True)
    try:
        calls = _count_digests(monkeypatch)
        first = manifest.canonical(mod.f0)["code_sha256"]
        # each of the 30 functions walked at most once at each depth 0..6, each walk asking for
        # its 5 callees (a walk per call path asks 1 + 5 + ... + 5**6 = 19,531 times)
        assert 0 < calls[0] <= 30 * (manifest._MAX_FN_DEPTH + 1) * (5 + 1)
        assert manifest.canonical(mod.f0)["code_sha256"] == first
        # a change 6 calls deep still counts: a helper's constant
        vars(mod)["K"] = 4
        assert manifest.canonical(mod.f0)["code_sha256"] != first
    finally:
        sys.modules.pop("rev43s_cyclic_helpers", None)


def test_a_call_graph_without_cycles_keeps_the_digest_of_a_fresh_walk(tmp_path: Path) -> None:
    mod = _module(tmp_path, "rev43s_acyclic_helpers", n=12, calls=3, cyclic=False)
    try:
        # by hand, from the last function up: each function's digest computed alone with its
        # callees' digests computed alone (no shared walk), at the depth it is called at
        def alone(i: int, depth: int) -> str:
            return manifest._function_digest(getattr(mod, f"f{i}"), frozenset(), depth)

        want = {i: alone(i, 0) for i in range(12)}
        got = {i: manifest.canonical(getattr(mod, f"f{i}"))["code_sha256"] for i in range(12)}
        assert got == want
    finally:
        sys.modules.pop("rev43s_acyclic_helpers", None)
