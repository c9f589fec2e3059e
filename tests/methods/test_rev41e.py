"""rev41e: a first call's slow-run warning survives the deferred reference pass (eng41), and
permutation_shapley's exact path (budget >= 2^n) on component and data games.

Truths: the warning main gave (the reference pass of >= 256 inputs measures the model's
throughput before the cost check); Shapley values by brute-force enumeration of all coalitions
with hand-written ablation (component game) or direct retraining (data game).
"""

from __future__ import annotations

import itertools
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import tribute
from tribute.engine.progress import SlowRunWarning
from tribute.games.components import components


class _SlowOnce(torch.nn.Module):
    """At most 5,000 rows a second (a sleep per row); refuses to run past the reference pass."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 1).double()
        self.rows, self.limit = 0, limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        if self.rows > self.limit:
            raise RuntimeError("ran past the reference pass")
        time.sleep(2e-4 * x.shape[0])
        return self.lin(x)


def test_a_first_slow_call_still_warns_before_it_runs() -> None:
    # 300 inputs x budget 500: >= 15 s at the model's 5,000 rows/s at most. main (before eng41)
    # measured the rate on the reference pass made at build and warned; the deferred pass ran
    # after the cost check, which then knew no rate: no warning, and the call ran
    x = torch.randn(300, 8, dtype=torch.float64)
    model = _SlowOnce(limit=300)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(Exception, match="ran past the reference pass"):
            tribute.explain(model, x, method="kernel_shap", baseline=0.0, budget=500)
    slow = [str(w.message) for w in seen if issubclass(w.category, SlowRunWarning)]
    assert len(slow) == 1 and "kernel_shap: 300 input(s) x budget=500" in slow[0], slow


def test_a_memory_refusal_still_spends_no_row() -> None:
    model = _SlowOnce(limit=0)
    with pytest.raises(tribute.errors.BudgetError, match="max_memory"):
        tribute.explain(model, torch.randn(4, 8, dtype=torch.float64), method="kernel_shap",
                        baseline=0.0, budget=100000, max_memory=10000)
    assert model.rows == 0


def _brute(v: Callable[[tuple[int, ...]], np.ndarray], n: int) -> np.ndarray:
    table = {bits: v(bits) for bits in itertools.product([0, 1], repeat=n)}
    phi = np.zeros((n, *np.shape(table[(0,) * n])))
    for i in range(n):
        for bits, vb in table.items():
            if not bits[i]:
                s = sum(bits)
                w = math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n)
                phi[i] += w * (table[(*bits[:i], 1, *bits[i + 1:])] - vb)
    return np.moveaxis(phi, 0, -1)


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.fc1 = torch.nn.Linear(5, 6).double()
        self.fc2 = torch.nn.Linear(6, 3).double()
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, dtype=torch.float64, generator=g))
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        return torch.tanh(self.fc2(torch.tanh(self.fc1(x))))


def test_permutation_shapley_exact_path_on_a_component_game() -> None:
    net = _Net()
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))

    def v(bits: tuple[int, ...]) -> np.ndarray:  # zero ablation of fc1's units, by hand
        with torch.no_grad():
            h = net.fc1(x) * torch.tensor(bits, dtype=torch.float64)
            return torch.tanh(net.fc2(torch.tanh(h)))[:, [0, 2]].numpy()

    truth = _brute(v, 6)  # 3 x 2 x 6
    for budget in (None, 64):
        net.rows = 0
        attr = tribute.explain(net, x, method="permutation_shapley", players=components(net, "fc1"),
                               target=[0, 2], budget=budget)
        assert attr.extra["exact"] is True and attr.n_evals == 64 and attr.n_rows == net.rows == 3 * 64
        np.testing.assert_allclose(attr.values.numpy(), truth, rtol=0, atol=1e-12)
        assert float(attr.stderr.abs().max()) == 0.0
    sampled = tribute.explain(net, x, method="permutation_shapley", players=components(net, "fc1"),
                              target=[0, 2], budget=63)
    assert sampled.extra["exact"] is False and np.abs(sampled.values.numpy() - truth).max() > 1e-6


def test_permutation_shapley_exact_path_on_a_data_game() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
    from data_cases import ridge_case

    case = ridge_case(n=12, n_test=2)
    groups = np.arange(12) % 6

    def v(bits: tuple[int, ...]) -> np.ndarray:  # retrained directly, no bank
        idx = torch.as_tensor(np.flatnonzero(np.array(bits)[groups]), dtype=torch.long)
        with torch.no_grad():
            return case.fit(case.X[idx], case.y[idx], seed=0)(case.X_test)[:, 0].numpy()

    data = case.data(groups=groups)
    attr = tribute.explain(case.model, case.X_test, method="permutation_shapley", players=data)
    assert attr.extra["exact"] is True and attr.n_evals == 64 and data.bank.n_trained == 64
    np.testing.assert_allclose(attr.values.numpy(), _brute(v, 6), rtol=1e-9, atol=1e-11)


def test_the_bench_reads_infidelity_in_the_units_given() -> None:
    # lead's n/a (7e66f8d) is for units='auto'; with units='output' given, infidelity reads the
    # credits as asked without a warning, and the bench said n/a ("no reading predicts an output
    # change") where the metric scores them
    from tribute import bench

    suite = bench.build_suite("tiny", seed=0, cases=["difull"])
    res = bench.run(suite, methods=["saliency"], metrics=["infidelity"], references=False, log=None)
    assert [s.status for s in res.scores if s.metric == "infidelity"] == ["n/a"]
    suite.cases[0].metric_params["infidelity"] = {"units": "output"}  # the case's own setting
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        res = bench.run(suite, methods=["saliency", "vargrad"], metrics=["infidelity"], references=False,
                        log=None)
    got = {s.method: s for s in res.scores if s.metric == "infidelity"}
    assert got["saliency"].status == "ok" and got["vargrad"].status == "ok", got
    assert got["saliency"].mean >= 0 and got["vargrad"].mean >= 0
