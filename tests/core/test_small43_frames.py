"""small43: a tuple of DataFrames as per-sample baselines of a multi-input model was read by
position whatever its index (a single frame is checked: aud42o / rev42d): rows in another order
explained each sample against another sample's baseline, 4.6 off. Each element is checked now.
Truth: exact Shapley of an additive model in closed form, ``w_j (x_j - b_j)`` and
``c_j (x_j^2 - b_j^2)``."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import tribute
from tribute.errors import InputError

W_A = np.array([1.0, -2.0])
C_B = np.array([0.5, 1.0, -1.0])


def _f(a: object, b: object) -> np.ndarray:
    a_, b_ = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    out: np.ndarray = (a_ @ W_A + (b_ ** 2) @ C_B)[:, None]
    return out


def _frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    ix = [10, 11, 12, 13]
    A = pd.DataFrame(rng.normal(size=(4, 2)), columns=["a0", "a1"], index=ix)
    B = pd.DataFrame(rng.normal(size=(4, 3)), columns=["b0", "b1", "b2"], index=ix)
    bA = pd.DataFrame(rng.normal(size=(4, 2)), columns=A.columns, index=ix)
    bB = pd.DataFrame(rng.normal(size=(4, 3)), columns=B.columns, index=ix)
    return A, B, bA, bB


@pytest.mark.parametrize("wrap", [True, False])
@pytest.mark.parametrize("which", [0, 1])
def test_a_tuple_of_frames_in_another_row_order_is_refused_naming_the_input(wrap: bool, which: int) -> None:
    A, B, bA, bB = _frames()
    parts = [bA, bB]
    parts[which] = parts[which].iloc[::-1]
    base = tribute.PerSample(tuple(parts)) if wrap else tuple(parts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a plain tuple with as many rows warns (per sample?)
        with pytest.raises(InputError, match=rf"baseline\[{which}\] \(of input {which}\).*another order"):
            tribute.explain(_f, (A, B), method="exact_shapley", baseline=base)


def test_aligned_frames_are_read_per_sample_as_the_closed_form() -> None:
    A, B, bA, bB = _frames()
    got = tribute.explain(_f, (A, B), method="exact_shapley", baseline=tribute.PerSample((bA, bB))).values
    np.testing.assert_allclose(np.asarray(got[0]), W_A * (A.to_numpy() - bA.to_numpy()), atol=1e-12)
    np.testing.assert_allclose(np.asarray(got[1]), C_B * (B.to_numpy() ** 2 - bB.to_numpy() ** 2), atol=1e-12)
    # the fix the message names: reindexed rows give the same credits
    rev = tribute.explain(_f, (A, B), method="exact_shapley",
                          baseline=tribute.PerSample((bA.iloc[::-1].reindex(A.index), bB.reindex(B.index)))).values
    for g, r in zip(got, rev, strict=True):
        np.testing.assert_allclose(np.asarray(r), np.asarray(g), atol=0)
