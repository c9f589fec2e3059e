"""PerSample everywhere a baseline is accepted: frames, polars, lists, dataset jobs (review rev32b)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import tribute
from tribute.errors import InputError
from tribute.metrics import evaluate

W = np.array([1.5, -2.0, 0.5])


def lin(z):
    return np.asarray(z, dtype=np.float64) @ W


def lin2(p, q):
    return np.asarray(p, dtype=float) @ W[:2] + np.asarray(q, dtype=float) @ np.array([0.5, 1.0, -1.0])


def _frames(rows=4):
    rng = np.random.default_rng(0)
    return (pd.DataFrame(rng.normal(size=(rows, 3)), columns=list("abc")),
            pd.DataFrame(rng.normal(size=(rows, 3)), columns=list("abc")))


def test_per_sample_frame_with_other_column_order_is_refused():
    x, rows = _frames()
    with pytest.raises(InputError, match="baseline has columns"):
        tribute.explain(lin, x, method="exact_shapley", baseline=tribute.PerSample(rows[["c", "b", "a"]]))


def test_per_sample_frame_with_categorical_columns():
    x, rows = _frames()
    x["k"], rows["k"] = pd.Categorical(list("uvuv")), pd.Categorical(list("vuvu"))

    def f(z):
        return z[["a", "b", "c"]].to_numpy(float) @ W + 3.0 * (z["k"].astype(str) == "u").to_numpy()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = tribute.explain(f, x, method="exact_shapley", baseline=rows)
    marked = tribute.explain(f, x, method="exact_shapley", baseline=tribute.PerSample(rows))
    np.testing.assert_array_equal(marked.values, plain.values)


def test_reexplained_per_sample_polars_and_list_baselines():
    pl = pytest.importorskip("polars")
    x, rows = _frames()
    attr = tribute.explain(lin, x, method="exact_shapley", baseline=tribute.PerSample(rows))
    want = evaluate(lin, x, attr, metric="avg_sensitivity", baseline=tribute.PerSample(rows), n_samples=3).scores
    xp, rp = pl.from_pandas(x), pl.from_pandas(rows)
    got = evaluate(lin, xp, attr, metric="avg_sensitivity", baseline=tribute.PerSample(rp), n_samples=3).scores
    np.testing.assert_allclose(got, want, rtol=1e-12)
    rng = np.random.default_rng(1)
    a, b, pa, pb = (rng.normal(size=(4, k)) for k in (2, 3, 2, 3))
    attr2 = tribute.explain(lin2, (a, b), method="exact_shapley", baseline=tribute.PerSample((pa, pb)))
    want2 = evaluate(lin2, (a, b), attr2, metric="avg_sensitivity", baseline=(pa, pb), n_samples=3).scores
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got2 = evaluate(lin2, (a, b), attr2, metric="avg_sensitivity", baseline=[pa, pb], n_samples=3).scores
    np.testing.assert_allclose(got2, want2, rtol=1e-12)


def test_dataset_jobs_slice_frame_and_list_baselines(tmp_path):
    x, rows = _frames(10)
    direct = tribute.explain(lin, x, method="exact_shapley", baseline=tribute.PerSample(rows)).flat()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = tribute.explain_dataset(lin, x, tmp_path / "df", method="exact_shapley", baseline=rows,
                                      shard_size=4, progress=False).flat()
    np.testing.assert_array_equal(got, direct)
    rng = np.random.default_rng(2)
    a, b, pa, pb = (rng.normal(size=(10, k)) for k in (2, 3, 2, 3))
    want = tribute.explain(lin2, (a, b), method="exact_shapley", baseline=tribute.PerSample((pa, pb))).flat()
    for i, base in enumerate(([pa, pb], tribute.PerSample([pa, pb]))):
        got = tribute.explain_dataset(lin2, (a, b), tmp_path / f"l{i}", method="exact_shapley", baseline=base,
                                      shard_size=4, progress=False).flat()
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n", [9, 12])
def test_dataset_jobs_refuse_per_sample_rows_of_another_length(tmp_path, n):
    x, _ = _frames(10)
    base = tribute.PerSample(np.random.default_rng(3).normal(size=(n, 3)))
    with pytest.raises(InputError, match=rf"PerSample has shape \({n}, 3\).*10 rows"):
        tribute.explain_dataset(lin, x.to_numpy(), tmp_path / "o", method="exact_shapley", baseline=base,
                                shard_size=4, progress=False)
    assert not list((tmp_path / "o").glob("shards/*.npz"))  # refused before any shard ran


def test_dataset_jobs_read_list_and_mixed_tuple_baselines_as_a_single_call(tmp_path):
    # review rev32c: a single-input job read a list of per-row baselines as a background set in
    # each shard (2.5 off), refused PerSample(list) ("shape ()"), and a tuple mixing a scalar or
    # one row for one input with per-row rows for another read those rows as a background set
    rng = np.random.default_rng(4)
    x, rows = rng.normal(size=(10, 3)), rng.normal(size=(10, 3))
    want = tribute.explain(lin, x, method="exact_shapley", baseline=tribute.PerSample(rows)).flat()
    for i, base in enumerate((rows.tolist(), tribute.PerSample(rows.tolist()))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = tribute.explain_dataset(lin, x, tmp_path / f"s{i}", method="exact_shapley", baseline=base,
                                          shard_size=4, progress=False).flat()
        np.testing.assert_allclose(got, want, rtol=1e-12)
    a, b, pb = (rng.normal(size=(10, k)) for k in (2, 3, 3))
    for i, first in enumerate((0.0, a.mean(0))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want2 = tribute.explain(lin2, (a, b), method="exact_shapley", baseline=(first, pb)).flat()
            got2 = tribute.explain_dataset(lin2, (a, b), tmp_path / f"m{i}", method="exact_shapley",
                                           baseline=(first, pb), shard_size=4, progress=False).flat()
        np.testing.assert_allclose(got2, want2, rtol=1e-12)
