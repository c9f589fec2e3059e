"""aud52j: dataset jobs resumed by other tribute code.

A job started by one tribute checkout and resumed by another of the same version (a development
checkout whose source changed) only warned, computed every remaining shard, and then the merge
refused shards whose credits' dtype differed (stop 51: "refused only at merge, after the
remaining shards are recomputed"); shards whose values alone differed were merged silently
behind the warning. Now one finished shard is computed again before any pending one, and a
difference refuses the resume up front, naming it.

Truth: the shard files of the job's own uninterrupted run; an "old code" shard is written by
re-saving a finished shard with float32 credits (the dtype aud49j's fix changed) or with one
credit moved by 1e-3, and the manifest's source digest set to another one.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import jobs_fixtures
import numpy as np
import pytest
import torch

import tribute
from tribute.jobs.shards import attribution_bytes


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()


X = np.random.default_rng(0).normal(size=(7, 4))
KW: dict[str, Any] = {"method": "exact_shapley", "baseline": 0.0, "shard_size": 2, "progress": False}


def _started(out: Path) -> Any:
    """A finished job whose last two shards are removed (a killed job), started by 'other code'."""
    first = tribute.explain_dataset(_model(), X, out=out, **KW)
    jobs_fixtures.kill_as_other_code(out)
    return first


def _rewrite_shard(out: Path, k: int, how: str) -> None:
    path = out / "shards" / f"shard-{k:06d}.npz"
    a = tribute.Attribution.load(path)
    values = np.asarray(a.values)
    if how == "float32":
        a = replace(a, values=values.astype(np.float32), layout=replace(a.layout, dtype="float32"))
    else:
        values = values.copy()
        values[0, 1] += 1e-3
        a = replace(a, values=values)
    path.write_bytes(attribution_bytes(a))


def _count_shards(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    return jobs_fixtures.count_shards(monkeypatch)


@pytest.mark.parametrize("how, said", [("float32", r"credits dtype float32 -> float64"),
                                       ("values", r"values up to 0\.001 apart")])
def test_a_resume_by_code_that_computes_otherwise_is_refused_before_any_pending_shard(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, said: str) -> None:
    out = tmp_path / "o"
    _started(out)
    _rewrite_shard(out, 0, how)
    _rewrite_shard(out, 1, how)
    ran = _count_shards(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the code-digest warning of _check_out
        with pytest.raises(tribute.InputError, match=r"started by other tribute code, which computed "
                                                     r"otherwise: shard 0 \(rows 0\.\.1\) computed again "
                                                     rf"by this code differs from its file: {said}.*"
                                                     r"no pending shard was computed"):
            tribute.explain_dataset(_model(), X, out=out, resume=True, **KW)
    assert ran == [0, 0]  # the check only (twice: is the difference reproducible?); 2 and 3 never ran
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["shard-000000.npz", "shard-000001.npz"]
    assert not (out / "result.npz").exists()


def test_a_resume_by_code_that_computes_alike_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "o"
    first = _started(out)
    ran = _count_shards(monkeypatch)
    with pytest.warns(UserWarning, match="other tribute code"):
        again = tribute.explain_dataset(_model(), X, out=out, resume=True, **KW)
    assert ran == [0, 2, 3]  # shard 0 checked, then the pending ones
    np.testing.assert_array_equal(np.asarray(again.values), np.asarray(first.values))


def test_a_resume_by_the_same_code_computes_no_shard_twice(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "o"
    first = tribute.explain_dataset(_model(), X, out=out, **KW)
    (out / "shards" / "shard-000003.npz").unlink()
    (out / "result.npz").unlink()
    ran = _count_shards(monkeypatch)
    again = tribute.explain_dataset(_model(), X, out=out, resume=True, **KW)
    assert ran == [3]
    np.testing.assert_array_equal(np.asarray(again.values), np.asarray(first.values))


# -- n_evals of a merged job whose shards spent different numbers ---------------------------
class _CountingModel:
    """``tanh(x @ W)`` that counts the rows it is called on."""

    def __init__(self) -> None:
        self.rows = 0
        self.w = np.random.default_rng(1).normal(size=(6, 3))

    def __call__(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        self.rows += x.shape[0]
        return np.asarray(np.tanh(x @ self.w))


@pytest.mark.parametrize("method", ["banzhaf", "lime"])
def test_a_job_whose_shards_spent_different_counts_gives_each_rows_count(tmp_path: Path, method: str) -> None:
    # banzhaf with budget 40 over shards of 3 rows spent 28, 29, 34, 33 evaluations per input;
    # the merged n_evals said 34 for every row (306 model rows spent on 10 rows, 340 claimed)
    X6 = np.random.default_rng(0).normal(size=(10, 6))
    model = _CountingModel()
    attr = tribute.explain_dataset(model, X6, out=tmp_path / "o", method=method, budget=40, target=1, baseline=0.0,
                                   shard_size=3, progress=False)
    by_row = np.asarray(attr.extra["n_evals_by_row"])
    shard_counts = [tribute.Attribution.load(p).n_evals
                    for p in sorted((tmp_path / "o" / "shards").glob("shard-*.npz"))]
    assert len(set(shard_counts)) > 1
    np.testing.assert_array_equal(by_row, np.repeat(shard_counts, [3, 3, 3, 1]))
    assert attr.n_evals == by_row.max()
    probe_rows = 2 * min(4, 10)  # the manifest's model probe, asked twice
    assert int(by_row.sum()) == model.rows - probe_rows


def test_a_job_whose_shards_spent_one_count_records_no_row_counts(tmp_path: Path) -> None:
    attr = tribute.explain_dataset(_model(), X, out=tmp_path / "o", **KW)
    assert "n_evals_by_row" not in attr.extra
    assert attr.n_evals == 16


# -- finished shard files that are not the shard their name says ----------------------------
@pytest.mark.parametrize("source, said", [(3, r"shard-000001\.npz \(holds 1 row\(s\), shard 1 has 2\)"),
                                          (2, r"shard-000001\.npz \(was computed with seed \d+, not shard 1's")])
@pytest.mark.parametrize("frame", [False, True])
def test_a_shard_file_of_another_shard_is_computed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        source: int, said: str, frame: bool) -> None:
    # shard 3's one-row file under shard 1's name was merged: 6 rows of credits for 7 data rows
    # (with a DataFrame: pandas' bare "Length of values (7) does not match length of index (6)");
    # shard 2's file (as many rows) gave rows 2-3 the credits of rows 4-5
    import shutil

    pd = pytest.importorskip("pandas")
    data: Any = pd.DataFrame(X, columns=list("abcd"), index=[f"r{i}" for i in range(7)]) if frame else X
    out = tmp_path / "o"
    first = tribute.explain_dataset(_model(), data, out=out, **KW)
    shards = out / "shards"
    shutil.copy(shards / f"shard-{source:06d}.npz", shards / "shard-000001.npz")
    (out / "result.npz").unlink()
    ran = _count_shards(monkeypatch)
    with pytest.warns(UserWarning, match=rf"not the shard their name says and are computed again: {said}"):
        again = tribute.explain_dataset(_model(), data, out=out, resume=True, **KW)
    assert ran == [1]
    np.testing.assert_array_equal(np.asarray(again.values), np.asarray(first.values))


def test_the_shard_files_of_an_interrupted_job_are_all_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings as w

    out = tmp_path / "o"
    first = tribute.explain_dataset(_model(), X, out=out, **{**KW, "method": "kernel_shap", "budget": 14})
    for k in (0, 2):
        (out / "shards" / f"shard-{k:06d}.npz").unlink()
    (out / "result.npz").unlink()
    ran = _count_shards(monkeypatch)
    with w.catch_warnings():
        w.simplefilter("error")
        again = tribute.explain_dataset(_model(), X, out=out, resume=True, **{**KW, "method": "kernel_shap", "budget": 14})
    assert ran == [0, 2]
    np.testing.assert_array_equal(np.asarray(again.values), np.asarray(first.values))


def test_a_resume_with_other_weights_names_the_fingerprint_only(tmp_path: Path) -> None:
    # the refusal said "model.sha256: ... -> ...; the model's outputs on the first 4 data rows
    # changed ..., although its fingerprint (class and weights, or pickled object) did not"
    out = tmp_path / "o"
    tribute.explain_dataset(_model(), X, out=out, **KW)
    (out / "shards" / "shard-000003.npz").unlink()
    other = _model()
    with torch.no_grad():
        next(iter(other.parameters())).add_(0.01)
    with pytest.raises(tribute.InputError, match=r"model\.sha256: ") as info:
        tribute.explain_dataset(other, X, out=out, resume=True, **KW)
    assert "did not" not in str(info.value) and "outputs on the first" not in str(info.value)
