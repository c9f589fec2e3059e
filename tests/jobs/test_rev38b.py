"""Review rev38b of aud38x's csv index rule: a header that starts with an empty cell marks the
first column as the index. Files a user may have where that reading loses or hides data."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from jobs_fixtures import WEIGHTED_FACTORY

from tribute.jobs.data import load_dataset

pytest.importorskip("pandas")


def test_unnamed_first_column_that_looks_like_data_is_read_as_index_with_a_warning(tmp_path: Path) -> None:
    """A feature column saved with a blank first header cell (a spreadsheet export): its values
    repeat and are not whole, unlike an index. It is still read as the index (to_csv's round
    trip), but no longer silently: a model of width 3 then failed with a bare shape error."""
    p = tmp_path / "x.csv"
    p.write_text(",a,b\n0.7,1.5,2\n0.1,2.5,3\n0.7,0.5,1\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"first column of .*x\.csv.* read as the row index.*give it a name"):
        ds = load_dataset(p)
    assert ds.columns == ("a", "b")


def test_to_csv_index_reads_without_a_warning(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(np.arange(12.0).reshape(4, 3) + 0.5, columns=["a", "b", "c"])
    df.to_csv(tmp_path / "x.csv")
    df.set_axis(["r1", "r2", "r3", "r4"]).to_csv(tmp_path / "y.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("x.csv", "y.csv"):
            ds = load_dataset(tmp_path / name)
            assert ds.columns == ("a", "b", "c")
            np.testing.assert_array_equal(ds.arrays[0], df.to_numpy())


def test_numeric_column_names_with_a_labelled_index_are_a_header(tmp_path: Path) -> None:
    """``df.to_csv()`` of a frame with a text index and numeric column names (quantiles, years):
    ``,0.1,0.5`` then ``east,1.5,2``. The first line was read as a row of data (its cells are
    numbers, the empty one counted as missing): the column names became a row of data, the
    index a feature."""
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame([[1.5, 2.0], [2.5, 3.0]], columns=[0.1, 0.5], index=["east", "west"])
    df.to_csv(tmp_path / "q.csv")
    assert (tmp_path / "q.csv").read_text().startswith(",0.1,0.5\neast,")
    ds = load_dataset(tmp_path / "q.csv")
    assert ds.columns == ("0.1", "0.5")
    np.testing.assert_array_equal(ds.arrays[0], [[1.5, 2.0], [2.5, 3.0]])


_FACTORY = WEIGHTED_FACTORY


@pytest.mark.parametrize("groups, names", [({"ab": ["a", "b"], "cd": ["c", "d"]}, ["ab", "cd"]),
                                           ([["a", "b"], ["c", "d"]], ["a+b", "c+d"])])
def test_csv_job_with_groups_of_column_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             groups: object, names: list[str]) -> None:
    """Groups given by the csv's column names, as a single call on the DataFrame takes them: the
    job refused them in shard 0 ("inputs have no column names; give column positions"), though
    the file names its columns; by position they were named 'x0+x1'."""
    import sys

    import tribute

    pd = pytest.importorskip("pandas")
    (tmp_path / "rev38b_factory.py").write_text(_FACTORY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        rng = np.random.default_rng(1)
        df = pd.DataFrame(rng.normal(size=(5, 4)), columns=list("abcd"))
        df.to_csv(tmp_path / "x.csv", index=False)
        job = tribute.explain_dataset(f"{tmp_path / 'rev38b_factory.py'}:make", str(tmp_path / "x.csv"),
                                      method="exact_shapley", baseline=0, groups=groups,
                                      shard_size=2, out=str(tmp_path / "out"))
    finally:
        sys.modules.pop("rev38b_factory", None)
    assert job.player_names == names
    contrib = df.to_numpy() * np.arange(1, 5)  # Shapley values of a linear model, baseline 0
    truth = np.stack([contrib[:, :2].sum(1), contrib[:, 2:].sum(1)], axis=1)
    np.testing.assert_allclose(job.flat()[:, 0], truth, rtol=1e-12, atol=1e-12)


def test_cli_target_list_repeating_a_class_is_refused_with_the_cli_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``--target 0,0`` (a label vector typed on the command line): explain's refusal told the
    CLI user to pass ``target=np.asarray(labels)``; the CLI names its own fix, a .npy file."""
    from tribute.cli import main

    (tmp_path / "rev38b_factory.py").write_text(_FACTORY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "rev38b_factory", raising=False)
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    code = main(["explain", "--model", f"{tmp_path / 'rev38b_factory.py'}:make", "--data", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "out"), "--target", "0,0", "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0 and "--target '0,0' repeats 0" in err and "--target targets.npy" in err
    assert not (tmp_path / "out").exists()


def test_numeric_column_names_after_an_index_column_are_refused_naming_the_header(tmp_path: Path) -> None:
    """``,2019,2020`` then ``0,1.5,2`` (years as column names, an integer index): the file cannot
    tell a header from a first row of data missing its first value, so it is refused; the
    refusal said only "missing values (rows [0]...)", naming no header."""
    from tribute.errors import InputError

    p = tmp_path / "years.csv"
    p.write_text(",2019,2020\n0,1.5,2\n1,2.5,3\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"rows \[0\].*is read as a row of data.*names that are not numbers"):
        load_dataset(p)
