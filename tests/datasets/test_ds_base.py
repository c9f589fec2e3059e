"""Dataset container, registry and generic properties of every registered dataset."""

from __future__ import annotations

import numpy as np
import pytest

import tribute.datasets as td
from tribute.datasets import Dataset

SYNTHETIC = {
    "tabular_symbolic", "tabular_symbolic_interaction", "tabular_correlated",
    "planted_images", "planted_images_texture", "difull_grid", "planted_text",
    "planted_words",
}
REAL = {"digits", "digits32", "wine", "breast_cancer", "diabetes"}


def test_available_lists_every_builder() -> None:
    assert set(td.available()) == SYNTHETIC | REAL
    assert td.available() == sorted(td.available())


@pytest.mark.parametrize("name", sorted(SYNTHETIC | REAL))
def test_make_shapes_dtypes_and_determinism(name: str) -> None:
    n = 60
    ds = td.make(name, n=n, seed=3)
    again = td.make(name, n=n, seed=3)
    assert ds.name == name
    assert len(ds) == n and ds.X.shape[0] == n and ds.y.shape == (n,)
    assert ds.X.dtype == (np.int64 if name in ("planted_text", "planted_words") else np.float32)
    assert ds.y.dtype == (np.float32 if ds.task == "regression" else np.int64)
    assert np.all(np.isfinite(ds.X))
    np.testing.assert_array_equal(ds.X, again.X)
    np.testing.assert_array_equal(ds.y, again.y)
    if name in SYNTHETIC:
        assert ds.ground_truth is not None and ds.ground_truth.shape == ds.X.shape
        np.testing.assert_array_equal(ds.ground_truth, again.ground_truth)
        assert not np.array_equal(ds.X, td.make(name, n=n, seed=4).X)
    else:
        assert ds.ground_truth is None
    if ds.task == "classification":
        assert ds.n_classes is not None and 0 <= ds.y.min() and ds.y.max() < ds.n_classes
    if ds.groups is not None:
        assert ds.groups.shape in (ds.X.shape, ds.X.shape[1:])


def test_make_unknown_name_suggests() -> None:
    with pytest.raises(KeyError, match="digits32"):
        td.make("digit32")


def test_make_passes_kwargs() -> None:
    ds = td.make("tabular_symbolic", n=10, n_relevant=2, n_noise=3)
    assert ds.X.shape == (10, 5) and ds.ground_truth is not None
    assert ds.ground_truth.sum(1).tolist() == [2] * 10


def _tiny(**kw: object) -> Dataset:
    args: dict = dict(name="t", X=np.zeros((4, 3), np.float32), y=np.zeros(4, np.int64),
                      task="classification")
    args.update(kw)
    return Dataset(**args)


@pytest.mark.parametrize(("kw", "err"), [
    ({"X": np.zeros((4, 3))}, TypeError),                       # float64 X
    ({"y": np.zeros(5, np.int64)}, ValueError),                 # wrong length
    ({"y": np.zeros(4, np.float32)}, TypeError),                # float labels
    ({"task": "ranking"}, ValueError),
    ({"ground_truth": np.zeros((4, 2), bool)}, ValueError),
    ({"groups": np.zeros((3,), np.float32)}, TypeError),
    ({"groups": np.zeros((2,), np.int64)}, ValueError),
    ({"feature_names": ["a", "b"]}, ValueError),
    ({"meta": {"per_sample_keys": ("box",), "box": np.zeros(3)}}, ValueError),
])
def test_dataset_validation(kw: dict, err: type[Exception]) -> None:
    with pytest.raises(err):
        _tiny(**kw)


def test_dataset_is_frozen() -> None:
    ds = _tiny()
    with pytest.raises(AttributeError):
        ds.name = "other"  # type: ignore[misc]


def test_subset_and_split_slice_everything() -> None:
    ds = td.planted_images(n=40, seed=1)
    train, test = ds.split(0.25, seed=0)
    assert len(train) == 30 and len(test) == 10
    both = np.concatenate([train.X, test.X])
    assert sorted(map(bytes, both)) == sorted(map(bytes, ds.X))
    sub = ds.subset(np.array([3, 1]))
    np.testing.assert_array_equal(sub.X, ds.X[[3, 1]])
    np.testing.assert_array_equal(sub.meta["pattern_box"], ds.meta["pattern_box"][[3, 1]])
    assert sub.ground_truth is not None and ds.ground_truth is not None
    np.testing.assert_array_equal(sub.ground_truth, ds.ground_truth[[3, 1]])
    assert sub.groups is ds.groups  # shared (C × H × W) map is not sliced
    with pytest.raises(ValueError, match="test_fraction"):
        ds.split(1.5)


@pytest.mark.parametrize(("n", "fraction"), [(4, 0.9), (10, 0.97), (2, 0.5), (3, 0.01)])
def test_split_never_leaves_a_part_empty(n: int, fraction: float) -> None:
    # round(0.9 * 4) == 4 used to put every sample in the test part and none in the train part
    train, test = td.make("wine", n=n).split(fraction, seed=0)
    assert len(train) >= 1 and len(test) >= 1 and len(train) + len(test) == n


def test_split_of_one_sample_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        td.make("wine", n=1).split(0.5)


def test_fingerprint_tracks_content() -> None:
    a = td.tabular_symbolic(n=20, seed=0)
    assert a.fingerprint() == td.tabular_symbolic(n=20, seed=0).fingerprint()
    assert a.fingerprint() != td.tabular_symbolic(n=20, seed=1).fingerprint()
    assert a.fingerprint() != a.subset(slice(0, 19)).fingerprint()
