"""small44 (stop 44): `tribute methods NAME` shows the evaluations a method spends; negative
numbers in scientific notation are values on the command line."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.cli import main
from tribute_testing import factory_module


def _spent(method: str, n: int) -> int:
    """Evaluations per input that ``tribute.explain`` really spends at the default budget."""
    x = np.random.default_rng(n).random((1, n))
    attr = tribute.explain(lambda a: a.sum(axis=1), x, method=method, baseline=0.0)
    return int(attr.n_evals)


def test_methods_name_shows_the_evaluations_permutation_shapley_spends(
        capsys: pytest.CaptureFixture[str]) -> None:
    """On 4 players the page said "4 players -> 386", the default budget, where explain spends
    16 (the budget covers all 2^4 coalitions: exact). It now shows what is spent, the budget
    beside it; --json keeps the budgets and adds the evaluations."""
    # stop 46: a coalition a permutation walk reaches twice runs once, so 16 players spend
    # fewer than the 1,922 rows the walks ask for (1,538 at seed 0): the page says "at most"
    assert _spent("permutation_shapley", 4) == 16 and _spent("permutation_shapley", 16) <= 1922
    assert main(["methods", "permutation_shapley"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "default budget" in ln)
    assert "4 players -> 16 (budget 386: all 2^4 coalitions, exact)" in line
    assert "16 players -> at most 1922," in line and "386," not in line.split("(")[0]
    assert main(["methods", "permutation_shapley", "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert data["default_evals"]["4"] == 16 and data["default_budget"]["4"] == 386
    assert data["default_evals"]["16"] == 1922 and data["default_evals_is_bound"] is True


@pytest.mark.parametrize("method", ["kernel_shap", "lime", "banzhaf"])
def test_methods_name_evaluations_match_explain(method: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["methods", method, "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    for n in (4, 16):
        spent = _spent(method, n)
        # a bound for samplers (a coalition drawn twice runs once, stop 46), the spend otherwise
        assert (spent <= data["default_evals"][str(n)] if data["default_evals_is_bound"]
                else spent == data["default_evals"][str(n)]), (method, n)
    assert data["default_evals_is_bound"] is (method in ("kernel_shap", "lime", "banzhaf"))


FACTORY = textwrap.dedent(
    """
    import torch

    def make():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)).double()
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    with factory_module(tmp_path, "small44_mod", FACTORY):
        np.save(tmp_path / "x.npy", np.random.default_rng(0).random((2, 4)))
        yield tmp_path


@pytest.mark.parametrize("value", ["-1e3", "-2.5E-1"])
def test_negative_baseline_in_scientific_notation(project: Path, value: str) -> None:
    """`--baseline -1e3` was taken by argparse for an option ("expected one argument", exit 2);
    both spellings now give the credits of explain(..., baseline=-1000.0)."""
    import small44_mod

    x = torch.from_numpy(np.load(project / "x.npy"))
    api = tribute.explain(small44_mod.make().eval(), x, method="exact_shapley",
                          baseline=float(value), target=1)
    for i, form in enumerate((["--baseline", value], [f"--baseline={value}"])):
        out = project / f"out{i}"
        assert main(["explain", "--model", "small44_mod:make", "--data", str(project / "x.npy"),
                     "--method", "exact_shapley", *form, "--target", "1", "--out", str(out),
                     "--no-progress"]) == 0
        attr = tribute.Attribution.load(out / "attribution.npz")
        np.testing.assert_allclose(np.asarray(attr.values), np.asarray(api.values),
                                   rtol=0, atol=1e-12)
