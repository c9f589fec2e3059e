"""A dataset job on a classifier whose classes are not 0..K-1 names its targets by class, as a single
call's ``to_pandas()`` does (aud39o): ``summary.json`` and ``result.parquet`` said "target 2" for
class 5 of ``classes_ = [0, 2, 5]`` (column 2 -- the NAME of another class)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tribute

pytest.importorskip("sklearn")


def _classifier(labels: np.ndarray):  # -> LogisticRegression
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 4))
    y = labels[np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5])]
    return LogisticRegression(max_iter=500).fit(X, y), X


@pytest.mark.parametrize("labels", [np.array([0, 2, 5]), np.array(["x", "y", "z"])])
def test_a_job_names_the_classes_it_explains(tmp_path: Path, labels: np.ndarray) -> None:
    clf, X = _classifier(labels)
    kw = dict(method="exact_shapley", output="prob", baseline=X.mean(0))
    job = tribute.explain_dataset(clf, X[:9], out=tmp_path / "o", shard_size=4, progress=False, **kw)
    single = tribute.explain(clf, X[:9], **kw)  # per-row predicted class
    np.testing.assert_allclose(job.values, single.values, rtol=1e-12, atol=1e-15)
    columns = np.asarray(single.targets).reshape(-1)
    want = [labels[c].item() for c in columns]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    slot = summary["credits"][0]
    assert slot["targets"] == sorted(set(columns.tolist()))
    assert slot["classes"] == [labels[c].item() for c in slot["targets"]]
    for entry in slot.get("by_target", []):
        assert entry["class"] == labels[entry["target"]].item()
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.read_parquet(tmp_path / "o" / "result.parquet")
    assert frame["target"].tolist() == want
    assert frame["target_column"].tolist() == columns.tolist()
    assert job.extra["class_labels"] == labels.tolist()


def test_a_job_on_classes_0_to_k_keeps_its_columns(tmp_path: Path) -> None:
    clf, X = _classifier(np.array([0, 1, 2]))
    tribute.explain_dataset(clf, X[:5], out=tmp_path / "o", method="exact_shapley", output="prob",
                            baseline=X.mean(0), progress=False)
    slot = json.loads((tmp_path / "o" / "summary.json").read_text())["credits"][0]
    assert "classes" not in slot
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    assert "target_column" not in pd.read_parquet(tmp_path / "o" / "result.parquet").columns
