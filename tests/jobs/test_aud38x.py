"""Audit aud38x: the numbers ``tribute explain`` (CLI, dataset jobs) gives equal the Python call's.

Truths come from outside tribute: a linear model whose exact Shapley values with baseline 0
are ``w_j * x_j`` (closed form).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jobs_fixtures
import numpy as np
import pytest
from jobs_fixtures import WEIGHTED_FACTORY

import tribute
from tribute.cli import main

pd = pytest.importorskip("pandas")

_FACTORY = WEIGHTED_FACTORY


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from jobs_fixtures.weighted_factory_module(tmp_path, monkeypatch, "aud38x_factory")


def _explain_csv(factory: str, data: Path, out: Path) -> tribute.Attribution:
    """exact_shapley at baseline 0 through the CLI, read back from ``out``."""
    assert main(["explain", "--model", factory, "--data", str(data), "--method", "exact_shapley",
                 "--baseline", "0", "--out", str(out), "--no-progress"]) == 0
    return tribute.Attribution.load(out / "result.npz")


def _table(n: int = 6, seed: int = 3) -> Any:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, 4)), columns=["a", "b", "c", "d"])


def test_csv_with_index_column_reads_the_index_as_such(tmp_path: Path, factory: str) -> None:
    """``df.to_csv(path)`` (pandas' default writes the index as a first, unnamed column): the
    row numbers were explained as a feature 'Unnamed: 0' (credit 1 * row) and every feature's
    credit moved to the next column's weight — silently, for a model of any width."""
    df = _table()
    df.to_csv(tmp_path / "x.csv")  # index=True, the default
    assert (tmp_path / "x.csv").read_text().startswith(",a,b,c,d")
    attr = _explain_csv(factory, tmp_path / "x.csv", tmp_path / "out")
    assert attr.player_names == ["a", "b", "c", "d"]
    truth = df.to_numpy() * np.arange(1, 5)  # Shapley values of a linear model, baseline 0
    np.testing.assert_allclose(attr.flat()[:, 0], truth, rtol=1e-12, atol=1e-12)


def test_csv_without_index_column_unchanged(tmp_path: Path, factory: str) -> None:
    df = _table()
    df.to_csv(tmp_path / "x.csv", index=False)
    attr = _explain_csv(factory, tmp_path / "x.csv", tmp_path / "out")
    assert attr.player_names == ["a", "b", "c", "d"]
    np.testing.assert_allclose(attr.flat()[:, 0], df.to_numpy() * np.arange(1, 5), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("flag", "value"), [("--workers", "0"), ("--threads", "0"),
                                             ("--shard-size", "0"), ("--workers", "x")])
def test_job_counts_below_one_are_refused_naming_the_option(
        tmp_path: Path, factory: str, flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``--workers 0`` and ``--threads 0`` ran with 1 (``args.workers or 1``), silently."""
    np.save(tmp_path / "x.npy", np.ones((3, 4)))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["explain", "--model", factory, "--data", str(tmp_path / "x.npy"), "--method",
              "exact_shapley", "--baseline", "0", "--out", str(out), "--no-progress", flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and (f"{value} must be at least 1" in err or f"{value!r} is not an int" in err)
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize(("flag", "value"), [("--limit", "-2"), ("--limit", "0"),
                                             ("--budget", "-5"), ("--grad-budget", "0")])
def test_evaluate_counts_below_one_are_refused(
        tmp_path: Path, factory: str, flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``tribute evaluate --limit -2`` evaluated every row but the last two and ``--limit 0``
    every row; ``--budget -5`` ran kernel_shap at its minimum budget — all silently (``tribute
    explain`` refuses these)."""
    np.save(tmp_path / "x.npy", np.ones((3, 4)))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--model", factory, "--data", str(tmp_path / "x.npy"), "--out",
              str(out), "--no-progress", flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and f"{value} must be at least 1" in err
    assert not out.exists()


def test_csv_of_unnamed_columns_with_index(tmp_path: Path) -> None:
    """``pd.DataFrame(X).to_csv(path)`` writes ``,0,1,2`` then ``0,x00,x01,x02``: the row
    numbers were a feature 'Unnamed: 0'."""
    from tribute.jobs.data import load_dataset

    X = np.arange(6.0).reshape(2, 3) / 7
    pd.DataFrame(X).to_csv(tmp_path / "x.csv")
    ds = load_dataset(tmp_path / "x.csv")
    np.testing.assert_array_equal(ds.arrays[0], X)
    assert ds.columns == ("0", "1", "2")


def test_headerless_csv_whose_first_row_has_a_missing_cell_is_refused(tmp_path: Path) -> None:
    """``,1.5,2`` (a row of data with its first cell missing) was read as the header: the row
    was dropped and the features named '1.5', '2', silently. It is data, so the missing value is
    refused, naming row 0."""
    from tribute.errors import InputError
    from tribute.jobs.data import load_dataset

    (tmp_path / "x.csv").write_text(",1.5,2\n3,4,5\n6,7,8\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"missing values \(rows \[0\]"):
        load_dataset(tmp_path / "x.csv")


def test_csv_job_with_groups_equals_a_single_call(tmp_path: Path, factory: str) -> None:
    """A table's header became the job's feature_names even with --groups, so every csv/parquet
    job with groups failed in shard 0: "feature_names has 4 names but there are 2 players" (names
    the user never gave). A single call on the DataFrame names the groups 'group 0', ..."""
    df = _table()
    df.to_csv(tmp_path / "x.csv", index=False)
    groups = np.array([0, 1, 1, 0])
    np.save(tmp_path / "g.npy", groups)
    out = tmp_path / "out"
    assert main(["explain", "--model", factory, "--data", str(tmp_path / "x.csv"), "--groups",
                 str(tmp_path / "g.npy"), "--method", "exact_shapley", "--baseline", "0",
                 "--shard-size", "4", "--out", str(out), "--no-progress"]) == 0
    attr = tribute.Attribution.load(out / "result.npz")
    single = tribute.explain(_weighted(), df, method="exact_shapley", baseline=0.0, groups=groups,
                             progress=False)
    assert attr.player_names == single.player_names == ["group 0", "group 1"]
    # closed form: a linear model's group Shapley value is the sum of its members' w_j x_j
    terms = df.to_numpy() * np.arange(1, 5)
    truth = np.stack([terms[:, [0, 3]].sum(1), terms[:, [1, 2]].sum(1)], axis=1)
    np.testing.assert_allclose(attr.flat()[:, 0], truth, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(single.flat()[:, 0], truth, rtol=1e-12, atol=1e-12)


def _weighted() -> Any:
    ns: dict[str, Any] = {}
    exec(_FACTORY, ns)  # the factory's own class, built here
    return ns["make"]()


@pytest.mark.parametrize("text", ["labels.csv", "y.parquet"])
def test_target_file_of_another_type_is_named(tmp_path: Path, factory: str, text: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``--target labels.csv`` was read as a class label: "target='labels.csv' is not
    understood", naming neither the file nor the fix."""
    np.save(tmp_path / "x.npy", np.ones((3, 4)))
    out = tmp_path / "out"
    assert main(["explain", "--model", factory, "--data", str(tmp_path / "x.npy"), "--method",
                 "exact_shapley", "--baseline", "0", "--target", text, "--out", str(out),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"--target {text!r} looks like a file" in err and "numpy.save" in err
    assert not out.exists()
