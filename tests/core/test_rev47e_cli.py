"""rev47e: `tribute methods lime|rise` said "4 players -> at most 256/1000" where a call on 4
players spends at most 2^4 + 1 = 17 (each drawn 0/1 coalition reaches the model once, plus the
reference pass v(N)); the page now shows 17. Sobol's fractional designs keep their figure."""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

import numpy as np
import pytest

import tribute
from tribute.cli import main


def _page_figure(capsys: pytest.CaptureFixture[str], method: str) -> int:
    assert main(["methods", method]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "default budget" in ln)
    m = re.search(r"4 players -> at most (\d+)", line)
    assert m is not None, line
    return int(m.group(1))


@pytest.mark.parametrize("method", ["lime", "rise"])
def test_methods_page_bounds_binary_draws_by_the_coalitions_there_are(
        capsys: pytest.CaptureFixture[str], method: str) -> None:
    rows: list[np.ndarray] = []

    def f(a: np.ndarray) -> np.ndarray:
        rows.append(np.array(a))
        return np.asarray(a.sum(axis=1))

    spent = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(4):
            rows.clear()
            attr = tribute.explain(f, np.ones((1, 4)), method=method, baseline=0.0, seed=seed)
            seen = np.concatenate(rows)
            assert np.isin(seen, (0.0, 1.0)).all()  # 0/1 coalitions: at most 2^4 distinct
            assert len(np.unique(seen, axis=0)) <= 16
            spent.append(int(attr.n_evals))
    figure = _page_figure(capsys, method)
    assert max(spent) <= figure == 2**4 + 1  # was 256 (lime) / 1000 (rise)
    assert main(["methods", method, "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert data["default_evals"]["4"] == 17 and data["default_evals_is_bound"] is True


def test_methods_page_keeps_the_figure_of_fractional_designs(capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attr = tribute.explain(lambda a: a.sum(axis=1), np.ones((1, 4)), method="sobol", baseline=0.0)
    assert attr.n_evals > 17  # fractional masks: more than 2^4 + 1 distinct rows reach the model
    assert attr.n_evals <= _page_figure(capsys, "sobol")
