"""aud49o: ``explain``'s ``groups=`` column lists and ``Background`` weights, against closed forms.

- A list of equally long lists of column positions (``[[0, 1], [2, 3]]``, ``[[0], [1], ...]``),
  a documented spelling of column groups, was read as an integer mask of shape ``(k, m)`` and
  refused for its shape; ``[[0, 1, 2, 3]]`` (one group of every column) on one sample was read
  as a per-sample mask that made every column its own player (4 credits instead of one).
- ``Background`` weights whose sum overflows (three weights of 1e308) were divided by ``inf``:
  every row weighed 0 and the credits were those of no background at all.

Truths: a linear model ``f(x) = x @ w`` is additive, so a group's Shapley value (and its
ablation credit) is ``sum_{j in group} w_j (x_j - E_w[b_j])`` with the background mean weighted
by the normalised weights, computed here in numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import InputError

W = np.array([1.0, -2.0, 3.0, 0.5])


def _f(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) @ W


def _group_truth(x: np.ndarray, base: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    per = W * (x - base)  # batch x columns: each column's additive credit
    return np.stack([per[:, g].sum(1) for g in groups], axis=1)


POSITION_LISTS = [
    [[0, 1], [2, 3]],
    [[0], [1], [2], [3]],
    [[0, 1, 2, 3]],  # one group of every column
    [[3, 2, 1, 0]],
    [[2, 0], [3, 1]],
    [(0, 1), (2, 3)],
    [[np.int64(0), np.int64(1)], [np.int64(2), np.int64(3)]],
]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("method", ["exact_shapley", "kernel_shap", "feature_ablation"])
@pytest.mark.parametrize("groups", POSITION_LISTS, ids=[str(g) for g in POSITION_LISTS])
def test_equal_length_position_lists_are_column_groups(groups: Any, method: str, batch: int) -> None:
    rs = np.random.RandomState(batch)
    x = rs.randn(batch, 4)
    base = rs.randn(4)
    cols = [[int(c) for c in g] for g in groups]
    if batch == 1 and len(groups) == 1:
        # one sample: [[every column]] is also the (1, 4) per-sample mask, refused as ambiguous
        # (rev49o); the dict spelling is one group
        with pytest.raises(InputError, match="ambiguous"):
            tribute.explain(_f, x, method, baseline=base, groups=groups, progress=False)
        groups = {"+".join(f"x{c}" for c in cols[0]): cols[0]}
    attr = tribute.explain(_f, x, method, baseline=base, groups=groups, progress=False)
    truth = _group_truth(x, base, cols)
    assert np.asarray(attr.values).shape == truth.shape
    np.testing.assert_allclose(np.asarray(attr.values), truth, rtol=1e-10, atol=1e-12)
    assert attr.player_names == ["+".join(f"x{c}" for c in g) for g in cols]


def test_position_lists_on_a_dataframe_and_a_tensor() -> None:
    pd = pytest.importorskip("pandas")
    rs = np.random.RandomState(0)
    x = rs.randn(1, 4)
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    attr = tribute.explain(_f, frame, "exact_shapley", baseline=np.zeros(4), groups=[[0, 1], [2, 3]],
                           progress=False)
    assert attr.player_names == ["a+b", "c+d"]
    np.testing.assert_allclose(np.asarray(attr.values), _group_truth(x, np.zeros(4), [[0, 1], [2, 3]]),
                               rtol=1e-12)
    with pytest.raises(InputError, match="ambiguous"):  # one sample: also the (1, 4) mask (rev49o)
        tribute.explain(_f, frame, "exact_shapley", baseline=np.zeros(4), groups=[[0, 1, 2, 3]],
                        progress=False)
    lin = torch.nn.Linear(4, 1, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(W)[None])
    xt = torch.tensor(x)
    attr = tribute.explain(lin, xt, "exact_shapley", baseline=0.0, groups=[[0, 1], [2, 3]], progress=False)
    np.testing.assert_allclose(attr.values.numpy(), _group_truth(x, np.zeros(4), [[0, 1], [2, 3]]),
                               rtol=1e-12)


@pytest.mark.parametrize("case", range(6))
def test_integer_masks_are_still_masks(case: int) -> None:
    """Neighbours that are integer masks keep their reading: a flat mask (list, array, tensor),
    per-sample masks as arrays and as nested lists that are not column lists, and a nested-list
    mask of 2 x 2 images (a 3-D input: never column lists)."""
    rs = np.random.RandomState(case)
    if case == 5:  # images (batch, 2, 2): the nested list is a mask of one image
        x = rs.randn(2, 2, 2)
        img = lambda z: np.asarray(z, dtype=np.float64).reshape(len(z), 4) @ W  # noqa: E731
        attr = tribute.explain(img, x, "exact_shapley", baseline=0.0, groups=[[0, 1], [1, 0]],
                               progress=False)
        per = W * x.reshape(2, 4)
        truth = np.stack([per[:, [0, 3]].sum(1), per[:, [1, 2]].sum(1)], 1)
        np.testing.assert_allclose(np.asarray(attr.values), truth, rtol=1e-12, atol=1e-14)
        return
    x = rs.randn(2, 4)
    masks: list[Any] = [[0, 0, 1, 1], np.array([0, 1, 1, 0]), torch.tensor([1, 0, 0, 1]),
                        np.array([[0, 0, 1, 1], [0, 1, 1, 0]]), [[0, 0, 1, 1], [1, 1, 0, 0]]]
    mask = masks[case]
    attr = tribute.explain(_f, x, "exact_shapley", baseline=0.0, groups=mask, progress=False)
    m = np.broadcast_to(np.asarray(mask), (2, 4))
    per = W * x
    truth = np.stack([[per[i, m[i] == k].sum() for k in range(2)] for i in range(2)])
    np.testing.assert_allclose(np.asarray(attr.values), truth, rtol=1e-12, atol=1e-14)


def test_an_empty_group_or_a_column_listed_twice_is_named() -> None:
    x = np.random.RandomState(0).randn(2, 4)
    with pytest.raises(InputError, match="group 'a' has no columns"):
        tribute.explain(_f, x, "exact_shapley", baseline=0.0, groups={"a": [], "b": [0, 1, 2, 3]},
                        progress=False)
    with pytest.raises(InputError, match="group 1 has no columns"):
        tribute.explain(_f, x, "exact_shapley", baseline=0.0, groups=[[0, 1, 2, 3], []], progress=False)
    with pytest.raises(InputError, match="column 0 is listed twice in group 0"):
        tribute.explain(_f, x, "exact_shapley", baseline=0.0, groups=[[0, 0, 1], [2, 3]], progress=False)
    with pytest.raises(InputError, match="column 1 is in two groups"):
        tribute.explain(_f, x, "exact_shapley", baseline=0.0, groups=[[0, 1], [1, 2, 3]], progress=False)


WEIGHTS = [
    [1e308, 1e308, 1e308],
    [1e308, 5e307, 1e308],
    [1.7e308, 0.0, 1.7e308],
    [1.0, 2.0, 3.0],
    [5e-324, 5e-324, 1e-323],
]


@pytest.mark.parametrize("method", ["exact_shapley", "kernel_shap", "feature_ablation"])
@pytest.mark.parametrize("weights", WEIGHTS, ids=[str(w) for w in WEIGHTS])
def test_background_weights_are_read_as_ratios(weights: list[float], method: str) -> None:
    rs = np.random.RandomState(1)
    x, bg = rs.randn(2, 4), rs.randn(3, 4)
    w = np.asarray(weights) / max(weights)  # the ratios, computed without overflow
    w = w / w.sum()
    truth = W * (x - (w[:, None] * bg).sum(0))
    attr = tribute.explain(_f, x, method, baseline=tribute.Background(bg, weights=weights), progress=False)
    np.testing.assert_allclose(np.asarray(attr.values), truth, rtol=1e-10, atol=1e-12)


def test_background_weights_as_tensors_and_refusals() -> None:
    rs = np.random.RandomState(2)
    x, bg = rs.randn(2, 4), rs.randn(3, 4)
    w = np.array([1.0, 2.0, 5.0])
    truth = W * (x - (w[:, None] * bg).sum(0) / w.sum())
    for given in (torch.tensor(w), torch.tensor(w, dtype=torch.bfloat16), w.astype(np.float32), w.tolist()):
        attr = tribute.explain(_f, x, "exact_shapley", baseline=tribute.Background(bg, weights=given),
                               progress=False)
        np.testing.assert_allclose(np.asarray(attr.values), truth, rtol=1e-6, atol=1e-12)
    with pytest.raises(InputError, match="Background weights='ab' are not numbers"):
        tribute.explain(_f, x, "exact_shapley", baseline=tribute.Background(bg, weights="ab"), progress=False)
    for bad in ([1.0, -1.0, 1.0], [1.0, float("nan"), 1.0], [0.0, 0.0, 0.0], [float("inf"), 1.0, 1.0]):
        with pytest.raises(InputError, match="finite, non-negative and not all zero"):
            tribute.explain(_f, x, "exact_shapley", baseline=tribute.Background(bg, weights=bad),
                            progress=False)


def test_a_boolean_index_survives_save_and_load(tmp_path: Any) -> None:
    """A DataFrame's boolean index came back from ``load`` as the strings "True" / "False"
    (``to_pandas`` rows then differ from the saved result's); ints, floats and strings stay."""
    pd = pytest.importorskip("pandas")
    x = np.random.RandomState(3).randn(3, 4)
    for index in ([True, False, True], [np.True_, np.False_, np.True_], [1, 2, 3], ["1", "2", "3"],
                  [0.5, 1.5, 2.5], ["a", 1, True]):
        frame = pd.DataFrame(x, columns=["a", "b", "c", "d"], index=pd.Index(index, dtype=object))
        attr = tribute.explain(_f, frame, "exact_shapley", baseline=np.zeros(4), progress=False)
        back = tribute.Attribution.load(attr.save(tmp_path / "a.npz"))
        assert [(type(v), v) for v in back.index] == [(type(bool(v)) if isinstance(v, np.bool_) else type(v),
                                                      v) for v in index]
        assert back.to_pandas().equals(attr.to_pandas())
        assert list(back.to_pandas().index) == list(attr.to_pandas().index)
