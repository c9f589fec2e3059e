"""Audit aud42j: dataset jobs, their manifest and resume.

Truths: :func:`tribute.explain` on the whole data (a job's merged rows must equal it); a target
function ``y -> y[:, k]`` explains output column ``k``, as ``target=k`` does."""

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

_COLUMN = 2


def _model_and_data(n: int = 8) -> tuple[torch.nn.Module, np.ndarray]:
    return jobs_fixtures.make_mlp().double(), jobs_fixtures.data(n).astype(np.float64)


def _job(model: Any, X: np.ndarray, out: Path, target: Any, **kw: Any) -> Any:
    return tribute.explain_dataset(model, X, out=out, method="exact_shapley", shard_size=4,
                                   progress=False, target=target, **kw)


def _pick(k: int) -> Any:
    return lambda y: y[:, k]


def _global_column(y: Any) -> Any:
    return y[:, _COLUMN]


@pytest.mark.parametrize(("first", "second"), [
    (lambda y: y[:, 2], lambda y: y[:, 0]),  # both '<lambda>' of this module
    (_pick(2), _pick(0)),  # one function, another value in its closure
])
def test_resume_refuses_a_target_function_that_explains_another_output(
        tmp_path: Path, first: Any, second: Any) -> None:
    # before: the manifest recorded a callable by its name only, so the resume was accepted and
    # result.npz held rows 0..3 explaining output 2 and rows 4..7 output 0, silently
    model, X = _model_and_data()
    out = tmp_path / "o"
    _job(model, X, out, first)
    os.remove(out / "shards" / "shard-000001.npz")
    with pytest.raises(InputError, match=r"different settings.*settings\.explain\.target"):
        _job(model, X, out, second, resume=True)


def test_resume_refuses_a_target_function_whose_global_constant_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, X = _model_and_data()
    out = tmp_path / "o"
    _job(model, X, out, _global_column)
    os.remove(out / "shards" / "shard-000001.npz")
    monkeypatch.setitem(_global_column.__globals__, "_COLUMN", 0)  # now explains output 0
    with pytest.raises(InputError, match=r"settings\.explain\.target"):
        _job(model, X, out, _global_column, resume=True)


def test_the_same_target_function_written_again_resumes_to_the_single_call(tmp_path: Path) -> None:
    # no false refusal: a function with the same code (defined again, on another line, as a
    # rerun of a script defines it) resumes, and the merged rows equal one call on all the data
    model, X = _model_and_data()
    out = tmp_path / "o"
    _job(model, X, out, lambda y: y[:, 1])
    os.remove(out / "shards" / "shard-000001.npz")
    got = _job(model, X, out,
               lambda y: y[:, 1], resume=True)
    ref = tribute.explain(model, torch.from_numpy(X), method="exact_shapley", target=1)
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(ref.values), rtol=0, atol=1e-12)


@pytest.mark.parametrize("index", [
    None,  # df[mask]: an unnamed index [0, 5, 8, ...], the common case
    "multi",  # an unnamed two-level index
])
def test_parquet_with_an_unnamed_index_pandas_restores(tmp_path: Path, index: Any) -> None:
    # before: any df.to_parquet() of a frame whose unnamed index is not 0..n-1 (saved as
    # '__index_level_0__' WITH pandas' metadata) failed with a bare "IndexError: single
    # positional indexer is out-of-bounds" before any work
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    model, X = _model_and_data(12)
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    df = df[df.f0 > 0]
    if index == "multi":
        df.index = pd.MultiIndex.from_arrays([df.index % 3, df.index])
    path = tmp_path / "x.parquet"
    df.to_parquet(path)
    truth = pd.read_parquet(path).index  # pandas' own reading of the file
    assert not truth.equals(pd.RangeIndex(len(df)))
    got = tribute.explain_dataset(model, path, out=tmp_path / "o", method="exact_shapley",
                                  shard_size=4, progress=False, target=1)
    ref = tribute.explain(model, torch.from_numpy(df.to_numpy(copy=True)), method="exact_shapley", target=1)
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(ref.values), rtol=0, atol=1e-12)
    assert [tuple(v) if isinstance(v, (tuple, list)) else v for v in got.index] == list(truth)
    table = pd.read_parquet(tmp_path / "o" / "result.parquet")
    for level in range(truth.nlevels):
        col = "index" if truth.nlevels == 1 else f"level_{level}"
        assert table[col].tolist() == truth.get_level_values(level).tolist()


