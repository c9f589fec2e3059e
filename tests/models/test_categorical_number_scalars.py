"""A numpy number baseline on a table with text columns is refused as a number (it was told to
give a DataFrame 'not an array')."""

from __future__ import annotations

import numpy as np
import pytest

import tribute
from tribute.errors import InputError

pd = pytest.importorskip("pandas")


@pytest.mark.parametrize("base", [np.int64(0), np.float32(0.0), np.int8(2)])
def test_a_numpy_number_names_no_category(base) -> None:
    frame = pd.DataFrame({"x": [0.5, 1.0, 2.0], "city": ["oslo", "rome", "oslo"]})

    def f(df):
        return df["x"].to_numpy() + (df["city"] == "rome").to_numpy()

    with pytest.raises(InputError, match=r"baseline=\d\.0 cannot stand for a category of column\(s\) \['city'\]"):
        tribute.explain(f, frame, method="exact_shapley", baseline=base)


def test_a_baseline_table_without_a_text_column_names_it() -> None:
    frame = pd.DataFrame({"x": [0.5, 1.0, 2.0], "city": ["oslo", "rome", "oslo"]})

    def f(df):
        return df["x"].to_numpy() + (df["city"] == "rome").to_numpy()

    for base in (tribute.Background(frame[["x"]]), frame[["x"]].iloc[:1]):  # a KeyError: 'city' before
        with pytest.raises(InputError, match=r"baseline lacks column\(s\) \['city'\]"):
            tribute.explain(f, frame, method="exact_shapley", baseline=base)
