"""The Shapley accuracy benchmark's ``--skip before,baselines`` (stop 43, issue #14).

Leaving out tribute's rows that are no anchors (the singletons design, ``kernel_shap``,
``permutation_shapley``) halves the torch side's time on a loaded machine; the default row and
its error must stay.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _shapley_games import GameSpec
from bench_shapley_accuracy import BEFORE, OURS, run_tribute


def _linear_spec() -> GameSpec:
    w = np.array([[1.5, -2.0, 0.5]])
    x = np.array([[1.0, 2.0, -1.0], [0.5, -1.0, 3.0]])
    base = np.array([0.2, 0.0, 1.0])
    model = torch.nn.Linear(3, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(w))
        model.bias.fill_(0.3)
    # an additive game: phi_j = w_j (x_j - b_j) in closed form
    truth = w * (x - base[None])
    return GameSpec(name="lin3", X=x, base=base, target=np.zeros(2, dtype=np.int64), output="raw",
                    layers=[(w, np.array([0.3]), "none")], truth=truth, model=model)


def _labels(skip: frozenset[str]) -> dict[str, dict[int, tuple[Any, ...]]]:
    out: dict[str, dict[int, tuple[Any, ...]]] = {}

    def record(name: str, b: int, err: float, evals: float, per: Any = None) -> None:
        out.setdefault(name, {})[b] = (err, evals, per)

    run_tribute(_linear_spec(), [8], 1, record, skip)  # 2^3: every method exact
    return out


def test_skip_leaves_out_the_rows_that_are_no_anchors() -> None:
    full = _labels(frozenset())
    assert {OURS, BEFORE, "tribute kernel_shap", "tribute permutation_shapley"} <= set(full)
    lean = _labels(frozenset({"before", "baselines"}))
    assert OURS in lean
    assert not {BEFORE, "tribute kernel_shap", "tribute permutation_shapley"} & set(lean)
    # the default row is the same call either way, and at 2^3 evaluations the exact value
    assert lean[OURS][8][0] == full[OURS][8][0]
    assert lean[OURS][8][0] < 1e-9
