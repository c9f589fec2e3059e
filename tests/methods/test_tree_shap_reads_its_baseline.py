"""tree_shap's interventional game reads the baseline: without one it is not handed the unread
0.0 of methods that read none (on a table with text columns that 0.0 was read as the category met
first, so the same row got other credits in another row order); its path-dependent game reads
none, so re-explaining metrics re-run it without a baseline instead of refusing it."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import tribute
from tribute.errors import InputError

pytest.importorskip("sklearn")
pytest.importorskip("pandas")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "jobs"))
import jobs_fixtures


@pytest.fixture
def forest():
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X = jobs_fixtures.city_table(120, seed=1)
    y = (X["a"] + (X["city"] == "rome") > 0).astype(int)
    ct = make_column_transformer((OneHotEncoder(), ["city"]), remainder="passthrough")
    return make_pipeline(ct, RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0)).fit(X, y), X


def test_interventional_without_a_baseline_on_a_text_table_is_refused(forest, tmp_path):
    rf, X = forest
    # before: the same row got 0.5644 / -0.0547 / 0.0253 / 0 / 0 in one order and
    # 0.4706 / -0.0547 / 0.0722 / -0.0625 / -0.1406 in the other (city removed to 'paris' or 'rome')
    with pytest.raises(InputError, match=r"cannot stand for a category of column\(s\) \['city'\]"):
        tribute.explain(rf, X.iloc[:8], method="tree_shap", feature_perturbation="interventional")
    with pytest.raises(InputError, match=r"cannot stand for a category"):
        tribute.explain_dataset(rf, X.iloc[:8], out=tmp_path / "o", method="tree_shap", progress=False,
                                feature_perturbation="interventional")
    assert not (tmp_path / "o").exists()
    bg = tribute.Background(X.iloc[40:46])  # a background set: the same credits in any order
    one = np.asarray(tribute.explain(rf, X.iloc[:8], method="tree_shap", baseline=bg,
                                     feature_perturbation="interventional").values)
    other = np.asarray(tribute.explain(rf, X.iloc[:8].iloc[::-1], method="tree_shap", baseline=bg,
                                       feature_perturbation="interventional").values)
    np.testing.assert_allclose(one, other[::-1], rtol=0, atol=1e-12)


def test_interventional_without_a_baseline_warns_as_other_removal_methods():
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    rf = RandomForestRegressor(n_estimators=3, max_depth=3, random_state=0).fit(X, X[:, 0])
    with pytest.warns(UserWarning, match="baseline was not given"):
        tribute.explain(rf, X[:4], method="tree_shap", feature_perturbation="interventional")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the path-dependent game reads no baseline: no warning
        attr = tribute.explain(rf, X[:4], method="tree_shap")
    assert attr.params["feature_perturbation"] == "tree_path_dependent"


@pytest.mark.parametrize("metric", ["stability", "random_logit"])
def test_re_explaining_metrics_re_run_the_path_dependent_game(forest, metric):
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    rf = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, y)
    attr = tribute.explain(rf, X[:4], method="tree_shap")
    # before: refused ("computed with another one"): 0.0 made the re-run interventional
    res = tribute.evaluate(rf, X[:4], attr, metric=metric)
    assert np.isfinite(res.mean)
    if metric == "stability":  # deterministic: the re-run equals the credits
        assert res.mean == pytest.approx(1.0)
    table_rf, T = forest  # a table with a text column: no number is handed to the re-run
    tattr = tribute.explain(table_rf, T.iloc[:6], method="tree_shap")
    assert np.isfinite(tribute.evaluate(table_rf, T.iloc[:6], tattr, metric=metric).mean)
