"""small41: permutation_shapley spends only what exactness needs when every permutation fits
the budget (2 players: 4 evaluations, not the default 130), and Attribution.top() names the
class a per-sample target explains.

Truths: Shapley values by brute-force enumeration of all coalitions (the weighted marginal
sum, plain numpy); the labels given as ``target=`` / the classifier's ``predict``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import tribute
from tribute_testing import shapley_from_table


def _game(n: int, seed: int) -> tuple[object, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, n, dtype=torch.float64, generator=g)
    x = torch.randn(1, n, dtype=torch.float64, generator=g)

    def f(z: torch.Tensor) -> torch.Tensor:  # pairwise interactions and an n-way product
        return ((z @ w) * z).sum(1, keepdim=True) + torch.tanh(z).prod(1, keepdim=True)

    return f, x


def _brute_shapley(f: object, x: torch.Tensor) -> np.ndarray:
    n = x.shape[1]

    def v(b: tuple[int, ...]) -> np.ndarray:
        z = torch.zeros_like(x)
        on = [j for j in range(n) if b[j]]
        z[0, on] = x[0, on]
        return np.asarray(float(f(z)))  # type: ignore[operator]

    return shapley_from_table({b: v(b) for b in itertools.product((0, 1), repeat=n)}, n)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_permutation_shapley_is_exact_and_spends_2_to_the_n_when_all_permutations_fit(n: int) -> None:
    f, x = _game(n, seed=n)
    attr = tribute.explain(f, x, method="permutation_shapley", baseline=0.0)
    np.testing.assert_allclose(attr.values.numpy()[0], _brute_shapley(f, x), rtol=0, atol=1e-12)
    # before (n=2): 130 evaluations and rows for the 4 coalitions that make the values exact
    assert attr.n_evals == 2 ** n and attr.n_rows == 2 ** n
    assert float(attr.stderr.abs().max()) == 0.0
    assert attr.extra["n_permutations"] == max(math.factorial(n), 2)


def test_permutation_shapley_two_players_any_budget_and_seed_is_the_same_exact_answer() -> None:
    f, x = _game(2, seed=7)
    truth = _brute_shapley(f, x)
    for budget, seed in ((4, 0), (6, 3), (1000, 11)):
        attr = tribute.explain(f, x, method="permutation_shapley", baseline=0.0, budget=budget, seed=seed)
        np.testing.assert_allclose(attr.values.numpy()[0], truth, rtol=0, atol=1e-12)
        assert attr.n_evals == 4 and attr.n_rows == 4


def test_permutation_shapley_samples_below_the_exhaustive_budget() -> None:
    # lead (stop 41): exact from 2^n (the coalition table), not from 2 + (n - 1) n! (every
    # permutation run): 4 players are exact from budget 16, sampled below
    f, x = _game(4, seed=4)
    attr = tribute.explain(f, x, method="permutation_shapley", baseline=0.0, budget=15)
    # (15 - 2) // 6 pairs; a coalition two walks share runs once (eng46): at most 14 rows
    assert attr.n_evals <= 2 + 3 * 2 * 2 and attr.extra["n_permutations"] == 4
    assert attr.extra["exact"] is False
    truth = _brute_shapley(f, x)
    assert np.abs(attr.values.numpy()[0] - truth).max() > 1e-9  # sampled, not enumerated
    np.testing.assert_allclose(attr.values.numpy()[0].sum(), truth.sum(), rtol=1e-12, atol=1e-12)
    exact = tribute.explain(f, x, method="permutation_shapley", baseline=0.0, budget=16)
    assert exact.n_evals == exact.n_rows == 16 and exact.extra["exact"] is True
    np.testing.assert_allclose(exact.values.numpy()[0], truth, rtol=0, atol=1e-12)
    # 6 players at the default budget (642 >= 64): exact for 64 evaluations (before: 642 sampled
    # ones, as every permutation would need 2 + 5 * 720 = 3,602)
    f6, x6 = _game(6, seed=6)
    attr6 = tribute.explain(f6, x6, method="permutation_shapley", baseline=0.0)
    assert attr6.n_evals == attr6.n_rows == 64 and float(attr6.stderr.abs().max()) == 0.0
    np.testing.assert_allclose(attr6.values.numpy()[0], _brute_shapley(f6, x6), rtol=0, atol=1e-12)
    f11, x11 = _game(11, seed=11)  # 11 players: the default budget (1,282) is below 2^11
    attr11 = tribute.explain(f11, x11, method="permutation_shapley", baseline=0.0)
    # (a coalition two sampled walks share runs once, eng46: 750 of the 1,282 rows at seed 0)
    assert attr11.n_evals <= 1282 and attr11.extra["exact"] is False and float(attr11.stderr.abs().max()) > 0


def test_top_names_the_class_of_each_rows_per_sample_target() -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = np.argmax(X[:, :3], 1)
    clf = sklearn.LogisticRegression().fit(X, y)
    attr = tribute.explain(clf, X[:6], method="feature_ablation", target=y[:6], baseline=0.0)
    assert len(set(y[:6].tolist())) > 1
    # before: {"proponents", "opponents"} only; which class row i explained was not said
    assert [attr.top(i, k=2)["target"] for i in range(6)] == y[:6].tolist()
    assert attr.top(-1)["target"] == int(y[5])
    named = sklearn.LogisticRegression().fit(X, np.array(["a", "b", "c"])[y])
    attr = tribute.explain(named, X[:6], method="feature_ablation", target="predicted", baseline=0.0)
    assert [attr.top(i)["target"] for i in range(6)] == named.predict(X[:6]).tolist()
    reg = lambda z: z.sum(1, keepdims=True)  # noqa: E731 - one output, no class
    attr = tribute.explain(reg, X[:2], method="feature_ablation", baseline=0.0)
    assert set(attr.top(0)) == {"proponents", "opponents", "target"}
