"""rev49o: review of aud49o's column lists by position.

On one sample, ``groups=[[0, 1, 2, 3]]`` (every column once, in any order) is both the (1, 4)
per-sample integer mask (``mask.tolist()``, a Captum-style feature_mask: every column its own
player) and a list of column lists holding one group of every column. BASE read it as the mask,
aud49o as one group; each is silently wrong for a user who meant the other, and no doc defines
it, so it is refused naming both readings. ``explain_dataset`` read it per shard: on one row of
data it gave 4 credits where ``explain`` gave 1, so column lists are now read against the whole
data there. Truth: ``f(x) = x @ w`` is additive, so a group's credit is ``sum_{j in g} w_j x_j``
(baseline 0), computed in numpy.
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


def _truth(x: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    per = W * x
    return np.stack([per[:, g].sum(1) for g in groups], axis=1)


def _one_sample(kind: str) -> Any:
    x = np.array([[0.3, -1.2, 0.7, 2.0]])
    if kind == "frame":
        pd = pytest.importorskip("pandas")
        return pd.DataFrame(x, columns=["a", "b", "c", "d"])
    return torch.tensor(x) if kind == "tensor" else x


@pytest.mark.parametrize("kind", ["numpy", "tensor", "frame"])
@pytest.mark.parametrize("groups", [[[0, 1, 2, 3]], [[3, 2, 1, 0]], [(1, 0, 3, 2)]])
def test_every_column_in_one_list_on_one_sample_is_refused_as_ambiguous(groups: Any, kind: str) -> None:
    x = _one_sample(kind)
    model: Any = _f
    if kind == "tensor":
        lin = torch.nn.Linear(4, 1, bias=False).double()
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(W)[None])
        model = lin
    base: Any = np.zeros((1, 4)) if kind == "frame" else 0.0
    if kind == "frame":
        base = x * 0.0
    with pytest.raises(InputError) as err:
        tribute.explain(model, x, "exact_shapley", baseline=base, groups=groups, progress=False)
    msg = str(err.value)
    assert "ambiguous" in msg and "(1, 4)" in msg and "own player" in msg and "one group" in msg
    assert "np.array(groups)" in msg and "groups={'all'" in msg
    # the two spellings the message names give the two readings
    xn = np.array([[0.3, -1.2, 0.7, 2.0]])
    one = tribute.explain(model, x, "exact_shapley", baseline=base, groups={"all": list(groups[0])},
                          progress=False)
    np.testing.assert_allclose(np.asarray(one.values).reshape(1, -1), _truth(xn, [[0, 1, 2, 3]]),
                               rtol=1e-12)
    mask = tribute.explain(model, x, "exact_shapley", baseline=base, groups=np.array(groups),
                           progress=False)
    order = np.argsort(np.asarray(groups[0]))  # player k holds the column whose id is k
    np.testing.assert_allclose(np.asarray(mask.values).reshape(1, -1), (W * xn)[:, order],
                               rtol=1e-12, atol=1e-15)


NEIGHBOURS: list[tuple[Any, list[list[int]]]] = [
    ([[0, 0, 1, 1]], [[0, 1], [2, 3]]),        # a (1, 4) mask that is no list of every column
    ([[1, 0, 0, 1]], [[1, 2], [0, 3]]),
    ([[0, 1], [2, 3]], [[0, 1], [2, 3]]),      # column lists of equal length
    ([[3, 1], [0, 2]], [[3, 1], [0, 2]]),
    ([[0], [1], [2], [3]], [[0], [1], [2], [3]]),
    ([[0, 1, 2], [3]], [[0, 1, 2], [3]]),      # ragged
    ([0, 1, 2, 3], [[0], [1], [2], [3]]),      # flat masks
    ([0, 0, 0, 0], [[0, 1, 2, 3]]),
    (np.array([[0, 1, 2, 3]]), [[0], [1], [2], [3]]),
    (torch.tensor([[3, 2, 1, 0]]), [[3], [2], [1], [0]]),
    ({"g": [0, 1, 2, 3]}, [[0, 1, 2, 3]]),
]


@pytest.mark.parametrize("case", range(len(NEIGHBOURS)))
def test_neighbours_on_one_sample_keep_their_reading(case: int) -> None:
    groups, cols = NEIGHBOURS[case]
    x = np.array([[0.3, -1.2, 0.7, 2.0]])
    attr = tribute.explain(_f, x, "exact_shapley", baseline=0.0, groups=groups, progress=False)
    np.testing.assert_allclose(np.asarray(attr.values), _truth(x, cols), rtol=1e-12, atol=1e-15)


def test_one_column_on_one_sample_is_not_ambiguous() -> None:
    x = np.array([[0.3]])
    attr = tribute.explain(lambda z: np.asarray(z, dtype=np.float64)[:, 0] * 2.0, x, "exact_shapley",
                           baseline=0.0, groups=[[0]], progress=False)
    np.testing.assert_allclose(np.asarray(attr.values), [[0.6]], rtol=1e-12)


@pytest.mark.parametrize("shard_size", [1, 2])
def test_dataset_jobs_read_column_lists_against_the_whole_data(tmp_path: Any, shard_size: int) -> None:
    x = np.array([[0.3, -1.2, 0.7, 2.0], [1.0, 0.5, -0.4, 0.1], [-2.0, 0.2, 0.9, -1.1]])
    for groups, cols in (([[0, 1, 2, 3]], [[0, 1, 2, 3]]), ([[0, 1], [2, 3]], [[0, 1], [2, 3]]),
                         ([[2], [0], [3], [1]], [[2], [0], [3], [1]])):
        out = tmp_path / f"job{shard_size}_{len(cols)}"
        attr = tribute.explain_dataset(_f, x, out=str(out), method="exact_shapley", baseline=0.0,
                                       groups=groups, shard_size=shard_size, progress=False)
        np.testing.assert_allclose(np.asarray(attr.values), _truth(x, cols), rtol=1e-12, atol=1e-15)
    # one row of data: the same ambiguity as explain on one sample, refused before any shard
    with pytest.raises(InputError, match="ambiguous"):
        tribute.explain_dataset(_f, x[:1], out=str(tmp_path / "one"), method="exact_shapley",
                                baseline=0.0, groups=[[0, 1, 2, 3]], shard_size=shard_size,
                                progress=False)
    assert not (tmp_path / "one" / "result.npz").exists()
