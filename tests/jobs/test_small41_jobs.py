"""small41: a dataset job whose data index mixes value types (an object level ``[1, "a", ...]``)
wrote every shard and then failed in pyarrow while writing result.parquet; a MultiIndex keeps
one column per level, identical for local / worker / resumed runs; the missing-value message
of a headerless .csv names the first cell it saw ("nan"), not "an empty first cell".

Truths: the data's own index (``df.index.get_level_values``); the file's first line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jobs_fixtures
import numpy as np
import pytest

import tribute
from tribute.errors import InputError
from tribute.jobs.data import load_dataset

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

SPEC = "jobs_fixtures:make_mlp"


def _frame(index: Any) -> Any:
    X = jobs_fixtures.data(len(index))
    return pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])], index=index)


def _run(data: Any, out: Path, **kw: Any) -> tribute.Attribution:
    kw.setdefault("weights", None)
    return tribute.explain_dataset(SPEC, data, out, method="feature_ablation", shard_size=4,
                                   target=1, baseline=0.0, progress=False, **kw)


def test_index_level_of_mixed_types_is_written_as_text_with_a_warning(tmp_path: Path) -> None:
    mixed = [1, "a", 2, "b", 3, "c", 4, "d", 5, "e"]
    df = _frame(pd.MultiIndex.from_arrays([mixed, np.arange(10) % 3], names=["key", "k"]))
    # before: pyarrow.ArrowInvalid after every shard had run
    with pytest.warns(UserWarning, match=r"index level 'key' mixes value types \['int', 'str'\]"):
        res = _run(df, tmp_path / "mixed")
    table = pd.read_parquet(tmp_path / "mixed" / "result.parquet")
    assert table["key"].tolist() == [str(v) for v in mixed]
    assert table["k"].tolist() == (np.arange(10) % 3).tolist()
    plain = _run(df.reset_index(drop=True), tmp_path / "plain")
    np.testing.assert_array_equal(res.values, plain.values)


def test_multiindex_levels_are_columns_identical_local_workers_and_resume(tmp_path: Path) -> None:
    idx = pd.MultiIndex.from_arrays([[f"g{i % 3}" for i in range(10)], np.arange(10) * 1.5],
                                    names=["group", "t"])
    df = _frame(idx)
    _run(df, tmp_path / "local")
    table = pd.read_parquet(tmp_path / "local" / "result.parquet")
    assert list(table.columns[:4]) == ["row", "group", "t", "target"]
    assert table["group"].tolist() == list(idx.get_level_values(0))
    assert table["t"].tolist() == list(idx.get_level_values(1)) and table["t"].dtype == np.float64
    jobs_fixtures.assert_same_on_workers_and_resume(df, tmp_path, _run)


def test_headerless_csv_first_cell_nan_is_named_as_seen(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("nan,1.5,2\n0.5,1,2\n3,4,5\n")
    # before: "Its first line (an empty first cell, then numbers)" for a cell that reads "nan"
    with pytest.raises(InputError, match=r"first cell 'nan', which reads as a missing value") as info:
        load_dataset(p)
    assert "empty first cell" not in str(info.value)
    q = tmp_path / "y.csv"
    q.write_text(",1.5,2\n0.5,1,2\n3,4,5\n")
    with pytest.raises(InputError, match=r"an empty first cell, then numbers"):
        load_dataset(q)
