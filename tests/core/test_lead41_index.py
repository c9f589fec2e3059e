"""Stop 41 (lead): an Attribution of a DataFrame with a MultiIndex keeps its labels through
save / load. Before, each label was written as text (``"('x', 1)"``), so a loaded result (and a
dataset job's result.npz) could not be joined back to the data by its index levels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tribute

pd = pytest.importorskip("pandas")


def test_a_multiindex_survives_save_and_load(tmp_path: Path) -> None:
    g = np.random.default_rng(41)
    idx = pd.MultiIndex.from_tuples([("x", 1), ("x", 2), ("y", 1), ("y", 2.5)], names=["grp", "n"])
    X = pd.DataFrame(g.normal(size=(4, 3)), columns=["a", "b", "c"], index=idx)
    w = np.array([2.0, -1.0, 0.5])

    def f(x: np.ndarray) -> np.ndarray:
        return x @ w

    attr = tribute.explain(f, X, method="feature_ablation", baseline=np.zeros(3))
    attr.save(tmp_path / "a.npz")
    back = tribute.Attribution.load(tmp_path / "a.npz")
    assert back.index == list(attr.index) == [("x", 1), ("x", 2), ("y", 1), ("y", 2.5)]
    frame, loaded = attr.to_pandas(), back.to_pandas()
    assert isinstance(loaded.index, pd.MultiIndex) and loaded.index.equals(frame.index)
    np.testing.assert_array_equal(loaded.to_numpy(), frame.to_numpy())
    np.testing.assert_allclose(frame.to_numpy(), X.to_numpy() * w, rtol=1e-12)


def test_plain_labels_are_unchanged(tmp_path: Path) -> None:
    X = pd.DataFrame(np.eye(3), columns=["a", "b", "c"], index=pd.Index(["r0", "r1", "r2"]))
    attr = tribute.explain(lambda x: x.sum(1), X, method="feature_ablation", baseline=np.zeros(3))
    attr.save(tmp_path / "a.npz")
    assert tribute.Attribution.load(tmp_path / "a.npz").index == ["r0", "r1", "r2"]
