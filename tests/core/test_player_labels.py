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


def test_a_list_target_repeating_a_class_is_refused(iris: tuple) -> None:
    """A list names classes explained for EVERY sample: [1, 1] is class 1 twice, i.e. a label
    vector meant one per sample (before: two identical targets per sample, silently)."""
    clf, X = iris
    x = X.iloc[:4]
    for target in ([1, 1], [0, 1, 2, 1]):
        with pytest.raises(InputError, match=r"repeats class 1: a list names several classes, each "
                           r"explained for every sample.*target=np.asarray\(labels\)"):
            tribute.explain(clf, x, method="exact_shapley", baseline=X.mean(), target=target)
    # the array form is one class per sample
    per = tribute.explain(clf, x, method="exact_shapley", baseline=X.mean(), target=np.array([0, 1, 2, 1]))
    assert np.asarray(per.values).shape == (4, X.shape[1])


def test_progress_must_be_a_bool_or_none() -> None:
    with pytest.raises(InputError, match="progress='yes' must be True, False or None"):
        tribute.explain(_sum, np.ones((2, 3)), method="exact_shapley", baseline=0.0, progress="yes")  # type: ignore[arg-type]


def test_a_string_baseline_names_the_api_spelling() -> None:
    with pytest.raises(InputError, match=r"baseline='mean' is a string; .*baseline=X.mean\(0\)"):
        tribute.explain(_sum, np.ones((2, 3)), method="exact_shapley", baseline="mean")


def test_top_counts_a_negative_index_from_the_end() -> None:
    x = np.arange(6.0).reshape(3, 2)
    attr = tribute.explain(_sum, x, method="exact_shapley", baseline=0.0)
    assert attr.top(-1) == attr.top(2)
    with pytest.raises(InputError, match="index=3 is out of range"):
        attr.top(3)


@pytest.mark.parametrize("seed", [-1, 1.5])
def test_jobs_and_certified_refuse_a_bad_seed(seed: object, tmp_path) -> None:
    with pytest.raises(InputError, match="must be a non-negative int"):
        tribute.explain_dataset(_sum, np.ones((3, 2)), tmp_path / "job", "exact_shapley", seed=seed,  # type: ignore[arg-type]
                                baseline=0.0)
    with pytest.raises(InputError, match="must be a non-negative int"):
        tribute.certified_attribution(_sum, np.ones((1, 2)), seed=seed)  # type: ignore[arg-type]
