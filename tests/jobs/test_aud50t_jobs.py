"""aud50t: a dataset job on a numeric table gave a model that reads its column dtypes float64
rows (``3.0`` for the integer ``3``): credit 0 for the integer column where one call of
tribute.explain and an exact enumeration over DataFrame copies give 4. The shards now hand such
models the table's dtypes (integer, bool, float32), as one call does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tribute
from tribute_testing import TextReader

pd = pytest.importorskip("pandas")


def _table() -> Any:
    return pd.DataFrame({"a": [3, 2, 2, 1, 3, 1], "b": np.linspace(-1.0, 1.0, 6)})


@pytest.mark.parametrize("source", ["frame", "csv"])
def test_a_job_gives_a_dtype_reading_model_the_tables_integers(tmp_path: Path, source: str) -> None:
    df = _table()
    model = TextReader().fit(df)
    base = df.iloc[[3]]  # a = 1, b = 0.2
    data: Any = df
    if source == "csv":
        data = tmp_path / "rows.csv"
        df.to_csv(data, index=False)
    job = tribute.explain_dataset(model, data, tmp_path / "out", method="exact_shapley",
                                  baseline=base, shard_size=4)
    one = tribute.explain(model, df, method="exact_shapley", baseline=base)
    # closed form (additive): the term at x minus the term at the baseline
    a_term = df["a"].map({1: 3.0, 2: 5.0, 3: 7.0}).to_numpy() - 3.0
    np.testing.assert_allclose(np.asarray(job.values)[:, 0], a_term, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(job.values), np.asarray(one.values))
