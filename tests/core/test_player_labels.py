"""Player and target labels: repeated names refused, multi-target frames labelled by class."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import tribute
from tribute.errors import InputError


def _sum(a: np.ndarray) -> np.ndarray:
    return a.sum(1)


def test_repeated_feature_names_are_refused() -> None:
    with pytest.raises(InputError, match=r"feature_names repeats name\(s\) 'x' \(2x\)"):
        tribute.explain(_sum, np.ones((2, 3)), method="exact_shapley", baseline=0.0,
                        feature_names=["x", "y", "x"])


@pytest.mark.parametrize("kw", [{}, {"feature_names": ["p", "q", "r"]}, {"groups": [[0, 2], [1]]}])
def test_a_frame_with_repeated_columns_is_refused(kw: dict) -> None:
    X = pd.DataFrame(np.ones((2, 3)), columns=["a", "b", "a"])
    with pytest.raises(InputError, match="columns repeats name"):
        tribute.explain(_sum, X, method="exact_shapley", baseline=0.0, **kw)


@pytest.fixture(scope="module")
def iris() -> tuple[LogisticRegression, pd.DataFrame]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return LogisticRegression(max_iter=500).fit(X, y), X


def test_multi_target_frame_is_labelled_by_class(iris: tuple) -> None:
    clf, X = iris
    x = X.iloc[:3]
    multi = tribute.explain(clf, x, method="exact_shapley", baseline=X.mean(), target=[2, 0])
    df = multi.to_pandas()
    assert df.index.get_level_values("target").tolist() == [2, 0] * 3
    for c in (2, 0):
        one = tribute.explain(clf, x, method="exact_shapley", baseline=X.mean(), target=c)
        np.testing.assert_allclose(df.xs(c, level="target").to_numpy(), one.values)
    assert list(df.xs(2, level="target").index) == list(x.index)


def test_multi_target_frame_falls_back_to_positions(iris: tuple) -> None:
    clf, X = iris
    x = X.iloc[:2]
    same = tribute.explain(clf, x, method="exact_shapley", baseline=X.mean(), target=[1, 1])
    assert same.to_pandas().index.get_level_values("target").tolist() == [0, 1, 0, 1]
