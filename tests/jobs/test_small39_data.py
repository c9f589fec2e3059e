"""small39: a .csv whose first line cannot be told from a row of data is refused, and a first
column that only numbers the rows is named in a warning -- through ``tribute explain --data``,
``tribute.explain_dataset(path)`` and :func:`tribute.jobs.load_dataset` alike."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import jobs_fixtures
import numpy as np
import pytest

import tribute
from tribute.cli import main
from tribute.errors import InputError
from tribute.jobs import load_dataset

pd = pytest.importorskip("pandas")


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from jobs_fixtures.weighted_factory_module(tmp_path, monkeypatch, "small39_factory")


def test_headerless_csv_with_a_text_first_column_is_refused(tmp_path: Path, factory: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # ``r1,1.5,2`` was read as the header: the row was lost and the columns named '1.5' and '2'
    p = tmp_path / "x.csv"
    p.write_text("r1,1.5,2\nr2,0.5,1\nr3,2.5,3\n", encoding="utf-8")
    words = r"first line .*'r1,1.5,2'.* same kinds of cells as the second \(text, number, number\)"
    with pytest.raises(InputError, match=words):
        load_dataset(p)
    with pytest.raises(InputError, match=words):
        tribute.explain_dataset(factory_model(factory), p, tmp_path / "o1", method="exact_shapley")
    assert main(["explain", "--model", factory, "--data", str(p), "--method", "exact_shapley",
                 "--baseline", "0", "--out", str(tmp_path / "o2"), "--no-progress"]) != 0
    assert re.search(words, capsys.readouterr().err)


def factory_model(factory: str) -> object:
    from tribute.cli import load_factory

    return load_factory(factory)


@pytest.mark.parametrize("text", ["name,a,b\nr1,1.5,2\nr2,0.5,1\n", "a,b\n1.5,2\n0.5,1\n",
                                  "1.5,2\n0.5,1\n"])
def test_csv_that_tells_header_from_data_reads_as_before(tmp_path: Path, text: str) -> None:
    p = tmp_path / "x.csv"
    p.write_text(text, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_dataset(p)
    assert ds.n_rows == 2


@pytest.mark.parametrize("start", [0, 1])
def test_a_named_row_counter_column_is_named_in_a_warning(tmp_path: Path, factory: str, start: int) -> None:
    # ``id,a,b`` with id = 0..n-1 (or 1..n): the row numbers were explained as a feature, silently
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"id": np.arange(start, start + 5), "a": rng.normal(size=5), "b": rng.normal(size=5)})
    p = tmp_path / "x.csv"
    df.to_csv(p, index=False)
    words = rf"column 'id' of .* holds exactly the row numbers {start}..{start + 4}; it is explained as a feature"
    with pytest.warns(UserWarning, match=words):
        ds = load_dataset(p)
    assert ds.columns == ("id", "a", "b")  # still read (it may be a feature), but named
    with pytest.warns(UserWarning, match=words):
        assert main(["explain", "--model", factory, "--data", str(p), "--method", "exact_shapley",
                     "--baseline", "0", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    attr = tribute.Attribution.load(tmp_path / "o" / "result.npz")
    # the numbers are those of the table as read: id is feature 1 (weight 1), a weight 2, b 3
    np.testing.assert_allclose(attr.flat()[:, 0], df.to_numpy() * np.arange(1, 4), rtol=1e-12)


def test_a_column_that_is_not_a_row_counter_is_not_named(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    pd.DataFrame({"id": [0, 1, 3, 4], "a": [1.0, 2.0, 3.0, 4.0]}).to_csv(p, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_dataset(p).n_rows == 4
