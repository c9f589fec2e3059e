"""small40: a dataset job carries the data's index (a DataFrame's, a .csv's index column, a
.parquet's pandas index) into ``result.parquet`` (a column named after it) and the result's
``Attribution.index``, so results join back to the data; identical for local, worker and
resumed runs; ``summary.json`` and the credits are unchanged.

Truth: the index is the one pandas reads from the data itself (``df.index``,
``pd.read_csv(path, index_col=0).index``, ``pd.read_parquet(path).index``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jobs_fixtures
import numpy as np
import pytest

import tribute

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

SPEC = "jobs_fixtures:make_mlp"


def _frame() -> Any:
    X = jobs_fixtures.data(20)
    return pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])],
                        index=pd.Index([f"c{100 + 7 * i}" for i in range(20)], name="customer"))


def _run(data: Any, out: Path, **kw: Any) -> tribute.Attribution:
    kw.setdefault("weights", None)
    return tribute.explain_dataset(SPEC, data, out, method="exact_shapley", shard_size=6,
                                   target=1, baseline=0.0, progress=False, **kw)


def _summary(out: Path) -> dict[str, object]:
    s = json.loads((out / "summary.json").read_text())
    return {k: v for k, v in s.items() if not k.startswith(("seconds", "rows_per", "workers", "backend"))}


def test_dataframe_index_is_a_parquet_column_local_workers_and_resume(tmp_path: Path) -> None:
    # before: result.parquet held row, target and the players: df.index ("c100", ...) was lost,
    # the results could not be joined back to the data but by position
    df = _frame()
    plain = _run(df.reset_index(drop=True), tmp_path / "plain")
    res = _run(df, tmp_path / "local")
    table = pd.read_parquet(tmp_path / "local" / "result.parquet")
    assert list(table.columns[:3]) == ["row", "customer", "target"]
    assert table["customer"].tolist() == df.index.tolist()
    assert res.index == df.index.tolist() and res.to_pandas().index.tolist() == df.index.tolist()
    np.testing.assert_array_equal(res.values, plain.values)
    assert _summary(tmp_path / "local") == _summary(tmp_path / "plain")  # summary.json unchanged
    before = pd.read_parquet(tmp_path / "plain" / "result.parquet")
    assert table.drop(columns="customer").equals(before)
    joined = df.join(table.set_index("customer")[["f0"]].rename(columns={"f0": "credit"}))
    np.testing.assert_array_equal(joined["credit"].to_numpy(), res.values[:, 0])

    jobs_fixtures.assert_same_on_workers_and_resume(df, tmp_path, _run)


def test_csv_index_column_and_parquet_pandas_index(tmp_path: Path) -> None:
    df = _frame()
    df.rename_axis(None).to_csv(tmp_path / "x.csv")  # ",f0,...": an index column, no name
    _run(tmp_path / "x.csv", tmp_path / "csv")
    table = pd.read_parquet(tmp_path / "csv" / "result.parquet")
    assert table["index"].tolist() == pd.read_csv(tmp_path / "x.csv", index_col=0).index.tolist()
    df.to_parquet(tmp_path / "x.parquet")
    _run(tmp_path / "x.parquet", tmp_path / "pq")
    table = pd.read_parquet(tmp_path / "pq" / "result.parquet")
    assert table["customer"].tolist() == pd.read_parquet(tmp_path / "x.parquet").index.tolist()


def test_default_index_adds_no_column_and_a_clashing_name_is_prefixed(tmp_path: Path) -> None:
    df = _frame()
    df.reset_index(drop=True).to_parquet(tmp_path / "x.parquet")  # RangeIndex 0..n-1: the row
    _run(tmp_path / "x.parquet", tmp_path / "pq")
    table = pd.read_parquet(tmp_path / "pq" / "result.parquet")
    assert list(table.columns[:2]) == ["row", "target"]
    clash = df.rename_axis("f0")  # an index named as a player column
    _run(clash, tmp_path / "clash")
    table = pd.read_parquet(tmp_path / "clash" / "result.parquet")
    assert table["index:f0"].tolist() == df.index.tolist() and "f0" in table.columns
    multi = df.set_index(pd.MultiIndex.from_arrays([df.index, np.arange(20) % 3], names=["customer", None]))
    _run(multi, tmp_path / "multi")
    table = pd.read_parquet(tmp_path / "multi" / "result.parquet")
    assert table["customer"].tolist() == df.index.tolist()
    assert table["level_1"].tolist() == (np.arange(20) % 3).tolist()
