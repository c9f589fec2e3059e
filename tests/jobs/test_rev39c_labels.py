"""Review rev39c of the jobs' class labels (ee196f7): with several targets given as classes
(``target=[5, 0]`` of ``classes_ = [0, 2, 5]``), summary.json and result.parquet name each slot's
class next to its output column, and a resumed job (some shards, or every shard, read back from
disk) names them as the uninterrupted one does. Truth: ``classes_`` and ``predict_proba``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tribute

pytest.importorskip("sklearn")


def test_several_class_targets_are_named_per_slot_and_after_a_resume(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(39)
    X = rng.normal(size=(120, 4))
    labels = np.array([0, 2, 5])
    clf = LogisticRegression(max_iter=500).fit(X, labels[np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5])])
    kw = dict(method="exact_shapley", output="prob", baseline=X.mean(0), target=[5, 0])
    out = tmp_path / "o"
    job = tribute.explain_dataset(clf, X[:9], out=out, shard_size=4, progress=False, **kw)
    full = np.asarray(job.values).sum(-1) + np.asarray(job.base_values)  # efficiency: f(x) per slot
    np.testing.assert_allclose(full, clf.predict_proba(X[:9])[:, [2, 0]], rtol=1e-10, atol=1e-12)
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")

    def check() -> None:
        slots = json.loads((out / "summary.json").read_text())["credits"]
        assert [(s["targets"], s["classes"]) for s in slots] == [([2], [5]), ([0], [0])]
        frame = pd.read_parquet(out / "result.parquet")
        assert list(frame.columns[:5]) == ["row", "target:t0", "target:t0_column", "target:t1",
                                           "target:t1_column"]
        assert frame["target:t0"].tolist() == [5] * 9 and frame["target:t0_column"].tolist() == [2] * 9
        assert frame["target:t1"].tolist() == [0] * 9 and frame["target:t1_column"].tolist() == [0] * 9

    check()
    for lost in (["shard-000002"], []):  # one shard computed again, then none
        for name in ("result.npz", "result.parquet", "summary.json"):
            (out / name).unlink()
        for pattern in lost:
            for p in out.rglob(pattern + "*"):
                p.unlink()
        again = tribute.explain_dataset(clf, X[:9], out=out, shard_size=4, progress=False,
                                        resume=True, **kw)
        assert again.extra["class_labels"] == [0, 2, 5]
        np.testing.assert_array_equal(np.asarray(again.values), np.asarray(job.values))
        check()
