"""Review rev42f of aud42j's target-function fingerprint in the job manifest.

Truths: :func:`tribute.explain` on all rows (a resumed job's merged rows must equal it); a
target reading ``y[:, k]`` explains output ``k``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jobs_fixtures
import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError

_NAMES = np.array(["alpha", "beta", "gamma"], dtype=object)  # e.g. a classifier's string classes_
_COLS = [2]


def _by_name(y: Any) -> Any:
    return y[:, list(_NAMES).index("gamma")]


def _by_list(y: Any) -> Any:
    return y[:, _COLS[0]]


def _job(out: Path, target: Any, **kw: Any) -> Any:
    model = jobs_fixtures.make_mlp().double()
    X = jobs_fixtures.data(8).astype(np.float64)
    return tribute.explain_dataset(model, X, out=out, method="exact_shapley", shard_size=4,
                                   progress=False, target=target, **kw), model, X


def test_a_target_reading_an_object_array_resumes_in_a_new_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # before: the global's bytes were its strings' addresses, so a rerun of the script (new
    # string objects, same values) was refused: settings.explain.target.code_sha256 differed
    out = tmp_path / "o"
    _job(out, _by_name)
    os.remove(out / "shards" / "shard-000001.npz")
    fresh = np.array(["".join(list(s)) for s in ("alpha", "beta", "gamma")], dtype=object)
    monkeypatch.setitem(_by_name.__globals__, "_NAMES", fresh)
    got, model, X = _job(out, _by_name, resume=True)
    ref = tribute.explain(model, torch.from_numpy(X), method="exact_shapley", target=2)
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(ref.values), rtol=0, atol=1e-12)


def test_resume_refuses_a_target_whose_global_list_of_columns_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # before: a list global was not recorded; COLS=[0] resumed and mixed output 2 and output 0
    out = tmp_path / "o"
    _job(out, _by_list)
    os.remove(out / "shards" / "shard-000001.npz")
    monkeypatch.setitem(_by_list.__globals__, "_COLS", [0])
    with pytest.raises(InputError, match=r"settings\.explain\.target"):
        _job(out, _by_list, resume=True)
