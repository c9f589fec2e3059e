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


def test_a_plain_text_pipeline_gets_each_batch_as_one_frame(monkeypatch: Any) -> None:
    """A scikit-learn pipeline (one-hot text, numbers passed through) cannot notice its number
    columns' dtypes, so a mean baseline its integer columns cannot hold must not split its
    batches into row groups: 306 model calls instead of 6 (kernel_shap, 6 integer columns),
    same credits (rev50t)."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from tribute.models import adapters

    rng = np.random.default_rng(0)
    df = pd.DataFrame({f"i{j}": rng.choice([1, 2, 3, 4], 60) for j in range(4)}
                      | {"t": rng.choice(["p", "q"], 60)})
    y = (df["i0"].to_numpy() + rng.normal(size=60) > 2.5).astype(int)
    pipe = make_pipeline(make_column_transformer((OneHotEncoder(), ["t"]), remainder="passthrough"),
                         LogisticRegression(max_iter=300)).fit(df, y)
    calls: list[int] = []
    scores = adapters.NumpyModel._scores

    def counting(self: Any, arrays: Any, *args: Any) -> Any:
        calls.append(len(arrays[0]))
        return scores(self, arrays, *args)

    monkeypatch.setattr(adapters.NumpyModel, "_scores", counting)
    base = df.drop(columns="t").astype(float).mean().to_frame().T.assign(t=["p"])
    # one fixed batch size: the self-tuned sizes (timed) made the call counts differ run to run
    attr = tribute.explain(pipe, df.iloc[:3], method="exact_shapley", baseline=base, batch_size=32)
    assert sum(calls) == 3 * 2 ** 5  # every coalition row once
    fractional = len(calls)
    calls.clear()
    tribute.explain(pipe, df.iloc[:3], method="exact_shapley",
                    baseline=base.round().astype({f"i{j}": int for j in range(4)}), batch_size=32)
    assert fractional == len(calls)  # as many calls as a baseline the integers can hold needs
    # credits sum to f(x) - f(baseline) (efficiency), the model scored on the user's frames
    p = pipe.predict_proba(df.iloc[:3])[:, 1] - pipe.predict_proba(base)[0, 1]
    np.testing.assert_allclose(np.asarray(attr.values).sum(axis=1), p, atol=1e-12)
