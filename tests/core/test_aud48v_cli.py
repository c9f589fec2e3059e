"""aud48v: `tribute methods` (the table) said what a call does not do.

- sobol's row read "32 (n + 2)": a default call on 4 players spends 193 rows, 32 (4 + 2) + 1
  (v(N)'s reference pass; ``default_budget`` counts it) -> "32 (n + 2) + 1".
- smoothgrad / smoothgrad_sq / vargrad read "n_samples x the base method's evaluations
  (n_samples=50)": a default call spends 51 rows with saliency (50 x 1 + 1), 2,601 with
  integrated_gradients (50 x 52 + 1): the clean input's reference pass -> "... + 1".
- the alias ``shapley`` had a row of its own, unmarked, as if it were a second Shapley
  estimator beside ``gp_shapley`` -> "shapley (= gp_shapley)".

Truth: rows counted at the model (a wrapper adding up the rows of every forward call).
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest
import torch

import tribute
from tribute.cli import main


def _table(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """First cell -> whole line of the `tribute methods` table."""
    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()[2:]
    return {ln.split("  ")[0].strip(): ln for ln in lines if ln.strip()}


class _Counted(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += int(x.shape[0])
        out: torch.Tensor = self.net(x)
        return out


def _rows(method: str, n: int, **params: Any) -> int:
    torch.manual_seed(0)
    model = _Counted(torch.nn.Sequential(torch.nn.Linear(n, 5), torch.nn.Tanh(),
                                         torch.nn.Linear(5, 2)).double())
    x = torch.randn(1, n, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tribute.explain(model, x, method=method, target=0, progress=False, **params)
    return model.rows


def _rule_of(table: dict[str, str], method: str) -> str:
    line = table[method]
    rule = tribute.methods()[method].budget_rule
    assert rule is not None and rule in line, (rule, line)
    return rule


@pytest.mark.parametrize("n", [3, 4, 6])
def test_sobol_row_is_the_rows_a_default_call_spends(capsys: pytest.CaptureFixture[str],
                                                      n: int) -> None:
    rule = _rule_of(_table(capsys), "sobol")
    m = re.fullmatch(r"32 \(n \+ 2\)(?: \+ (\d+))?", rule)
    assert m is not None, rule
    shown = 32 * (n + 2) + int(m.group(1) or 0)
    assert shown == _rows("sobol", n)  # 32 (n + 2) + 1: 161 / 193 / 257


@pytest.mark.parametrize("method,base,per_copy", [
    ("smoothgrad", "saliency", 1), ("smoothgrad_sq", "saliency", 1), ("vargrad", "saliency", 1),
    ("smoothgrad", "input_x_gradient", 1), ("smoothgrad", "integrated_gradients", 6),
])
def test_noise_rows_are_the_rows_a_default_call_spends(capsys: pytest.CaptureFixture[str], method: str,
                                                        base: str, per_copy: int) -> None:
    rule = _rule_of(_table(capsys), method)
    m = re.fullmatch(r"n_samples x the base method's evaluations(?: \+ (\d+))? \(n_samples=(\d+)\)", rule)
    assert m is not None, rule
    params: dict[str, Any] = {"base": base, "n_samples": 8}
    if base == "integrated_gradients":
        params["base_params"] = {"steps": 4}  # 4 nodes + 2 = 6 evaluations per copy
    spent = _rows(method, 4, **params)
    assert 8 * per_copy + int(m.group(1) or 0) == spent
    assert int(m.group(2)) == tribute.methods()[method].defaults["n_samples"]
    if base == "saliency":  # the defaults the row names: 50 copies -> 51 rows
        assert 50 * per_copy + int(m.group(1) or 0) == _rows(method, 4)


def test_alias_rows_name_the_method_they_stand_for(capsys: pytest.CaptureFixture[str]) -> None:
    table = _table(capsys)
    infos = tribute.methods()
    aliases = {k: v.alias_of for k, v in infos.items() if v.alias_of}
    assert aliases == {"shapley": "gp_shapley"}  # the registry's one alias today
    for alias, target in aliases.items():
        assert f"{alias} (= {target})" in table, sorted(table)
        assert table[f"{alias} (= {target})"].split()[3:] == table[target].split()[1:]
    # the other rows are unmarked and each method has one
    plain = [k for k in table if "(=" not in k]
    assert sorted(plain) == sorted(k for k in infos if k not in aliases)
