"""rev47z: lime's "no residual degrees of freedom" warning where the fit had some.

aud47e's message reads "6 distinct weighted coalitions (8 rows) leave no residual degrees of
freedom for 4 coefficients and an intercept": 6 > 5, so they do leave one. The stderr is NaN
there because a coalition is fitted exactly (leverage 1, by numpy below: the hat matrix of the
distinct coalitions with their summed weights), which the message now says; 46 of 180 calls
(4 players, alpha=0, budgets 8-12, seeds 0-59) gave the false sentence.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.errors import StderrWarning
from tribute.methods import lime as lime_module


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1)).double().eval()


def _run(budget: int, seed: int, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], np.ndarray, np.ndarray]:
    cap: dict[str, Any] = {}
    orig = lime_module._ridge_parts

    def spy(x: torch.Tensor, w: torch.Tensor, alpha: float) -> Any:
        cap["x"], cap["w"] = np.asarray(x, dtype=float).copy(), np.asarray(w, dtype=float).copy()
        return orig(x, w, alpha)

    monkeypatch.setattr(lime_module, "_ridge_parts", spy)
    torch.manual_seed(0)
    x = torch.randn(1, 4, dtype=torch.float64)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        tribute.explain(_model(), x, method="lime", alpha=0.0, budget=budget, seed=seed, progress=False)
    return [str(w.message) for w in ws if issubclass(w.category, StderrWarning)], cap["x"], cap["w"]


def _distinct_leverages(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    pos = w > 0
    u, inv = np.unique(x[pos], axis=0, return_inverse=True)
    weight = np.bincount(inv.reshape(-1), weights=w[pos])
    a = np.hstack([np.ones((len(u), 1)), u])
    hat = a @ np.linalg.pinv(a.T @ (weight[:, None] * a)) @ a.T * weight[None, :]
    return np.asarray(np.diag(hat))


def test_an_exactly_fitted_coalition_is_named_not_a_missing_degree_of_freedom(
        monkeypatch: pytest.MonkeyPatch) -> None:
    msgs, x, w = _run(8, 1, monkeypatch)
    lev = _distinct_leverages(x, w)
    assert lev.size > 5  # more distinct coalitions than 4 coefficients + intercept
    assert np.isclose(lev.max(), 1.0, atol=1e-9)
    assert msgs and "fitted exactly" in msgs[0] and "no residual degrees of freedom" not in msgs[0]


def test_too_few_distinct_coalitions_keep_the_degrees_of_freedom_sentence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    msgs, x, w = _run(5, 0, monkeypatch)
    assert _distinct_leverages(x, w).size <= 5
    assert msgs and "no residual degrees of freedom" in msgs[0]
