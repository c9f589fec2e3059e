"""rev47t: fractional masks on a DataFrame with categorical columns were rounded silently.

A categorical column is coded as integers (in order of first appearance) and the model is
called on the decoded values; removal swaps a whole value for the baseline's. A fractional
mask (``method="sobol"``) blends two codes, ``b + z (x - b)``, and the decoder rounded it: with
codes nice = 0, lyon = 1, paris = 2, explaining "nice" against the baseline "paris" fed the
model "lyon" (a category neither the input nor the baseline holds) in 126 of the 253 rows of
sample 0, and Sobol indices of that other game were returned. Infidelity's gaussian
perturbations were already refused (faithfulness._refuse_fractional_on_categorical); now the
decoder refuses any code that is not a whole category, on every call.

Truths: the model called by hand on every coalition of the two columns (binary methods still
run and agree with enumeration).
"""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np
import pytest

import tribute
from tribute.errors import InputError

pd = pytest.importorskip("pandas")

_PRICE = {"paris": 0.0, "lyon": 10.0, "nice": 1.0}


class _Recorder:
    """``city`` price times ``(1 + x)``; records the cities it was called on."""

    def __init__(self) -> None:
        self.cities: list[str] = []

    def __call__(self, df: Any) -> np.ndarray:
        self.cities.extend(str(c) for c in df["city"])
        price = df["city"].map(_PRICE).astype(float).to_numpy()
        return (price * (1.0 + df["x"].to_numpy(dtype=float)))[:, None]


def _frame(dtype: str) -> Any:
    x = pd.DataFrame({"city": ["nice", "lyon", "paris"], "x": [1.0, 2.0, 3.0]})
    if dtype == "category":
        x["city"] = x["city"].astype("category")
    return x


@pytest.mark.parametrize("dtype", ["object", "category"])
@pytest.mark.parametrize("rows", [1, 3])
def test_sobol_on_a_categorical_column_is_refused(dtype: str, rows: int) -> None:
    model = _Recorder()
    base = pd.Series({"city": "paris", "x": 0.0})
    with pytest.raises(InputError, match=r"column 'city' is categorical.*fraction of a category"):
        tribute.explain(model, _frame(dtype).iloc[:rows], method="sobol", baseline=base, budget=64,
                        seed=0, progress=False)
    if rows == 1:  # sample "nice" against "paris": only those two may ever reach the model
        assert set(model.cities) <= {"nice", "paris"}


def _hand_shapley(row: Any, base: Any) -> list[float]:
    cols = ["city", "x"]
    v: dict[tuple[int, ...], float] = {}
    for s in product((0, 1), repeat=2):
        vals = {c: (row[c] if s[i] else base[c]) for i, c in enumerate(cols)}
        v[s] = _PRICE[str(vals["city"])] * (1.0 + float(vals["x"]))
    phi_city = 0.5 * ((v[(1, 0)] - v[(0, 0)]) + (v[(1, 1)] - v[(0, 1)]))
    phi_x = 0.5 * ((v[(0, 1)] - v[(0, 0)]) + (v[(1, 1)] - v[(1, 0)]))
    return [phi_city, phi_x]


@pytest.mark.parametrize("dtype", ["object", "category"])
@pytest.mark.parametrize("method", ["exact_shapley", "kernel_shap", "permutation_shapley"])
def test_binary_methods_on_a_categorical_column_still_match_enumeration(dtype: str, method: str) -> None:
    x = _frame(dtype)
    base = pd.Series({"city": "paris", "x": 0.0})
    kw: dict[str, Any] = {} if method == "exact_shapley" else {"budget": 64}
    model = _Recorder()
    attr = tribute.explain(model, x, method=method, baseline=base, seed=0, progress=False, **kw)
    truth = np.array([_hand_shapley(x.iloc[i], base) for i in range(3)])
    np.testing.assert_allclose(np.asarray(attr.values), truth, rtol=0, atol=1e-9)
    assert set(model.cities) <= {"nice", "lyon", "paris"}


def test_a_background_of_categories_still_runs_binary_methods() -> None:
    x = _frame("object")
    bg = pd.DataFrame({"city": ["paris", "lyon"], "x": [0.0, 0.5]})
    model = _Recorder()
    attr = tribute.explain(model, x.iloc[:1], method="exact_shapley", baseline=tribute.Background(bg),
                           progress=False)
    truth = np.mean([_hand_shapley(x.iloc[0], bg.iloc[j]) for j in range(2)], axis=0)
    np.testing.assert_allclose(np.asarray(attr.values)[0], truth, rtol=0, atol=1e-9)
