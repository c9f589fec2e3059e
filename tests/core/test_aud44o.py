"""aud44o: ``tribute.explain``'s target and the result file.

* A 0-d float array or tensor target that is not a whole number (``np.array(1.5)``,
  ``torch.tensor(2.7)``) was cast with ``int()``: class 1 / 2 was explained, silently, where a
  1-D array holding 1.5 is refused; a 0-d ``np.array(True)`` explained class 1 where ``True``
  is refused; ``np.array(nan)`` failed with a bare ``ValueError``. A float scalar ``1.0`` was
  refused although ``np.array(1.0)`` and ``[1.0]`` are read as class 1: whole floats are read
  the same way now. A ``(batch, 0)`` target gave values with an empty target axis.
* ``Attribution.save`` wrote arrays inside a dict or list of ``extra`` as the text
  ``"<array shape=[100, 1]>"`` under stringified keys: ``joint_shapley``'s ``extra["joint"]``
  (``{(0, 1): array}``) came back from ``load`` as ``{"(0, 1)": "<array shape=[100, 1]>"}``.
  An object array in ``extra`` was pickled by numpy, and ``load`` (no pickle) refused the file.

Truths: a linear model's feature-ablation credits ``w_jk (x_j - b_j)`` in closed form; joint
Shapley values of a set ``T`` by enumerating the ``2^n`` coalitions in numpy
(``J_T = sum_{S in N minus T} q_|S| [v(S + T) - v(S)]``, Harris, Pymar & Rowat 2022, with the
weights ``q`` computed here from their definition).
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError

W = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0], [2.0, 0.0, 1.5], [-0.5, 1.0, 2.0]])  # 4 x 3


def _linear(x: Any) -> np.ndarray:
    out: np.ndarray = np.asarray(x, dtype=np.float64) @ W
    return out


def _explain(target: Any) -> tribute.Attribution:
    x = np.arange(8.0).reshape(2, 4) / 4.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tribute.explain(_linear, x, method="feature_ablation", target=target, baseline=0.0)


@pytest.mark.parametrize("target", [np.array(1.5), torch.tensor(2.7), np.array(np.nan),
                                    np.array(True), torch.tensor(True), 1.5, float("nan")],
                         ids=["np1.5", "torch2.7", "npnan", "np-true", "torch-true", "float1.5", "nan"])
def test_a_scalar_target_that_is_no_class_index_is_refused(target: Any) -> None:
    with pytest.raises(InputError, match=r"target=.* must hold integer class indices"):
        _explain(target)


@pytest.mark.parametrize("target, k", [(1.0, 1), (np.float64(2.0), 2), (np.float32(0.0), 0),
                                       (np.array(1.0), 1), (torch.tensor(2.0), 2)])
def test_a_whole_float_target_explains_that_class(target: Any, k: int) -> None:
    x = np.arange(8.0).reshape(2, 4) / 4.0
    attr = _explain(target)
    np.testing.assert_allclose(attr.values, x * W[:, k], rtol=0, atol=1e-12)
    assert attr.targets is not None and np.asarray(attr.targets).ravel().tolist() == [k, k]


def test_a_target_beyond_int64_is_named_as_given() -> None:
    with pytest.raises(InputError, match=r"class index 1e\+20, out of range"):
        _explain(np.array([1e20, 0.0]))


@pytest.mark.parametrize("target", [np.zeros((2, 0), dtype=np.int64), torch.zeros(2, 0, dtype=torch.long)])
def test_an_empty_target_axis_is_refused(target: Any) -> None:
    with pytest.raises(InputError, match=r"target has shape \(2, 0\): no class for any sample"):
        _explain(target)


def test_joint_sets_survive_save_and_load(tmp_path: Path) -> None:
    """Every set's joint credits come back as saved (keys are tuples, arrays bit-identical),
    and the loaded sets are jointly efficient: summed over all sets of at most ``order``
    players they give ``f(x) - f(b)``, computed here from the model."""
    g = torch.Generator().manual_seed(44)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    x = torch.randn(40, 4, dtype=torch.float64, generator=g)  # 40 x 2 targets > 64 elements
    b = torch.randn(4, dtype=torch.float64, generator=g)
    attr = tribute.explain(net, x, method="joint_shapley", target=[0, 1], baseline=b, order=3)
    back = tribute.Attribution.load(attr.save(tmp_path / "joint"))
    saved, loaded = attr.extra["joint"], back.extra["joint"]
    sets = [t for k in (1, 2, 3) for t in itertools.combinations(range(4), k)]
    assert sorted(loaded) == sorted(saved) == sorted(sets)
    for t in sets:
        assert loaded[t].dtype == saved[t].dtype
        np.testing.assert_array_equal(loaded[t], saved[t])
    with torch.no_grad():
        rise = (net(x) - net(b[None])).numpy()  # 40 x 2
    total = sum(np.asarray(loaded[t]) for t in sets)
    np.testing.assert_allclose(total, rise, rtol=0, atol=1e-12)


def test_a_tuple_in_extra_stays_a_tuple(tmp_path: Path) -> None:
    attr = _explain(0)
    attr.extra = {"shape": (3, 4, 4), "nested": [{"a": np.arange(70.0)}, (1, "x")], "plain": [1, 2]}
    back = tribute.Attribution.load(attr.save(tmp_path / "t"))
    assert back.extra["shape"] == (3, 4, 4) and back.extra["plain"] == [1, 2]
    np.testing.assert_array_equal(back.extra["nested"][0]["a"], np.arange(70.0))
    assert back.extra["nested"][1] == (1, "x")


def test_an_object_array_in_extra_is_refused_before_writing(tmp_path: Path) -> None:
    attr = _explain(0)
    attr.extra = {"ids": np.array([1, None], dtype=object)}
    with pytest.raises(InputError, match=r"extra ids is an object array .*without pickle"):
        attr.save(tmp_path / "o")
    assert list(tmp_path.iterdir()) == []
    attr.extra = {"words": np.array(["a", "bc"], dtype=object)}  # strings: saved as text
    back = tribute.Attribution.load(attr.save(tmp_path / "o"))
    assert back.extra["words"].tolist() == ["a", "bc"]


def test_a_dataset_job_merges_the_joint_sets_of_its_shards(tmp_path: Path) -> None:
    """Shards' ``extra["joint"]`` (a dict of per-sample arrays) are concatenated key by key
    (before: dropped from result.npz, as the shards' dicts differed; with arrays kept by
    save/load the merge compared them with ``==`` and failed)."""
    g = torch.Generator().manual_seed(7)
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    x = torch.randn(12, 4, dtype=torch.float64, generator=g)
    b = torch.randn(4, dtype=torch.float64, generator=g)
    attr = tribute.explain_dataset(net, x, out=tmp_path / "job", method="joint_shapley", target=1,
                                   baseline=b, shard_size=5, order=4, progress=False)
    joint = attr.extra["joint"]
    sets = [t for k in (1, 2, 3, 4) for t in itertools.combinations(range(4), k)]
    assert sorted(joint) == sorted(sets) and all(np.shape(joint[t]) == (12, 1) for t in sets)
    with torch.no_grad():
        rise = (net(x) - net(b[None]))[:, 1:].numpy()
    np.testing.assert_allclose(sum(np.asarray(joint[t]) for t in sets), rise, rtol=0, atol=1e-12)


class _Scaled(torch.nn.Module):
    """``(x @ w) * scale``: feature ablation credits ``w_j x_j scale`` in closed form."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return ((x @ self.w) * scale)[:, None]