@pytest.mark.parametrize(("suffix", "limit"), [(".csv", None), (".parquet", None), (".csv", 5), (".parquet", 5),
                                               ("filtered.parquet", 3)])
def test_tribute_explain_on_a_table_keeps_the_data_index(tmp_path: Path, suffix: str, limit: Any,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # before: `tribute explain --data x.csv|x.parquet --out` wrote result.parquet with 'row' only
    # (the command hands explain_dataset the loaded rows, whose labels were dropped), although
    # explain_dataset(path) and the README give the data's index column
    from tribute.cli import main

    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    X = jobs_fixtures.data(9)
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])],
                      index=pd.Index([f"c{100 + 7 * i}" for i in range(9)], name="customer"))
    path = tmp_path / f"x{suffix}"
    if suffix == "filtered.parquet":  # an unnamed index other than 0..n-1 (df[mask])
        df = df.reset_index(drop=True).iloc[[1, 4, 5, 8]]
    if suffix == ".csv":
        df.rename_axis(None).to_csv(path)  # the index column under an empty header cell
        truth = pd.read_csv(path, index_col=0).index
    else:
        df.to_parquet(path)
        truth = pd.read_parquet(path).index
    argv = ["explain", "--model", "jobs_fixtures:make_mlp", "--data", str(path), "--out",
            str(tmp_path / "o"), "--method", "exact_shapley", "--target", "1", "--no-progress"]
    assert main(argv + (["--limit", str(limit)] if limit else [])) == 0
    capsys.readouterr()
    table = pd.read_parquet(tmp_path / "o" / "result.parquet")
    name = "index" if truth.name is None else truth.name
    assert table[name].tolist() == truth[:limit].tolist()
    assert list(tribute.Attribution.load(tmp_path / "o" / "result.npz").index) == truth[:limit].tolist()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_target_series_in_another_row_order_than_a_table_file_is_refused(tmp_path: Path, suffix: str) -> None:
    # before: explain_dataset(path, target=y) read a Series by position, so with y in another row
    # order than the file each row was explained for another row's label (max credit error 2.90
    # against the labels pandas aligns by index), while the same rows as a DataFrame were refused
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    model, X = _model_and_data(9)
    labels = np.array([0, 1, 2, 0, 1, 2, 2, 1, 0])
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    path = tmp_path / f"x{suffix}"
    if suffix == ".parquet":
        df.index = pd.RangeIndex(100, 109)
        df.to_parquet(path)
        rows = pd.read_parquet(path).index
    else:
        df.to_csv(path, index=False)  # no index column: pandas reads rows 0..8
        rows = pd.read_csv(path).index
    y = pd.Series(labels, index=rows)
    shuffled = y.sample(frac=1, random_state=0)
    assert not shuffled.index.equals(rows)
    kw: dict[str, Any] = dict(method="exact_shapley", shard_size=4, progress=False)
    with pytest.raises(InputError, match=r"target is a pandas Series whose index .*\.reindex"):
        tribute.explain_dataset(model, path, out=tmp_path / "bad", target=shuffled, **kw)
    assert not (tmp_path / "bad").exists()
    # aligned by pandas as the user meant it: the labels of each row, as one call explains them
    got = tribute.explain_dataset(model, path, out=tmp_path / "ok", target=shuffled.reindex(rows), **kw)
    ref = tribute.explain(model, torch.from_numpy(X), method="exact_shapley", target=labels)
    np.testing.assert_allclose(np.asarray(got.values), np.asarray(ref.values), rtol=0, atol=1e-12)


def test_a_lambda_target_for_worker_processes_is_refused_naming_it(tmp_path: Path) -> None:
    # before: a bare PicklingError from the process pool, after the workers were spawned
    X = jobs_fixtures.data(6)
    with pytest.raises(InputError, match=r"^target: .* backend='processes' workers .*module level"):
        tribute.explain_dataset("jobs_fixtures:make_mlp", X, out=tmp_path / "o", method="exact_shapley",
                                shard_size=3, progress=False, target=lambda y: y[:, 1],
                                backend="processes", workers=2)
    assert not (tmp_path / "o").exists()
