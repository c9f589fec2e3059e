"""small43: a resumed dataset job accepted a changed global ``dict`` the target function reads,
a changed helper function it calls and a changed attribute of the user's module (``mod.COLS``)
or of a global config object (rev42f). They are recorded in the target's digest now, by value
(the same in every process and hash seed); the same code still resumes. Truth: a resumed job's
merged rows equal :func:`tribute.explain` on all rows; a target reading ``y[:, k]`` explains
output ``k``."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import jobs_fixtures
import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError, TributeError
from tribute.jobs.manifest import canonical

_COLS_BY_NAME = {"wanted": 2}
_CFG = types.SimpleNamespace(col=2)


def _col(y: Any) -> Any:
    return y[:, 2]


def _col0(y: Any) -> Any:
    return y[:, 0]


def _by_dict(y: Any) -> Any:
    return y[:, _COLS_BY_NAME["wanted"]]


def _by_helper(y: Any) -> Any:
    return _col(y)


def _by_config(y: Any) -> Any:
    return y[:, _CFG.col]


def _job(out: Path, target: Any, **kw: Any) -> Any:
    model = jobs_fixtures.make_mlp().double()
    X = jobs_fixtures.data(8).astype(np.float64)
    return tribute.explain_dataset(model, X, out=out, method="exact_shapley", shard_size=4,
                                   progress=False, target=target, **kw), model, X


def _interrupted(out: Path, target: Any) -> None:
    _job(out, target)
    os.remove(out / "shards" / "shard-000001.npz")


@pytest.mark.parametrize("target,name,changed", [
    (_by_dict, "_COLS_BY_NAME", {"wanted": 0}),
    (_by_helper, "_col", _col0),
    (_by_config, "_CFG", types.SimpleNamespace(col=0)),
])
def test_resume_refuses_a_changed_dict_helper_or_config_and_resumes_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: Any, name: str, changed: Any) -> None:
    out = tmp_path / "o"
    _interrupted(out, target)
    got, model, X = _job(out, target, resume=True)  # the same code resumes
    ref = tribute.explain(model, torch.from_numpy(X), method="exact_shapley", target=2)
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(ref.values), rtol=0, atol=1e-12)
    os.remove(out / "shards" / "shard-000001.npz")
    monkeypatch.setitem(target.__globals__, name, changed)  # would explain output 0 on resume
    with pytest.raises(InputError, match=r"settings\.explain\.target"):
        _job(out, target, resume=True)


_USER_MODULE = """
COLS = [2]
SCALE = {"a": 1.0}
"""

_TARGET_FILE = """
import cfgmod43

def target(y):
    return y[:, cfgmod43.COLS[0]] * [v for v in cfgmod43.SCALE.values()][0]
"""


def test_resume_refuses_a_changed_attribute_of_the_users_module(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    (tmp_path / "cfgmod43.py").write_text(_USER_MODULE, encoding="utf-8")
    (tmp_path / "targetmod43.py").write_text(_TARGET_FILE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    for mod in ("cfgmod43", "targetmod43"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    import targetmod43

    out = tmp_path / "o"
    _interrupted(out, targetmod43.target)
    got, model, X = _job(out, targetmod43.target, resume=True)
    ref = tribute.explain(model, torch.from_numpy(X), method="exact_shapley", target=2)
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(ref.values), rtol=0, atol=1e-12)
    os.remove(out / "shards" / "shard-000001.npz")
    monkeypatch.setattr(sys.modules["cfgmod43"], "COLS", [0])
    with pytest.raises(InputError, match=r"settings\.explain\.target"):
        _job(out, targetmod43.target, resume=True)
    monkeypatch.setattr(sys.modules["cfgmod43"], "COLS", [2])
    monkeypatch.setattr(sys.modules["cfgmod43"], "SCALE", {"a": 2.0})
    with pytest.raises(InputError, match=r"settings\.explain\.target"):
        _job(out, targetmod43.target, resume=True)


_DIGEST_SCRIPT = """
import json, sys
sys.path[:0] = [sys.argv[1]]
import targetmod43b
from tribute.jobs.manifest import canonical
print(json.dumps(canonical(targetmod43b.target), sort_keys=True))
"""

_TARGET_B = """
import numpy as np
import cfgmod43b

NAMES = {"beta": 1, "alpha": 0, "gamma": 2}
KEEP = {"alpha", "gamma", "beta", "delta"}

def helper(y, k):
    return y[:, k] if "gamma" in KEEP else np.argmax(y, 1)

def target(y):
    return helper(y, NAMES["gamma"]) + cfgmod43b.OFFSET[0]