@pytest.mark.parametrize("kw", [
    {"forward_args": torch.tensor([1.0, 2.0])}, {"forward_args": np.array([1.0, 2.0])},
    {"forward_args": 5}, {"forward_args": "ab"},
    {"forward_kwargs": [("scale", torch.tensor([1.0, 2.0]))]}, {"forward_kwargs": ("scale",)}],
    ids=["tensor", "array", "int", "str", "pairs", "tuple"])
def test_forward_arguments_of_the_wrong_container_are_refused_by_name(kw: dict[str, Any]) -> None:
    name = next(iter(kw))
    with pytest.raises(InputError, match=rf"{name} of type \w+ is not a"):
        tribute.explain(_Scaled(), torch.ones(2, 3, dtype=torch.float64), method="feature_ablation",
                        baseline=0.0, **kw)


def test_forward_arguments_in_a_tuple_list_or_dict_are_read_per_row() -> None:
    net = _Scaled()
    x = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]], dtype=torch.float64)
    scale = torch.tensor([2.0, -3.0], dtype=torch.float64)
    truth = (x * net.w.detach() * scale[:, None]).numpy()
    kws: list[dict[str, Any]] = [{"forward_args": (scale,)}, {"forward_args": [scale]},
                                 {"forward_kwargs": {"scale": scale}}]
    for kw in kws:
        attr = tribute.explain(net, x, method="feature_ablation", baseline=0.0, **kw)
        np.testing.assert_allclose(attr.values.numpy(), truth, rtol=0, atol=1e-12)
