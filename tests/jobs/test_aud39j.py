"""Audit aud39j: dataset jobs on today's data formats (csv with header or pandas index,
parquet), with per-row targets, baselines and background sets given as tables."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from jobs_fixtures import WEIGHTED_FACTORY

import tribute
from tribute.errors import InputError

pd = pytest.importorskip("pandas")

_MODULE = "aud39j_factory"


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``f(x) = sum_j (j + 1) x_j`` as a factory spec (its Shapley values against a background
    set B are ``(j + 1) (x_j - mean(B)_j)``)."""
    (tmp_path / f"{_MODULE}.py").write_text(WEIGHTED_FACTORY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield f"{tmp_path / f'{_MODULE}.py'}:make"
    sys.modules.pop(_MODULE, None)


def _tables(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(39)
    x = rng.normal(size=(5, 4))
    bg = rng.normal(size=(3, 4)) + np.array([3.0, -5.0, 7.0, 11.0])  # column means far apart
    pd.DataFrame(x, columns=list("abcd")).to_csv(tmp_path / "x.csv", index=False)
    pd.DataFrame(bg, columns=list("abcd")).to_csv(tmp_path / "bg.csv", index=False)
    pd.DataFrame(bg[:, ::-1], columns=list("dcba")).to_csv(tmp_path / "bg_reordered.csv", index=False)
    pd.DataFrame(bg, columns=["w", "x", "y", "z"]).to_csv(tmp_path / "bg_renamed.csv", index=False)
    return x, bg


@pytest.mark.parametrize("name", ["bg_reordered.csv", "bg_renamed.csv"])
def test_cli_background_table_with_other_columns_is_refused(
        tmp_path: Path, factory: str, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``--baseline background:ROWS.csv`` whose columns are the data's in another order (or
    other columns): its rows were read by position, so column 'a' was removed to column 'd''s
    values (credit of 'a' on row 0: -106.7 for -0.32 in the audit); a single call on the
    DataFrame refuses such a background. Now the job refuses it too, naming both column lists,
    before anything is written."""
    from tribute.cli import main

    _tables(tmp_path)
    out = tmp_path / "out"
    code = main(["explain", "--model", factory, "--data", str(tmp_path / "x.csv"), "--method",
                 "exact_shapley", "--baseline", f"background:{tmp_path / name}", "--out", str(out),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0
    assert "baseline has columns" in err and "['a', 'b', 'c', 'd']" in err, err
    assert not out.exists() or not any(out.iterdir())


def test_cli_background_table_with_the_same_columns_gives_the_closed_form(
        tmp_path: Path, factory: str, capsys: pytest.CaptureFixture[str]) -> None:
    from tribute.cli import main

    x, bg = _tables(tmp_path)
    out = tmp_path / "out"
    code = main(["explain", "--model", factory, "--data", str(tmp_path / "x.csv"), "--method",
                 "exact_shapley", "--baseline", f"background:{tmp_path / 'bg.csv'}", "--out", str(out),
                 "--shard-size", "2", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    values = np.load(out / "result.npz")["values"].reshape(5, -1)
    np.testing.assert_allclose(values, (x - bg.mean(0)) * np.arange(1, 5), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("how", ["background", "row", "series"])
def test_api_table_baseline_with_other_columns_is_refused(tmp_path: Path, factory: str, how: str) -> None:
    """explain_dataset on a numeric csv with a DataFrame/Series baseline whose columns are in
    another order: read by position (silently wrong credits); refused now, as a single call on
    the DataFrame refuses it."""
    _, bg = _tables(tmp_path)
    frame = pd.DataFrame(bg[:, ::-1], columns=list("dcba"))
    baseline = {"background": tribute.Background(frame), "row": frame.iloc[:1],
                "series": frame.iloc[0]}[how]
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"baseline has columns \['d', 'c', 'b', 'a'\] but .*\['a', 'b', 'c', 'd'\]"):
        tribute.explain_dataset(factory, str(tmp_path / "x.csv"), out=str(out), method="exact_shapley",
                                baseline=baseline, progress=False)
    assert not out.exists() or not any(out.iterdir())
    # the same columns in the same order: the closed form
    same = tribute.Background(pd.DataFrame(bg, columns=list("abcd")))
    job = tribute.explain_dataset(factory, str(tmp_path / "x.csv"), out=str(tmp_path / "ok"),
                                  method="exact_shapley", baseline=same, shard_size=2, progress=False)
    x = pd.read_csv(tmp_path / "x.csv").to_numpy()
    np.testing.assert_allclose(job.flat()[:, 0], (x - bg.mean(0)) * np.arange(1, 5), rtol=1e-12, atol=1e-12)
