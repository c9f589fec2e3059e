"""rev50t: review of aud50t (typed DataFrame columns per row group, reused adapters).

A reused adapter kept the column dtypes of an earlier DataFrame of numbers when a later one's
dtypes no longer matter to the model: a validating ``FunctionTransformer`` reads an all-integer
frame as an int64 array (so its dtypes matter) but a frame with a float column as float64, and
the second frame's rows were handed over with the first frame's int64 columns: credit -0.26 for
a column whose exact Shapley value (enumeration over DataFrame copies, and a fresh adapter) is 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tribute

pd = pytest.importorskip("pandas")
sklearn = pytest.importorskip("sklearn")


def _as_text(a: Any) -> Any:
    """Column 0 read as text ('2' and '3' known, '2.0' not), column 1 as a number."""
    s = np.char.mod("%s", np.asarray(a))
    known = np.where(s[:, 0] == "2", 5.0, np.where(s[:, 0] == "3", 7.0, -10.0))
    return np.stack([known, np.asarray(a)[:, 1].astype(float)], axis=1)


def test_a_reused_adapter_forgets_an_earlier_frames_integer_columns() -> None:
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from tribute.models import as_model

    rng = np.random.default_rng(3)
    ints = pd.DataFrame({"a": rng.choice([1, 2, 3], 30), "b": rng.choice([1, 2, 3], 30)})
    pipe = make_pipeline(FunctionTransformer(_as_text, validate=True), LinearRegression())
    pipe.fit(ints, rng.normal(size=30))
    floats = ints.astype({"b": float})  # one array of float64: '2.0', never '2'
    adapter = as_model(pipe, "numpy")
    tribute.explain(adapter, ints.iloc[:3], method="exact_shapley", baseline=ints.iloc[[10]])
    reused = tribute.explain(adapter, floats.iloc[:3], method="exact_shapley",
                             baseline=floats.iloc[[10]])
    fresh = tribute.explain(pipe, floats.iloc[:3], method="exact_shapley",
                            baseline=floats.iloc[[10]])
    # truth: column a never reaches the model as '2' / '3' in a float64 array, so it scores -10
    # whatever its value: credit 0 (a fresh adapter agrees)
    np.testing.assert_array_equal(np.asarray(fresh.values)[:, 0], 0.0)
    np.testing.assert_array_equal(np.asarray(reused.values), np.asarray(fresh.values))
