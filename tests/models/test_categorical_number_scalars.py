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


def test_a_baseline_holding_category_codes_is_refused_naming_the_column() -> None:
    # numbers where the inputs hold text: with a handle_unknown="ignore" encoder the column was
    # "removed" to an unknown category (an all-zero one-hot), silently; the CLI's background CSV of
    # codes reached sklearn's raw ValueError (rev34e)
    frame = pd.DataFrame({"x": [0.5, 1.0, 2.0], "city": ["oslo", "rome", "oslo"]})

    def f(df):
        return df["x"].to_numpy() + (df["city"] == "rome").to_numpy()

    codes = pd.DataFrame({"x": [0.0, 0.1], "city": [0, 1]})
    for base in (tribute.Background(codes), codes.iloc[:1]):
        with pytest.raises(InputError, match=r"baseline column\(s\) \['city'\] hold numbers"):
            tribute.explain(f, frame, method="exact_shapley", baseline=base)
    ok = tribute.explain(f, frame, method="exact_shapley", baseline=frame.iloc[:1], progress=False)
    assert np.isfinite(np.asarray(ok.values, dtype=float)).all()