"""


def _digest_in_process(tmp_path: Path, source: str, monkeypatch: pytest.MonkeyPatch) -> str:
    # no .pyc: a rewrite of the same size within a second would import the stale one
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    (tmp_path / "targetmod43b.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    for mod in ("cfgmod43b", "targetmod43b"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    import targetmod43b

    return json.dumps(canonical(targetmod43b.target), sort_keys=True)


def test_a_changed_set_dict_entry_or_helper_changes_the_digest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cfgmod43b.py").write_text("OFFSET = [0.0]\n", encoding="utf-8")
    base = _digest_in_process(tmp_path, _TARGET_B, monkeypatch)
    assert base == _digest_in_process(tmp_path, _TARGET_B, monkeypatch)  # a fresh import: same
    for old, new in [('"gamma" in KEEP', '"omega" in KEEP'), ('"gamma": 2}', '"gamma": 1}'),
                     ("y[:, k] if", "y[:, k] * 2 if")]:
        assert _digest_in_process(tmp_path, _TARGET_B.replace(old, new), monkeypatch) != base, old
    (tmp_path / "cfgmod43b.py").write_text("OFFSET = [1.0]\n", encoding="utf-8")
    assert _digest_in_process(tmp_path, _TARGET_B, monkeypatch) != base


@pytest.mark.slow
def test_the_digest_is_the_same_in_every_process_and_hash_seed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cfgmod43b.py").write_text("OFFSET = [0.0]\n", encoding="utf-8")
    here = _digest_in_process(tmp_path, _TARGET_B, monkeypatch)
    (tmp_path / "digest.py").write_text(_DIGEST_SCRIPT, encoding="utf-8")
    for seed in ("1", "2"):  # two hash seeds (string and set order), besides this process's
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join(sys.path)}
        run = subprocess.run([sys.executable, str(tmp_path / "digest.py"), str(tmp_path)], env=env,
                             capture_output=True, text=True, timeout=300, check=True)
        assert run.stdout.strip().splitlines()[-1] == here


def test_a_function_reading_none_of_it_keeps_its_digest() -> None:
    # jobs started before keep resuming: the record of a plain lambda is unchanged
    import hashlib

    fn = lambda y: y[:, 2]  # noqa: E731
    want = hashlib.sha256()
    c = fn.__code__
    want.update(c.co_code)
    want.update(repr((c.co_names, c.co_varnames, c.co_freevars, c.co_argcount, c.co_kwonlyargcount)).encode())
    for k in c.co_consts:
        want.update(f"{type(k).__name__}:{k!r}|".encode())
    want.update(b"null")
    want.update(b"null")
    assert canonical(fn)["code_sha256"] == want.hexdigest()


# ------------------------------------------------------------------ disk full while merging
def _full_disk_at(name: str, seen: list[int]) -> Any:
    """An ``atomic_write`` that writes half of ``name``'s bytes through the real atomic writer,
    then fails as a full disk does; other files are written normally."""
    from tribute.atomic import atomic_write as real

    def write(path: Path, data: bytes) -> None:
        if Path(path).name != name:
            real(path, data, durable=True)
            return

        def half(fh: Any) -> None:
            seen.append(len(data))
            fh.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        real(path, half, durable=True)

    return write


@pytest.mark.parametrize("name,module", [("result.npz", "tribute.jobs.merge"), ("result.parquet", "tribute.jobs.merge"),
                                         ("summary.json", "tribute.jobs.api")])
def test_a_full_disk_while_writing_the_result_names_the_folder_and_resume_merges(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, module: str) -> None:
    pytest.importorskip("pyarrow")
    out = tmp_path / "o"
    seen: list[int] = []
    monkeypatch.setattr(f"{module}.atomic_write", _full_disk_at(name, seen))
    with pytest.raises(TributeError) as info:
        _job(out, 2)
    msg = str(info.value)
    assert not isinstance(info.value, OSError) and isinstance(info.value.__cause__, OSError)
    assert str(out) in msg and "disk is full" in msg and f"{seen[0]:,} bytes needed" in msg
    assert "resume" in msg and name in msg
    assert not (out / name).exists()  # nothing half-written
    assert not [p.name for p in out.rglob(".*tmp-*")]
    assert len(list((out / "shards").glob("shard-*.npz"))) == 2  # the shards are kept
    monkeypatch.undo()
    got, model, X = _job(out, 2, resume=True)  # merges the kept shards
    ref = tribute.explain(model, torch.from_numpy(X), method="exact_shapley", target=2)
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(ref.values), rtol=0, atol=1e-12)
    assert (out / name).exists()
