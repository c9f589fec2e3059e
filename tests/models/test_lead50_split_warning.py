"""lead50 (from rev50z / rev50t): a dtype-reading model's batch whose integer columns receive a
baseline they cannot hold (a mean) splits into one frame per combination of such columns — up to
2^m model calls per batch (2,555 calls for 2,560 rows, 178 s where main took 2.9 s, on 10 integer
columns). The numbers are right (aud50t); the cost is now explained by a warning naming the
columns and the way to one call per batch (a baseline those columns can hold)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import tribute

pd = pytest.importorskip("pandas")


class _IntReader:
    """A user's estimator that reads its integer columns as text (counted calls)."""

    def __init__(self) -> None:
        self.calls = 0

    def fit(self, frame: Any) -> _IntReader:
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        return self

    def predict(self, frame: Any) -> Any:
        self.calls += 1
        return sum(frame[c].astype(str).str.len().to_numpy(dtype=np.float64) for c in frame.columns)


def _frame(m: int) -> Any:
    rng = np.random.default_rng(0)
    return pd.DataFrame({f"c{j}": rng.integers(1, 30, 6) for j in range(m)})


def _explain(model: Any, x: Any, baseline: Any) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        attr = tribute.explain(model, x.iloc[:2], method="exact_shapley", baseline=baseline, progress=False)
    return attr, [str(w.message) for w in seen if "model calls" in str(w.message)]


def test_a_batch_split_into_many_frames_says_why_and_how_to_avoid_it() -> None:
    x = _frame(5)
    model = _IntReader().fit(x)
    _, said = _explain(model, x, x.mean().to_numpy())  # 2^5 combinations of fractional columns
    assert said and "'c1', 'c2', 'c3', 'c4']" in said[0] and "Background" in said[0]
    calls = model.calls
    model.calls = 0
    attr, quiet = _explain(model, x, tribute.Background(x.iloc[2:4]))  # data rows: integers
    assert not quiet and model.calls < calls
    assert np.isfinite(attr.values).all()


def test_few_frames_stay_silent() -> None:
    x = _frame(3)
    model = _IntReader().fit(x)
    _, said = _explain(model, x, x.mean().to_numpy())  # at most 2^3 = 8 frames a batch
    assert not said
