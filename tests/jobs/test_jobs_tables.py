"""Dataset jobs on tables with text/categorical columns (a scikit-learn pipeline encodes them),
and the refusal of texts: one job equals one ``tribute.explain`` call on the whole table."""

from __future__ import annotations

import json
import warnings

import jobs_fixtures
import numpy as np
import pytest

import tribute
from tribute.cli import main
from tribute.errors import InputError

pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")


@pytest.fixture
def pipe():
    return jobs_fixtures.make_city_pipeline()


@pytest.fixture
def table():
    return jobs_fixtures.city_table(30)


def _single(pipe, table, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(tribute.explain(pipe, table, method="exact_shapley", **kw).values)


def _job(pipe, data, out, **kw):
    kw.setdefault("shard_size", 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tribute.explain_dataset(pipe, data, out=out, method="exact_shapley", progress=False, **kw)


@pytest.mark.parametrize("kind", ["frame", "csv", "parquet"])
def test_a_table_with_a_text_column_is_explained_like_one_call(pipe, table, tmp_path, kind):
    pytest.importorskip("pyarrow")
    bg = tribute.Background(table.iloc[:6])
    data = table
    if kind == "csv":
        data = tmp_path / "t.csv"
        table.to_csv(data, index=False)
    elif kind == "parquet":
        data = tmp_path / "t.parquet"
        table.astype({"city": "category"}).to_parquet(data)
    attr = _job(pipe, data, tmp_path / "o", baseline=bg)
    np.testing.assert_array_equal(attr.values, _single(pipe, table, baseline=bg))
    assert attr.player_names == ["a", "b", "c", "d", "city"]
    frame = pd.read_parquet(tmp_path / "o" / "result.parquet")
    assert list(frame.columns) == ["row", "target", "a", "b", "c", "d", "city"]
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["data"]["categories"]["city"]["values"] == list(pd.unique(table["city"]))
    assert len(manifest["model"]["probe"]["values"]) == 8  # the pipeline's outputs on 4 rows


@pytest.mark.parametrize("baseline", [None, 0.0, 2.0])
def test_a_number_baseline_on_a_text_table_is_refused_as_one_call_does(pipe, table, tmp_path, baseline):
    # a number names no category: a single call read it as the category coded round(b) in
    # order of first appearance, so credits depended on the rows' order (a shard's first
    # rows differ too); both refuse it, the job before anything is written
    kw = {} if baseline is None else {"baseline": baseline}
    with pytest.raises(InputError, match=r"cannot stand for a category of column\(s\) \['city'\]"):
        _single(pipe, table, **kw)
    with pytest.raises(InputError, match=r"cannot stand for a category of column\(s\) \['city'\]"):
        _job(pipe, table, tmp_path / "o", **kw)
    assert not (tmp_path / "o").exists()


def test_a_number_baseline_on_a_text_table_made_credits_depend_on_row_order(pipe, table) -> None:
    # the same row, explained among the others in two orders, got two credits before
    bg = tribute.Background(table.iloc[:6])
    one = _single(pipe, table.iloc[:8], baseline=bg)
    other = _single(pipe, table.iloc[:8].iloc[::-1], baseline=bg)
    np.testing.assert_allclose(one, other[::-1], rtol=0, atol=1e-12)


def test_tree_shap_on_a_text_table_keeps_its_path_dependent_game(table, tmp_path):
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X = jobs_fixtures.city_table(120, seed=1)
    y = (X["a"] + (X["city"] == "rome") > 0).astype(int)
    ct = make_column_transformer((OneHotEncoder(), ["city"]), remainder="passthrough")
    rf = make_pipeline(ct, RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0)).fit(X, y)
    attr = tribute.explain_dataset(rf, table, out=tmp_path / "o", method="tree_shap", shard_size=7,
                                   progress=False)
    ref = tribute.explain(rf, table, method="tree_shap")
    np.testing.assert_array_equal(attr.values, np.asarray(ref.values))


def test_a_resume_whose_text_values_changed_is_refused(pipe, table, tmp_path):
    bg = tribute.Background(table.iloc[:6])
    _job(pipe, table, tmp_path / "o", baseline=bg)
    renamed = table.assign(city=table["city"].replace({"oslo": "bern"}))  # same codes, other values
    with pytest.raises(InputError, match="categories"):
        _job(pipe, renamed, tmp_path / "o", baseline=bg, resume=True)


def test_a_text_table_with_a_missing_value_is_refused_before_anything_is_written(pipe, table, tmp_path):
    table.loc[9, "city"] = None
    with pytest.raises(InputError, match=r"row\(s\) \[9\]"):
        _job(pipe, table, tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("texts", [["a cat", "a dog"], [("a cat", "a dog")], np.array(["a cat", "a dog"])])
def test_texts_are_refused_with_the_fix(mlp, tmp_path, texts):
    with pytest.raises(InputError, match=r"got texts.*input_ids"):
        tribute.explain_dataset(mlp, texts, out=tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_cli_text_table_job_and_mean_baseline(table, tmp_path, capsys):
    pytest.importorskip("pyarrow")
    table.to_csv(tmp_path / "t.csv", index=False)
    table.iloc[:6].to_csv(tmp_path / "bg.csv", index=False)
    argv = ["explain", "--model", "jobs_fixtures:make_city_pipeline", "--data", str(tmp_path / "t.csv"),
            "--method", "exact_shapley", "--shard-size", "7", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "o"), "--baseline", f"background:{tmp_path / 'bg.csv'}"]) == 0
    got = tribute.Attribution.load(tmp_path / "o" / "result.npz")
    np.testing.assert_array_equal(np.asarray(got.values), _single(
        jobs_fixtures.make_city_pipeline(), table, baseline=tribute.Background(table.iloc[:6])))
    assert main([*argv, "--out", str(tmp_path / "m"), "--baseline", "mean"]) == 2
    assert "text/categorical columns, which have no mean" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "z")]) == 2  # the default 0.0 names no category
    assert "cannot stand for a category" in capsys.readouterr().err and not (tmp_path / "z").exists()


@pytest.mark.slow
def test_a_text_table_job_on_worker_processes_is_byte_identical(table, tmp_path):
    bg = tribute.Background(table.iloc[:6])
    for name, kw in (("local", {}), ("processes", {"backend": "processes", "workers": 2})):
        _job("jobs_fixtures:make_city_pipeline", table, tmp_path / name, baseline=bg, **kw)
    assert (tmp_path / "processes" / "result.npz").read_bytes() == (tmp_path / "local" / "result.npz").read_bytes()


def test_cli_background_rows_without_the_text_column_name_it(table, tmp_path, capsys):
    # a background CSV of numbers only was read as an array: "give the baseline as a DataFrame
    # ... not an array", though a table was given; the refusal now names the missing column
    table.to_csv(tmp_path / "t.csv", index=False)
    table.iloc[:6].drop(columns="city").to_csv(tmp_path / "bg.csv", index=False)
    argv = ["explain", "--model", "jobs_fixtures:make_city_pipeline", "--data", str(tmp_path / "t.csv"),
            "--method", "exact_shapley", "--no-progress", "--out", str(tmp_path / "o"),
            "--baseline", f"background:{tmp_path / 'bg.csv'}"]
    assert main(argv) == 2
    assert "lacks column(s) ['city']" in capsys.readouterr().err
