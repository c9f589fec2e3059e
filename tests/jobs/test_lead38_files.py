"""Data files read wrongly before stop 38's lead fixes: a semicolon- or tab-separated .csv (one
text column, or text columns of decimal-comma numbers, explained as categorical features) and a
parquet file holding a pandas index under pyarrow's name without pandas' metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tribute.errors import InputError
from tribute.jobs.data import load_dataset

pd = pytest.importorskip("pandas")


@pytest.mark.parametrize(("text", "sep"), [
    ("a;b;c\n1.5;2;3\n4;5;6\n", "';'"),  # one text column 'a;b;c' before
    ("a;b;c\n1,5;2,25;3\n4,5;5;6\n", "';'"),  # decimal commas: text columns '5;2' before
    ("1,5;2,25;3\n4,5;5;6\n", "';'"),  # headerless
    ("a\tb\n1.5\t2\n", "tab"),
])
def test_a_csv_separated_by_another_character_is_refused_naming_it(tmp_path: Path, text: str, sep: str) -> None:
    p = tmp_path / "x.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=rf"separates its fields with {sep}, not ','.*sep="):
        load_dataset(p)


def test_comma_csvs_are_read_as_before(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text('a,b,c\n1.5,2,3\n4,5,6\n', encoding="utf-8")
    ds = load_dataset(p)
    assert ds.columns == ("a", "b", "c")
    np.testing.assert_array_equal(ds.arrays[0], [[1.5, 2, 3], [4, 5, 6]])
    q = tmp_path / "q.csv"  # a quoted header cell holding ';' is a name, not a separator
    q.write_text('"a;1",b\n1.5,2\n', encoding="utf-8")
    assert load_dataset(q).columns == ("a;1", "b")


def test_a_parquet_index_saved_without_pandas_metadata_is_not_a_feature(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0]}, index=[10, 11, 12])
    table = pa.Table.from_pandas(df).replace_schema_metadata(None)  # no pandas metadata
    assert "__index_level_0__" in table.column_names
    pq.write_table(table, tmp_path / "x.parquet")
    ds = load_dataset(tmp_path / "x.parquet")
    assert ds.columns == ("a", "b")  # before: ('a', 'b', '__index_level_0__'), explained as a feature
    np.testing.assert_array_equal(ds.arrays[0], df.to_numpy())
