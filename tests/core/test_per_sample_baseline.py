"""A baseline with as many rows as the batch: one per sample, or a background set of that size.

For tables (numpy/DataFrame ``batch x features``) a plain array cannot say which it is: it is
read as one baseline per sample (as for tensors, Captum's convention) with a warning, and
``tribute.PerSample`` / ``tribute.Background`` say it explicitly.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError

W = np.array([1.5, -2.0, 0.5])


def f(z: np.ndarray) -> np.ndarray:
    return np.asarray(z, dtype=np.float64) @ W + np.asarray(z, dtype=np.float64)[:, 0] ** 2


def _terms(z: np.ndarray) -> np.ndarray:
    """The model's additive terms, one column per feature."""
    return np.column_stack([W[0] * z[:, 0] + z[:, 0] ** 2, W[1] * z[:, 1], W[2] * z[:, 2]])


def _truth(x: np.ndarray, base_rows: np.ndarray) -> np.ndarray:
    """Exact Shapley values of this additive model against one baseline row per sample."""
    return _terms(x) - _terms(base_rows)


def test_a_plain_table_as_long_as_the_batch_warns_and_is_read_per_sample():
    rng = np.random.default_rng(0)
    x, rows = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    with pytest.warns(UserWarning, match=r"baseline has 4 rows, as many as the inputs.*"
                                         r"tribute.Background.*tribute.PerSample"):
        plain = tribute.explain(f, x, method="exact_shapley", baseline=rows)
    np.testing.assert_allclose(plain.values, _truth(x, rows), atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        marked = tribute.explain(f, x, method="exact_shapley", baseline=tribute.PerSample(rows))
        as_set = tribute.explain(f, x, method="exact_shapley", baseline=tribute.Background(rows))
    np.testing.assert_array_equal(marked.values, plain.values)
    # a set: each feature's term minus its mean over all four rows
    np.testing.assert_allclose(as_set.values, _terms(x) - _terms(rows).mean(0), atol=1e-12)


def test_tensors_images_and_other_lengths_do_not_warn():
    rng = np.random.default_rng(1)
    x, rows = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tribute.explain(lambda t: t @ torch.as_tensor(W), torch.as_tensor(x), method="feature_ablation",
                        baseline=torch.as_tensor(rows))  # tensors: Captum's convention, no warning
        tribute.explain(f, x, method="feature_ablation", baseline=rng.normal(size=(6, 3)))  # a set
        tribute.explain(f, x[:1], method="feature_ablation", baseline=rows[:1])  # one sample
        tribute.explain(f, x, method="feature_ablation", baseline=rows[0])  # one row for all


def test_per_sample_marker_checks_its_rows_and_splits_over_inputs():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3))
    with pytest.raises(InputError, match=r"PerSample has shape \(3, 3\); expected one row per sample, \(4, \*\(3,\)\)"):
        tribute.explain(f, x, method="feature_ablation", baseline=tribute.PerSample(x[:3]))
    a, b = rng.normal(size=(4, 2)), rng.normal(size=(4, 3))
    g = lambda u, v: u.sum(1) * 2.0 + v @ torch.as_tensor(W)  # noqa: E731
    ta, tb = torch.as_tensor(a), torch.as_tensor(b)
    ra, rb = torch.zeros(4, 2, dtype=torch.float64), torch.as_tensor(rng.normal(size=(4, 3)))
    plain = tribute.explain(g, (ta, tb), method="feature_ablation", baseline=(ra, rb))
    marked = tribute.explain(g, (ta, tb), method="feature_ablation", baseline=tribute.PerSample((ra, rb)))
    for p, m in zip(plain.values, marked.values):
        torch.testing.assert_close(p, m)
    torch.testing.assert_close(marked.values[1], torch.as_tensor(W) * (tb - rb))
    with pytest.raises(InputError, match="PerSample for 2 inputs needs a tuple of 2 arrays"):
        tribute.explain(g, (ta, tb), method="feature_ablation", baseline=tribute.PerSample(ra))


def test_a_dataset_job_slices_a_per_sample_marker_per_shard(tmp_path):
    rng = np.random.default_rng(3)
    x, rows = rng.normal(size=(10, 3)), rng.normal(size=(10, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        job = tribute.explain_dataset(f, x, out=tmp_path / "o", method="exact_shapley",
                                      baseline=tribute.PerSample(rows), shard_size=4, progress=False)
    np.testing.assert_allclose(job.values, _truth(x, rows), atol=1e-12)


def test_a_dataset_job_warns_once_for_a_plain_per_row_table(tmp_path):
    rng = np.random.default_rng(4)
    x, rows = rng.normal(size=(10, 3)), rng.normal(size=(10, 3))
    with pytest.warns(UserWarning, match="baseline has 10 rows, as many as the data rows") as got:
        job = tribute.explain_dataset(f, x, out=tmp_path / "o", method="exact_shapley",
                                      baseline=rows, shard_size=4, progress=False)
    assert sum("baseline has" in str(w.message) for w in got) == 1  # not once per shard
    np.testing.assert_allclose(job.values, _truth(x, rows), atol=1e-12)


def test_integer_id_tables_do_not_warn():
    ids, pads = np.arange(12).reshape(4, 3), np.zeros((4, 3), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tribute.explain(lambda z: np.asarray(z, dtype=float).sum(1), ids, method="feature_ablation",
                        baseline=pads)


def test_per_sample_of_a_scalar_is_refused():
    with pytest.raises(InputError, match=r"PerSample\(0.0\) holds no rows"):
        tribute.explain(f, np.ones((3, 3)), method="feature_ablation", baseline=tribute.PerSample(0.0))
