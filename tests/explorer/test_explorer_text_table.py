"""The explorer refuses a table with text columns by name (its arrays are category codes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tribute.errors import InputError

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

FACTORY = '''
import numpy as np
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

def make():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=60), "city": rng.choice(["rome", "oslo", "lima"], 60)})
    y = (X["a"] + (X["city"] == "rome") > 0).astype(int)
    ct = make_column_transformer((OneHotEncoder(), ["city"]), remainder="passthrough")
    return make_pipeline(ct, LogisticRegression()).fit(X, y)
'''


def test_a_csv_with_a_text_column_is_refused_naming_it(tmp_path: Path) -> None:
    # the codes (city as 0.0/1.0/2.0) reached the pipeline: sklearn's TypeError from the probe
    # (rev34d)
    from tribute.explorer.subjects import file_spec

    (tmp_path / "citymodel.py").write_text(FACTORY, encoding="utf-8")
    pd.DataFrame({"a": [0.1, -0.4, 1.2], "city": ["rome", "oslo", "lima"]}).to_csv(tmp_path / "t.csv", index=False)
    spec = file_spec(f"{tmp_path / 'citymodel.py'}:make", data=str(tmp_path / "t.csv"))
    with pytest.raises(InputError, match=r"text/categorical column\(s\) \['city'\]"):
        spec.build()
