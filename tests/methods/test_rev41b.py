"""rev41b: permutation_shapley's exhaustive path (every permutation fits the budget) on a
non-additive model with a background set and one target per sample, and the path it took
recorded in ``extra["exact"]`` (as banzhaf records its own).

Truth: the Shapley formula enumerated over every coalition in plain torch, each coalition's
value the background-weighted mean of the model's outputs (interventional removal).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

import tribute
from tribute_testing import shapley_from_table


def _model(n: int, seed: int) -> tuple[object, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)  # float64 draws: the same on every CPU
    w = torch.randn(n, 3, dtype=torch.float64, generator=g)
    x = torch.randn(3, n, dtype=torch.float64, generator=g)
    bg = torch.randn(5, n, dtype=torch.float64, generator=g)

    def f(z: torch.Tensor) -> torch.Tensor:  # interactions of every order, three outputs
        return torch.tanh(z @ w) * (1 + z[:, :1] * z[:, 1:2]) + z[:, -1:] * z[:, :1] * z[:, 2:3]

    return f, x, bg


def _brute(f: object, x: torch.Tensor, bg: torch.Tensor) -> np.ndarray:
    """Shapley values (players x outputs) of one sample."""
    n = x.shape[0]

    def v(b: tuple[int, ...]) -> np.ndarray:
        z = bg.clone()
        on = [j for j in range(n) if b[j]]
        z[:, on] = x[on]
        return f(z).mean(0).numpy()  # type: ignore[operator]

    table = {b: v(b) for b in itertools.product((0, 1), repeat=n)}
    return shapley_from_table(table, n).T  # players x outputs


def test_exhaustive_path_with_a_background_set_and_one_target_per_sample() -> None:
    f, x, bg = _model(5, seed=3)
    y = np.array([2, 0, 1])
    attr = tribute.explain(f, x, method="permutation_shapley", baseline=bg, target=y)
    truth = np.stack([_brute(f, x[b], bg)[:, y[b]] for b in range(3)])
    np.testing.assert_allclose(attr.values.numpy().reshape(3, 5), truth, rtol=0, atol=1e-12)
    assert attr.n_evals == 2 ** 5 and float(attr.stderr.abs().max()) == 0.0
    assert attr.extra["exact"] is True  # before: the path taken was not recorded
    # every output at once, another seed: the same exact values
    both = tribute.explain(f, x, method="permutation_shapley", baseline=bg, target=[0, 1, 2], seed=9)
    full = np.stack([_brute(f, x[b], bg) for b in range(3)])  # B x n x T
    np.testing.assert_allclose(both.values.numpy(), full.transpose(0, 2, 1), rtol=0, atol=1e-12)


def test_sampled_path_says_it_is_not_exact() -> None:
    f, x, _ = _model(5, seed=4)
    # lead (stop 41): 5 players are enumerated from budget 2^5 = 32 on, so sample at 31
    attr = tribute.explain(f, x[:1], method="permutation_shapley", baseline=0.0, target=0, budget=31)
    # (31 - 2) // 8 pairs; a coalition two walks share runs once (eng46): at most 26 rows
    assert attr.extra["exact"] is False and attr.n_evals <= 2 + 4 * 2 * 3
    assert float(attr.stderr.abs().max()) > 0
