"""rev50z: since aud50t a dataset job hands a model that reads a numeric table's column dtypes
the table's integer / bool / float32 columns, so the dtypes are part of the data, but the
manifest's data fingerprint did not record them. A job started on a table whose column ``a`` is
float64, interrupted, and resumed on the same values as int64 was accepted, and its shards mixed
the two readings: credits -2, -3, -3, -4 for rows 0-3 and -12, -13, -14, -12 for rows 4-7, where
either table alone gives one of the two for every row. The fingerprint now names the typed
columns' dtypes (absent when no column is typed, as before)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tribute
from tribute.errors import InputError
from tribute_testing import FrameEstimator

pd = pytest.importorskip("pandas")


class _TextBonus(FrameEstimator):
    """A user's estimator that reads column ``a`` as text: ``"5"`` scores 10 more, ``"5.0"`` not."""

    def predict(self, frame: Any) -> Any:
        bonus = np.where(frame["a"].astype(str) == "5", 10.0, 0.0)
        return frame["a"].to_numpy(dtype=np.float64) + bonus + 2.0 * frame["b"].to_numpy(dtype=np.float64)


def _tables() -> tuple[Any, Any]:
    ints = pd.DataFrame({"a": [3, 2, 2, 1, 3, 2, 1, 3], "b": np.linspace(-1.0, 1.0, 8)})
    return ints, ints.astype({"a": "float64"})


def _interrupt(out: Path) -> None:
    """Remove the second shard and the merged result, as a job killed after its first shard."""
    for p in sorted(out.rglob("*")):
        if p.is_file() and ("000001" in p.name or p.name.startswith("result")):
            p.unlink()


_KW: dict[str, Any] = {"method": "exact_shapley", "baseline": 5.0, "shard_size": 4}


def test_a_job_resumed_on_other_column_dtypes_is_refused(tmp_path: Path) -> None:
    ints, floats = _tables()
    model = _TextBonus().fit(ints)
    tribute.explain_dataset(model, floats, tmp_path / "job", **_KW)
    _interrupt(tmp_path / "job")
    # the probe rows' outputs agree (no "5" among them): only the fingerprint can tell
    with pytest.raises(InputError, match=r"data\.column_dtypes.*\"a\": \"int64\""):
        tribute.explain_dataset(model, ints, tmp_path / "job", resume=True, **_KW)


def test_a_job_resumed_on_the_same_table_still_resumes(tmp_path: Path) -> None:
    ints, _ = _tables()
    model = _TextBonus().fit(ints)
    whole = tribute.explain_dataset(model, ints, tmp_path / "whole", **_KW)
    tribute.explain_dataset(model, ints, tmp_path / "job", **_KW)
    _interrupt(tmp_path / "job")
    resumed = tribute.explain_dataset(model, ints, tmp_path / "job", resume=True, **_KW)
    np.testing.assert_array_equal(np.asarray(resumed.values), np.asarray(whole.values))
    # the integer table's credits are -10 off the float table's: the dtypes matter here
    np.testing.assert_array_equal(np.asarray(whole.values)[:, 0], [-12, -13, -13, -14, -12, -13, -14, -12])


def test_an_untyped_table_fingerprint_has_no_dtype_entry() -> None:
    _, floats = _tables()
    fp = tribute.jobs.data.as_dataset(floats).fingerprint()
    assert "column_dtypes" not in fp
    fp_int = tribute.jobs.data.as_dataset(_tables()[0]).fingerprint()
    assert fp_int["column_dtypes"] == {"a": "int64"}


def _text_model(frame: Any) -> Any:
    bonus = np.where(frame["a"].astype(str) == "5", 10.0, 0.0)
    return frame["a"].to_numpy(dtype=np.float64) + bonus + (frame["c"] == "x").to_numpy(dtype=np.float64)


def test_a_text_table_job_resumed_on_other_number_dtypes_is_refused(tmp_path: Path) -> None:
    # the frame of a table with text columns reaches the model as it is: its number columns'
    # dtypes matter the same way (mixed shards before: -2, -3, -3, -4, -12, -13, -14, -12)
    ints = pd.DataFrame({"a": [3, 2, 2, 1, 3, 2, 1, 3], "c": list("xyxyxyxy")})
    base = pd.DataFrame({"a": [5.0], "c": ["y"]})
    kw: dict[str, Any] = {"method": "exact_shapley", "shard_size": 4, "baseline": base}
    tribute.explain_dataset(_text_model, ints.astype({"a": "float64"}), tmp_path / "job", **kw)
    _interrupt(tmp_path / "job")
    with pytest.raises(InputError, match=r"data\.column_dtypes"):
        tribute.explain_dataset(_text_model, ints, tmp_path / "job", resume=True, **kw)
