"""Weighted and summarised background sets: ``Background(weights=...)``, ``.kmeans``, ``.sample``.

Reference: a background with integer weights equals the same rows repeated that many times
(exact Shapley of the interventional game, tree_shap on both kernels, DeepLIFT/DeepSHAP).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError


@pytest.fixture(scope="module")
def wine():
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    return X[:, :6].astype(np.float64), y


def _repeat(rows, counts):
    return np.repeat(rows, counts, axis=0)


def test_integer_weights_equal_repeated_rows_exact_shapley(wine):
    X, _ = wine
    w = np.array([1, 3, 2, 1])
    rows = X[100:104]

    def f(a):
        return np.tanh(a @ np.linspace(-0.2, 0.3, a.shape[1])) + 0.01 * a[:, 0] * a[:, 2]

    a = tribute.explain(f, X[:3], method="exact_shapley", baseline=tribute.Background(rows, weights=w))
    b = tribute.explain(f, X[:3], method="exact_shapley", baseline=tribute.Background(_repeat(rows, w)))
    np.testing.assert_allclose(a.values, b.values, atol=1e-12)
    # efficiency against the weighted mean output
    full = f(X[:3])
    mean_bg = (w / w.sum()) @ f(rows)
    np.testing.assert_allclose(a.values.sum(1), full - mean_bg, atol=1e-10)


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_integer_weights_equal_repeated_rows_tree_shap(wine, kernel):
    if kernel == "compiled":
        pytest.importorskip("numba")
    from sklearn.ensemble import RandomForestRegressor

    X, y = wine
    model = RandomForestRegressor(5, max_depth=6, random_state=0).fit(X, y.astype(float))
    w = np.array([2, 1, 4])
    rows = X[50:53]
    a = tribute.explain(model, X[:4], method="tree_shap", kernel=kernel,
                        baseline=tribute.Background(rows, weights=w))
    b = tribute.explain(model, X[:4], method="tree_shap", kernel=kernel,
                        baseline=tribute.Background(_repeat(rows, w)))
    np.testing.assert_allclose(a.values, b.values, atol=1e-12)
    np.testing.assert_allclose(a.extra["expected_value"], b.extra["expected_value"], atol=1e-12)


def test_integer_weights_equal_repeated_rows_deeplift(wine):
    X, _ = wine
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).double()
    x = torch.tensor(X[:3])
    rows = torch.tensor(X[60:63])
    w = np.array([1, 2, 3])
    a = tribute.explain(net, x, method="deeplift", baseline=tribute.Background(rows, weights=w))
    b = tribute.explain(net, x, method="deeplift",
                        baseline=tribute.Background(torch.tensor(_repeat(X[60:63], w))))
    torch.testing.assert_close(a.values, b.values, atol=1e-10, rtol=0)


def test_kmeans_summary(wine):
    X, _ = wine
    bg = tribute.Background.kmeans(X, 8, seed=0)
    assert np.asarray(bg.data).shape == (8, 6)
    assert np.isclose(np.sum(bg.weights), 1.0) and np.all(np.asarray(bg.weights) > 0)
    assert bg.note is not None and "k-means" in bg.note and "178" in bg.note
    # the weighted centres preserve the mean of the data exactly (Lloyd's fixed point)
    np.testing.assert_allclose(np.asarray(bg.weights) @ np.asarray(bg.data), X.mean(0), rtol=1e-6)
    attr = tribute.explain(lambda a: a @ np.ones(6), X[:2], method="kernel_shap", baseline=bg)
    assert attr.params["background"] == bg.note
    # a linear model: Shapley values are w_i (x_i - E[b_i]) = x_i - mean_i (weights respected)
    np.testing.assert_allclose(attr.values, X[:2] - X.mean(0), atol=1e-6)
    # the same again (seeded)
    bg2 = tribute.Background.kmeans(X, 8, seed=0)
    np.testing.assert_array_equal(np.asarray(bg.data), np.asarray(bg2.data))


def test_sample_summary_and_dataframes(wine):
    pd = pytest.importorskip("pandas")
    X, _ = wine
    df = pd.DataFrame(X, columns=[f"c{i}" for i in range(6)])
    s = tribute.Background.sample(df, 10, seed=1)
    assert list(s.data.columns) == list(df.columns) and len(s.data) == 10 and s.weights is None
    assert s.note is not None and "random sample of 10 of 178" in s.note
    k = tribute.Background.kmeans(df, 5)
    assert list(k.data.columns) == list(df.columns)
    assert str(tribute.Background.kmeans(X, 500).note).startswith("all 178 rows")


def test_bad_background_weights(wine):
    X, _ = wine
    f = lambda a: a.sum(1)  # noqa: E731
    with pytest.raises(InputError, match=r"weights have shape \(2,\); expected \(4,\)"):
        tribute.explain(f, X[:2], method="kernel_shap", baseline=tribute.Background(X[:4], weights=[1, 2]))
    with pytest.raises(InputError, match="non-negative"):
        tribute.explain(f, X[:2], method="kernel_shap", baseline=tribute.Background(X[:4], weights=[1, -1, 1, 1]))
    with pytest.raises(InputError, match="positive int"):
        tribute.Background.kmeans(X, 0)
    with pytest.raises(InputError, match="shape"):
        tribute.Background.sample(X[0], 2)


def test_polars_tables_read_like_pandas(wine):
    pl = pytest.importorskip("polars")
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y = wine
    cols = [f"c{i}" for i in range(6)]
    pdf = pd.DataFrame(X, columns=cols)
    pdf["kind"] = np.where(X[:, 0] > 13, "high", "low")
    plf = pl.DataFrame({c: pdf[c].to_numpy() for c in pdf.columns})
    pipe = make_pipeline(
        ColumnTransformer([("cat", OneHotEncoder(), ["kind"])], remainder="passthrough"),
        RandomForestRegressor(5, random_state=0)).fit(pdf, y.astype(float))
    a = tribute.explain(pipe, plf[:4], method="exact_shapley", baseline=tribute.Background(plf[100:110]))
    b = tribute.explain(pipe, pdf[:4], method="exact_shapley", baseline=tribute.Background(pdf[100:110]))
    assert a.player_names == [*cols, "kind"] == b.player_names
    np.testing.assert_allclose(a.values, b.values, atol=1e-12)
    bg = tribute.Background.sample(plf, 5, seed=0)
    s = tribute.explain(pipe, plf[:4], method="kernel_shap", budget=64, baseline=bg)
    assert s.to_pandas().shape == (4, 7) and "random sample of 5 of 178" in s.params["background"]
