"""aud50t: audit of tabular models, scikit-learn adapters, trees and dataset jobs.

1. A baseline an integer column cannot hold (a mean 2.07) kept the column float64 in every row
   (rev49a's cure for a batch-dependent dtype), f(x) included: a model reading the column as
   text saw ``'3.0'`` for the user's ``3``, and exact Shapley credited the column 0 for a truth
   of 17 (enumeration over DataFrame copies scored by the user's own estimator). Rows are now
   grouped by which typed columns hold values of their dtype, one frame each.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

import tribute
from tribute_testing import TextReader

pd = pytest.importorskip("pandas")


def _brute(model: Any, x: Any, background: Any) -> np.ndarray:
    """Exact Shapley values over DataFrame copies: a coalition's row is a background row whose
    present columns take the sample's values (and dtype), averaged over the background."""
    cols = list(x.columns)
    n = len(cols)
    out = np.zeros((len(x), n))
    for r in range(len(x)):
        v: dict[tuple[int, ...], float] = {}
        for s in itertools.product((0, 1), repeat=n):
            vals = []
            for b in range(len(background)):
                row = background.iloc[[b]].reset_index(drop=True)
                for j, c in enumerate(cols):
                    if s[j]:
                        row[c] = x.iloc[[r]][c].to_numpy()
                vals.append(float(model.predict(row)[0]))
            v[s] = float(np.mean(vals))
        for i in range(n):
            for s, val in v.items():
                if not s[i]:
                    k = sum(s)
                    w = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                    out[r, i] += w * (v[(*s[:i], 1, *s[i + 1:])] - val)
    return out


def _frame(text: bool) -> Any:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.choice([1, 2, 3], 30), "b": rng.normal(size=30),
                       "c": rng.random(30) > 0.5})
    return df.assign(t=rng.choice(["u", "v"], 30)) if text else df


@pytest.mark.parametrize("batch_size", [None, 3])
def test_a_mean_baseline_keeps_the_samples_integer_column_an_integer(batch_size: Any) -> None:
    df = _frame(text=False)
    model = TextReader().fit(df)
    x = df.iloc[:3]
    base = df.mean().to_frame().T  # a = 2.07: no integer
    attr = tribute.explain(model, x, method="exact_shapley", baseline=base, batch_size=batch_size)
    truth = _brute(model, x, base)
    assert truth[:, 0].tolist() == [17.0, 15.0, 15.0]  # 7 or 5 at the sample, -10 at 2.07
    np.testing.assert_allclose(attr.values, truth, atol=1e-9)


@pytest.mark.parametrize("batch_size", [None, 5])
def test_a_background_with_fractional_integers_and_a_text_column(batch_size: Any) -> None:
    df = _frame(text=True)
    model = TextReader().fit(df)
    x = df.iloc[:3]
    bg = df.iloc[5:8].astype({"a": np.float64})
    bg["a"] = [2.5, 1.5, 2.25]
    attr = tribute.explain(model, x, method="exact_shapley", baseline=tribute.Background(bg),
                           batch_size=batch_size)
    np.testing.assert_allclose(attr.values, _brute(model, x, bg), atol=1e-9)


def test_a_reused_adapter_types_a_later_frame_by_its_own_dtypes() -> None:
    """2. A reused adapter kept the first table's codec: a later frame whose integer column is
    float was handed over as integers (credit 4 where the user's estimator gives 0), and a new
    category was refused; a later array kept the first frame's integer typing."""
    from tribute.models import as_model

    df = _frame(text=True)
    model = TextReader().fit(df)
    adapter = as_model(model, "numpy")
    x, base = df.iloc[:3], df.iloc[[5]]
    first = tribute.explain(adapter, x, method="exact_shapley", baseline=base)
    np.testing.assert_allclose(first.values, _brute(model, x, base), atol=1e-9)
    xf, bf = x.astype({"a": np.float64}), base.astype({"a": np.float64})
    later = tribute.explain(adapter, xf, method="exact_shapley", baseline=bf)
    np.testing.assert_allclose(later.values, _brute(model, xf, bf), atol=1e-9)
    assert later.values[:, 0].tolist() == [0.0, 0.0, 0.0]  # '3.0' and '2.0' score alike
    xn, bn = x.copy(), base.copy()
    xn["t"], bn["t"] = ["w", "u", "w"], ["w"]  # a category the first call never met
    got = tribute.explain(adapter, xn, method="exact_shapley", baseline=bn)
    np.testing.assert_allclose(got.values, _brute(model, xn, bn), atol=1e-9)


def test_a_reused_adapter_hands_a_later_array_over_as_floats() -> None:
    from tribute.models import as_model

    df = _frame(text=False)
    model = TextReader().fit(df)
    adapter = as_model(model, "numpy")
    tribute.explain(adapter, df.iloc[:3], method="exact_shapley", baseline=df.iloc[[5]])
    arr = df.iloc[:3].to_numpy(dtype=np.float64)
    base = df.iloc[[5]].to_numpy(dtype=np.float64)
    fresh = tribute.explain(model, arr, method="exact_shapley", baseline=base)
    reused = tribute.explain(adapter, arr, method="exact_shapley", baseline=base)
    np.testing.assert_array_equal(reused.values, fresh.values)


class _Float32Reader:
    """A user's estimator comparing a float32 column with 0.1 (in float32, as numpy does)."""

    def fit(self, frame: Any) -> _Float32Reader:
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        return self

    def predict(self, frame: Any) -> Any:
        return (frame["b"] > 0.1).to_numpy(dtype=np.float64) * 5.0 + frame["a"].to_numpy(dtype=np.float64)


@pytest.mark.parametrize("a_dtype", ["int64", "float32"])
def test_a_float32_column_reaches_the_model_as_float32(a_dtype: str) -> None:
    """3. A float32 column reached the model as float64: float32(0.1) > 0.1 in float64, not in
    float32, so the column was credited 5 for a truth of 0."""
    df = pd.DataFrame({"a": pd.Series([1, 2, 3, 4]).astype(a_dtype),
                       "b": np.array([0.1, 0.3, 0.1, -1.0], dtype=np.float32)})
    model = _Float32Reader().fit(df)
    x = df.iloc[:3]
    # (the float64 baseline keeps a's dtype: a float64 4.0 for an int64 column is refused since
    # aud51t, two readings; the float32 column b is what this test is about)
    for base in (df.iloc[[3]], df.astype({"b": np.float64}).iloc[[3]].assign(b=0.05)):
        attr = tribute.explain(model, x, method="exact_shapley", baseline=base)
        truth = _brute(model, x, base)
        np.testing.assert_allclose(attr.values, truth, atol=1e-6)
    assert truth[:, 1].tolist() == [0.0, 5.0, 0.0]
