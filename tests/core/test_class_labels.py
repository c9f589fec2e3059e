"""scikit-learn classifiers whose classes are not 0..K-1: integer targets are class labels.

Found by an audit: with ``classes_ = [1, 2, 3]``, ``target=y_true`` was read as column indices
and explained the next class up, silently.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import tribute
from tribute.errors import InputError


@pytest.fixture(scope="module")
def iris():
    x, y = load_iris(return_X_y=True)
    return x, y


def _probs(clf, x, cols):
    return clf.predict_proba(x)[np.arange(len(x)), cols]


def test_integer_targets_are_labels_when_classes_are_not_0_to_k(iris):
    x, y = iris
    clf = LogisticRegression(max_iter=1000).fit(x, y + 1)  # labels 1, 2, 3
    idx = np.array([0, 10, 60, 70, 120])
    xs, labels = x[idx], y[idx] + 1
    kw = {"method": "exact_shapley", "baseline": x.mean(0), "output": "prob"}
    per_row = tribute.explain(clf, xs, target=labels, **kw)
    np.testing.assert_allclose(np.asarray(per_row.full_values), _probs(clf, xs, labels - 1))
    one = tribute.explain(clf, xs, target=3, **kw)
    np.testing.assert_allclose(np.asarray(one.full_values), _probs(clf, xs, [2] * 5))
    several = tribute.explain(clf, xs, target=[3, 1], **kw)
    np.testing.assert_allclose(np.asarray(several.full_values)[:, 0], _probs(clf, xs, [2] * 5))
    np.testing.assert_allclose(np.asarray(several.full_values)[:, 1], _probs(clf, xs, [0] * 5))
    # evaluate() reads the attribution's (column) targets as they are, and maps a user's labels
    a = tribute.evaluate(clf, xs, per_row, metric="deletion", baseline=x.mean(0))
    b = tribute.evaluate(clf, xs, per_row, metric="deletion", target=labels, baseline=x.mean(0))
    np.testing.assert_allclose(np.asarray(a.scores), np.asarray(b.scores))


def test_a_value_that_is_not_a_label_is_refused_with_the_fix(iris):
    x, y = iris
    clf = LogisticRegression(max_iter=1000).fit(x, y + 1)
    with pytest.raises(InputError, match=r"holds 0, which is not one of the classifier's classes_ "
                                         r"\[1, 2, 3\].*lambda p: p\[:, j\]"):
        tribute.explain(clf, x[:2], method="exact_shapley", baseline=x.mean(0), target=0)
    col = tribute.explain(clf, x[:2], method="exact_shapley", baseline=x.mean(0), output="prob",
                          target=lambda p: p[:, 0])  # a column by its index
    np.testing.assert_allclose(np.asarray(col.full_values), clf.predict_proba(x[:2])[:, 0])


def test_zero_based_and_string_classes_keep_indices(iris):
    x, y = iris
    kw = {"method": "exact_shapley", "baseline": x.mean(0), "output": "prob"}
    clf = LogisticRegression(max_iter=1000).fit(x, y)  # 0, 1, 2: labels are columns
    a = tribute.explain(clf, x[:3], target=2, **kw)
    np.testing.assert_allclose(np.asarray(a.full_values), clf.predict_proba(x[:3])[:, 2])
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    s = LogisticRegression(max_iter=1000).fit(x, names)
    by_index = tribute.explain(s, x[:3], target=1, **kw)
    by_label = tribute.explain(s, x[:3], target="versicolor", **kw)
    np.testing.assert_allclose(np.asarray(by_index.full_values), s.predict_proba(x[:3])[:, 1])
    np.testing.assert_allclose(np.asarray(by_label.full_values), np.asarray(by_index.full_values))
    with pytest.raises(InputError, match="not one of the classifier's classes_"):
        tribute.explain(s, x[:3], target="rose", **kw)


def test_public_build_game_reads_labels_as_explain_does() -> None:
    # tribute.build_game(clf, x, target=2) was P(label 3) (column 2) where explain reads label 2
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    X, y = load_wine(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    clf = LogisticRegression(max_iter=500).fit(X, y + 1)  # classes_ = [1, 2, 3]
    game = tribute.build_game(clf, X[:3], target=2, output="prob", baseline=0.0)
    np.testing.assert_allclose(game.full().numpy().ravel(), clf.predict_proba(X[:3])[:, 1])
    attr = tribute.explain(clf, X[:3], method="feature_ablation", target=2, output="prob",
                           baseline=0.0)
    np.testing.assert_array_equal(np.asarray(attr.targets).ravel(), [1, 1, 1])


def test_string_labels_as_a_list_or_one_per_sample(iris):
    # aud28: a list of string labels, or y_true of strings, raised a TypeError from torch
    x, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    s = LogisticRegression(max_iter=1000).fit(x, names)
    kw = {"method": "exact_shapley", "baseline": x.mean(0), "output": "prob"}
    idx = np.array([0, 60, 120, 70])
    xs = x[idx]
    per_row = tribute.explain(s, xs, target=names[idx], **kw)
    np.testing.assert_allclose(np.asarray(per_row.full_values), _probs(s, xs, y[idx]))
    np.testing.assert_array_equal(np.asarray(per_row.targets), y[idx])
    as_objects = tribute.explain(s, xs, target=names[idx].astype(object), **kw)
    np.testing.assert_array_equal(np.asarray(as_objects.values), np.asarray(per_row.values))
    several = tribute.explain(s, xs, target=["virginica", "setosa"], **kw)
    np.testing.assert_allclose(np.asarray(several.full_values)[:, 0], _probs(s, xs, [2] * 4))
    np.testing.assert_allclose(np.asarray(several.full_values)[:, 1], _probs(s, xs, [0] * 4))
    with pytest.raises(InputError, match=r"target list \['setosa', 'rose'\] holds 'rose', which "
                                         r"is not one of the classifier's classes_"):
        tribute.explain(s, xs, target=["setosa", "rose"], **kw)
    clf = LogisticRegression(max_iter=1000).fit(x, y)  # numeric classes: names are refused
    with pytest.raises(InputError, match="holds 'setosa', which is not one of the classifier's"):
        tribute.explain(clf, xs, target=names[idx], **kw)
    with pytest.raises(InputError, match="not integer class indices"):
        tribute.explain(lambda a: a[:, :3], xs, target=["a", "b"], **kw)


def test_a_pandas_series_target_is_read_by_position_when_its_index_matches(iris):
    pd = pytest.importorskip("pandas")
    x, y = iris
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(4)]).sample(frac=1.0, random_state=0)
    labels = pd.Series(y, name="species").loc[frame.index] + 1  # labels 1, 2, 3, as y_test
    clf = LogisticRegression(max_iter=1000).fit(frame, labels)
    xs, ys = frame.iloc[:6], labels.iloc[:6]
    kw = {"method": "exact_shapley", "baseline": x.mean(0), "output": "prob"}
    from_series = tribute.explain(clf, xs, target=ys, **kw)
    from_array = tribute.explain(clf, xs, target=ys.to_numpy(), **kw)
    np.testing.assert_array_equal(np.asarray(from_series.values), np.asarray(from_array.values))
    np.testing.assert_allclose(np.asarray(from_series.full_values),
                               _probs(clf, xs, ys.to_numpy() - 1))
    a = tribute.evaluate(clf, xs, from_series, metric="deletion", target=ys, baseline=x.mean(0))
    b = tribute.evaluate(clf, xs, from_series, metric="deletion", target=ys.to_numpy(),
                         baseline=x.mean(0))
    np.testing.assert_array_equal(np.asarray(a.scores), np.asarray(b.scores))
    # string labels in a Series, and a Series next to a numpy input (no index to compare)
    names = ys.map({1: "setosa", 2: "versicolor", 3: "virginica"})
    by_name = LogisticRegression(max_iter=1000).fit(frame, labels.map(
        {1: "setosa", 2: "versicolor", 3: "virginica"}))
    named = tribute.explain(by_name, xs.to_numpy(), target=names, **kw)
    np.testing.assert_array_equal(np.asarray(named.targets).ravel(), ys.to_numpy() - 1)


def test_a_series_in_another_row_order_than_the_inputs_is_refused(iris):
    pd = pytest.importorskip("pandas")
    x, y = iris
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(4)]).sample(frac=1.0, random_state=1)
    labels = pd.Series(y).loc[frame.index]
    clf = LogisticRegression(max_iter=1000).fit(frame, labels)
    xs = frame.iloc[:5]
    with pytest.raises(InputError, match=r"pandas Series whose index .* is not the inputs' index"
                                         r".*target\.reindex\(inputs\.index\)"):
        tribute.explain(clf, xs, method="exact_shapley", baseline=x.mean(0),
                        target=labels.sort_index().iloc[:5])


def test_a_series_target_is_sliced_per_shard_in_a_dataset_job(tmp_path) -> None:
    # explain_dataset refused it at the manifest (printing the whole Series); it is read as
    # its numpy array, one label per row, and each shard gets its rows
    pd = pytest.importorskip("pandas")
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    x = np.random.default_rng(0).standard_normal((10, 4))
    y = pd.Series([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    a = tribute.explain_dataset(net, x, tmp_path / "series", method="saliency", target=y,
                                shard_size=4, progress=False)
    b = tribute.explain_dataset(net, x, tmp_path / "numpy", method="saliency", target=y.to_numpy(),
                                shard_size=4, progress=False)
    np.testing.assert_array_equal(np.asarray(a.targets).ravel(), y.to_numpy())
    np.testing.assert_array_equal(np.asarray(a.values), np.asarray(b.values))


def test_predicted_target_is_the_class_predict_returns():
    # "predicted" was the arg-max of predict_proba, which a classifier's own predict can
    # contradict: with a decision threshold of 0.9 the rows below are predicted 0 while their
    # class-1 probability is over 0.5, and class 1 was explained as "the predicted class".
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import FixedThresholdClassifier

    x, y = load_breast_cancer(return_X_y=True)
    x = x[:, :5]
    lr = LogisticRegression(max_iter=5000).fit(x, y)
    clf = FixedThresholdClassifier(lr, threshold=0.9).fit(x, y)
    p1 = clf.predict_proba(x)[:, 1]
    rows = np.flatnonzero((p1 > 0.5) & (p1 <= 0.9))[:3]
    assert rows.size == 3 and np.all(clf.predict(x[rows]) == 0)
    for target in (None, "predicted"):
        a = tribute.explain(clf, x[rows], method="exact_shapley", baseline=x.mean(0), target=target)
        np.testing.assert_array_equal(np.asarray(a.targets).reshape(-1), [0, 0, 0])
        assert a.n_rows == 3 * 2**5 + 3  # the game's rows and one predict pass of the samples
        np.testing.assert_allclose(np.asarray(a.full_values), clf.predict_proba(x[rows])[:, 0])
    # A classifier whose predict is the arg-max gives the same targets as before.
    b = tribute.explain(lr, x[rows], method="exact_shapley", baseline=x.mean(0))
    np.testing.assert_array_equal(np.asarray(b.targets).reshape(-1), [1, 1, 1])


def test_predicted_target_falls_back_to_the_arg_max_when_predict_fails(iris):
    x, y = iris
    lr = LogisticRegression(max_iter=2000).fit(x, y)

    class NoPredict(LogisticRegression):  # type: ignore[misc]
        def predict(self, X):
            raise RuntimeError("predict is not available here")

    broken = NoPredict(max_iter=2000).fit(x, y)
    with pytest.warns(UserWarning, match="predict failed.*arg-max of its predict_proba"):
        a = tribute.explain(broken, x[:4], method="exact_shapley", baseline=x.mean(0))
    b = tribute.explain(lr, x[:4], method="exact_shapley", baseline=x.mean(0))
    np.testing.assert_array_equal(np.asarray(a.targets), np.asarray(b.targets))


def test_nested_label_rows_read_like_the_2d_array(iris):
    x, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])
    clf = LogisticRegression(max_iter=2000).fit(x, names[y])
    rows = [["setosa", "virginica"], ["versicolor", "setosa"], ["virginica", "setosa"]]
    a = tribute.explain(clf, x[:3], method="exact_shapley", baseline=x.mean(0), target=rows)
    b = tribute.explain(clf, x[:3], method="exact_shapley", baseline=x.mean(0), target=np.array(rows))
    np.testing.assert_array_equal(np.asarray(a.targets), [[0, 2], [1, 0], [2, 0]])
    np.testing.assert_array_equal(np.asarray(a.values), np.asarray(b.values))


def test_predicted_class_of_a_thresholded_decision_function():
    # FixedThresholdClassifier(LinearSVC, threshold=1.0) has no predict_proba: "margin > 0" read
    # rows it predicts 0 as class 1.
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import FixedThresholdClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    from tribute.models.adapters import predict_may_differ

    x, y = load_breast_cancer(return_X_y=True)
    x = x[:, :5]
    svm = make_pipeline(StandardScaler(), LinearSVC())
    clf = FixedThresholdClassifier(svm, threshold=1.0).fit(x, y)
    margin = clf.decision_function(x)
    rows = np.flatnonzero((margin > 0) & (margin <= 1.0))[:3]
    assert rows.size == 3
    a = tribute.explain(clf, x[rows], method="exact_shapley", baseline=x.mean(0))
    np.testing.assert_array_equal(np.asarray(a.targets).reshape(-1), clf.predict(x[rows]))
    assert predict_may_differ(clf) and not predict_may_differ(svm.fit(x, y))
    assert not predict_may_differ(LogisticRegression())  # no extra pass where predict = arg-max


def test_nearest_centroid_predicted_class_is_its_predict(iris):
    # NearestCentroid's predict_proba (a softmax of distances) is not what its predict decides
    # on every row: classifiers not known to predict the arg-max get their predict read.
    from sklearn.neighbors import NearestCentroid

    x, y = iris
    clf = NearestCentroid().fit(x, y)
    if not hasattr(clf, "predict_proba"):
        pytest.skip("this scikit-learn's NearestCentroid has no predict_proba")
    a = tribute.explain(clf, x, method="feature_ablation", baseline=x.mean(0))
    np.testing.assert_array_equal(np.asarray(a.targets).reshape(-1), clf.predict(x))


def test_an_object_array_of_class_numbers_reads_as_the_integers_it_holds():
    # y.astype(object) or a pandas object column was refused as "not integer class indices"
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    labels = np.array([7, 3, 11, 5])[rng.integers(0, 4, 60)]
    model = LogisticRegression().fit(X, labels)
    base = X.mean(0)
    want = tribute.explain(model, X[:4], method="exact_shapley", target=np.array([11, 3, 7, 5]),
                           baseline=base)
    for target in (np.array([11, 3, 7, 5], dtype=object), pd.Series([11, 3, 7, 5], dtype=object)):
        got = tribute.explain(model, X[:4], method="exact_shapley", target=target, baseline=base)
        np.testing.assert_array_equal(got.values, want.values)


def test_object_arrays_of_floats_or_huge_integers_get_the_numeric_errors():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 3))
    model = LogisticRegression().fit(X, rng.integers(0, 3, 30))
    want = tribute.explain(model, X[:2], method="feature_ablation", target=np.array([2, 0]),
                           baseline=X.mean(0))
    got = tribute.explain(model, X[:2], method="feature_ablation", baseline=X.mean(0),
                          target=np.array([2.0, 0.0], dtype=object))  # whole-number floats
    np.testing.assert_array_equal(got.values, want.values)
    with pytest.raises(InputError, match="integer class indices"):
        tribute.explain(model, X[:2], method="feature_ablation", baseline=X.mean(0),
                        target=np.array([1.5, 0.0], dtype=object))
    with pytest.raises(InputError):  # was a bare OverflowError
        tribute.explain(model, X[:2], method="feature_ablation", baseline=X.mean(0),
                        target=np.array([2**64 - 1, 0], dtype=object))
