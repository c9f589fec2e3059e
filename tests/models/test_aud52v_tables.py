"""aud52v: a Series baseline is read as the one-row frame it stands for.

``baseline=X.mean()`` whose integer column's mean is exactly 2.0 reached a model that reads its
columns' dtypes as the integer 2 (credit -2 where exact Shapley over DataFrame copies gives 13),
while the same statistic as a one-row frame (``X.mean().to_frame().T``) was refused naming both
readings. A Series has one dtype, so a data row ``X.iloc[0]`` of an int + float table reads
both ways too (credit 0 as the integer row, 13 as its float copy): both are refused alike now,
naming the one-row frame that keeps the columns' dtypes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tribute
from tribute.errors import InputError

pd = pytest.importorskip("pandas")

from test_aud50t_tabular import _brute  # noqa: E402  (exact Shapley over DataFrame copies)
from test_aud51t_tabular import _frame, _Reader  # noqa: E402


@pytest.mark.parametrize("spelling", ["mean_series", "mean_frame", "row_series"])
def test_a_float_series_baseline_is_refused_as_its_one_row_frame(spelling: str) -> None:
    df = _frame()
    model = _Reader().fit(df)
    x = df.iloc[:3]
    base: Any = {"mean_series": df.mean(), "mean_frame": df.mean().to_frame().T,
                 "row_series": df.iloc[0]}[spelling]
    with pytest.raises(InputError) as err:
        tribute.explain(model, x, method="exact_shapley", baseline=base)
    msg = str(err.value)
    assert "baseline column 'a' is float64" in msg and "int64" in msg, msg
    if spelling != "mean_frame":
        assert "X.iloc[[i]]" in msg and "to_frame().T.astype({'a': 'int64'})" in msg, msg
    # the named fixes give the DataFrame-copy truth of each reading
    frame = base.to_frame().T if isinstance(base, pd.Series) else base
    fixed = df.iloc[[0]] if spelling == "row_series" else frame.astype({"a": "int64"})
    attr = tribute.explain(model, x, method="exact_shapley", baseline=fixed)
    np.testing.assert_allclose(attr.values, _brute(model, x, fixed), atol=1e-12)
    xf = x.astype({"a": "float64"})
    attr = tribute.explain(model, xf, method="exact_shapley", baseline=base)
    np.testing.assert_allclose(attr.values, _brute(model, xf, frame), atol=1e-12)


def test_series_baselines_with_one_reading_are_not_refused() -> None:
    """Negative cases: an integer Series (an all-int table's row), a fractional mean, a float
    table's mean, and a model that does not read dtypes."""
    from sklearn.linear_model import LinearRegression

    df = _frame()
    ints = df.assign(b=np.arange(12))
    attr = tribute.explain(_Reader().fit(ints), ints.iloc[:2], method="exact_shapley",
                           baseline=ints.iloc[5])
    np.testing.assert_allclose(attr.values, _brute(_Reader().fit(ints), ints.iloc[:2], ints.iloc[[5]]),
                               atol=1e-12)
    frac = df.assign(a=[1, 3, 2, 3] * 3)  # mean 2.25
    model = _Reader().fit(frac)
    attr = tribute.explain(model, frac.iloc[:2], method="exact_shapley", baseline=frac.mean())
    np.testing.assert_allclose(attr.values, _brute(model, frac.iloc[:2], frac.mean().to_frame().T),
                               atol=1e-12)
    floats = df.astype(float)
    tribute.explain(_Reader().fit(floats), floats.iloc[:2], method="exact_shapley", baseline=floats.mean())
    lr = LinearRegression().fit(df, df["b"] * 2 + df["a"])
    attr = tribute.explain(lr, df.iloc[:2], method="exact_shapley", baseline=df.mean())
    np.testing.assert_allclose(attr.values, _brute(lr, df.iloc[:2], df.mean().to_frame().T), atol=1e-12)
