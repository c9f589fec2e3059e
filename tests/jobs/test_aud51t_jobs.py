"""aud51t: a dataset job's credits equal one tribute.explain call on the same rows, dtype
included: a float32 module on float64 rows got float32 credits from a job (the shards cast the
rows to the module's dtype) and float64 from one call, 5e-9 apart. And a numeric background
table (``--baseline background:ROWS.csv``) keeps its own integer columns, so a model that reads
dtypes is not refused a background of data rows (a float64 1.0 for the data's integer 1 has two
readings and is refused since aud51t)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tribute

pd = pytest.importorskip("pandas")


@pytest.mark.parametrize("source", ["array", "frame"])
def test_a_float32_module_on_float64_rows_gives_one_calls_credits(tmp_path: Path, source: str) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x = np.random.default_rng(0).normal(size=(6, 4))
    data: Any = x if source == "array" else pd.DataFrame(x, columns=list("abcd"))
    base = x.mean(0)
    one = tribute.explain(model, data, method="exact_shapley", baseline=base, target=0)
    job = tribute.explain_dataset(model, data, tmp_path / "out", method="exact_shapley",
                                  baseline=base, target=0, shard_size=4)
    assert np.asarray(job.values).dtype == np.asarray(one.values).dtype == np.float64
    np.testing.assert_array_equal(np.asarray(job.values), np.asarray(one.values))
    assert next(model.parameters()).dtype == torch.float32


_FACTORY = '''
import sys
sys.path.insert(0, {tests!r})
import pandas as pd
from tribute_testing import TextReader


def make():
    return TextReader().fit(pd.read_csv({data!r}))
'''


@pytest.mark.slow
def test_a_background_csv_keeps_its_integer_columns_for_a_dtype_reader(tmp_path: Path) -> None:
    from tribute.cli import main

    df = pd.DataFrame({"a": [3, 2, 2, 1, 3, 1], "b": np.linspace(-1.0, 1.0, 6)})
    df.to_csv(tmp_path / "x.csv", index=False)
    df.iloc[[3, 4]].to_csv(tmp_path / "bg.csv", index=False)
    tests = str(Path(__file__).resolve().parents[1])
    (tmp_path / "fac.py").write_text(_FACTORY.format(tests=tests, data=str(tmp_path / "x.csv")))
    out = tmp_path / "out"
    code = main(["explain", "--model", f"{tmp_path / 'fac.py'}:make", "--data", str(tmp_path / "x.csv"),
                 "--method", "exact_shapley", "--baseline", f"background:{tmp_path / 'bg.csv'}",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    values = np.load(out / "result.npz")["values"].reshape(6, -1)
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from tribute_testing import TextReader

    one = tribute.explain(TextReader().fit(df), df, method="exact_shapley",
                          baseline=tribute.Background(df.iloc[[3, 4]]))
    np.testing.assert_array_equal(values, np.asarray(one.values))
