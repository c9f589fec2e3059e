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
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tribute
from tribute.cli import main, render_views


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


# --------------------------------------------------------------------------- page labels
def _heads(page: str) -> list[str]:
    return re.findall(r"<th>(sample [^<]*)</th>", page)


def _classifier(classes: list[Any]) -> Any:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    y = np.asarray(classes, dtype=object)[np.argmax(x[:, : len(classes)], 1)]
    if all(isinstance(c, int) for c in classes):
        y = y.astype(np.int64)
    return LogisticRegression(max_iter=500).fit(x, y.tolist())


_X = np.random.default_rng(3).normal(size=(6, 4))


@pytest.mark.parametrize("classes", [[0, 2, 5], ["0", "1", "10", "2"], [-1, 1], ["ant", "bee", "cat"]])
def test_page_heads_name_the_class_a_sample_explains(classes: list[Any]) -> None:
    pytest.importorskip("sklearn")
    clf = _classifier(classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attr = tribute.explain(clf, _X[:4], method="exact_shapley", target="predicted", output="prob",
                               progress=False)
        _, page = render_views(attr)
    truth = [str(c) for c in clf.predict(_X[:4]).tolist()]  # sklearn's own answer
    assert len(set(truth)) > 1
    assert _heads(page) == [f"sample {i} (target {c})" for i, c in enumerate(truth)]


@pytest.mark.parametrize("target", [[0, 5], [2, 5], [5, 0], 2, 5])
def test_page_heads_of_class_targets_name_the_class(target: Any) -> None:
    # integer targets of a classifier with classes_ [0, 2, 5] are its labels: target=5 explains
    # column 2, which the page headed "target 2" (another class); [0, 2] was headed "0", "1"
    pytest.importorskip("sklearn")
    clf = _classifier([0, 2, 5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attr = tribute.explain(clf, _X[:2], method="exact_shapley", target=target, output="prob",
                               progress=False)
        _, page = render_views(attr)
    cols = np.asarray(attr.targets).reshape(2, -1)
    assert [int(clf.classes_[c]) for c in cols[0]] == list(np.atleast_1d(target))  # by sklearn
    asked = [int(v) for v in np.atleast_1d(target)]
    assert _heads(page) == [f"sample {i} (target {c})" for c in asked for i in range(2)]


def test_cli_page_of_a_labelled_classifier(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    factory = tmp_path / "aud48v_fac.py"
    factory.write_text(
        "import numpy as np\nfrom sklearn.linear_model import LogisticRegression\n"
        "def make():\n    rng = np.random.default_rng(0)\n    x = rng.normal(size=(120, 4))\n"
        "    y = np.array([0, 2, 5])[np.argmax(x[:, :3], 1)]\n"
        "    return LogisticRegression(max_iter=500).fit(x, y)\n", encoding="utf-8")
    np.save(tmp_path / "x.npy", _X)
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["explain", "--model", f"{factory}:make", "--data", str(tmp_path / "x.npy"),
                     "--method", "exact_shapley", "--target", "predicted", "--output", "prob",
                     "--out", str(out), "--no-progress"]) == 0
    page = (out / "attribution.html").read_text(encoding="utf-8")
    clf = _classifier([0, 2, 5])
    truth = [str(c) for c in clf.predict(_X[:4]).tolist()]
    assert _heads(page) == [f"sample {i} (target {c})" for i, c in enumerate(truth)]


@pytest.mark.parametrize("case", range(6))
def test_page_heads_without_class_labels_stay_column_numbers(case: int) -> None:
    # neighbours: models whose columns are their classes keep "target <column>"
    torch.manual_seed(case)
    net = torch.nn.Linear(4, 3).double()
    x = torch.from_numpy(_X[:3])
    target: Any = [None, 1, [0, 2], "predicted", np.array([2, 0, 1]), torch.tensor([1, 1, 0])][case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attr = tribute.explain(net, x, method="exact_shapley", target=target, progress=False)
        _, page = render_views(attr)
    tg = np.asarray(attr.targets).reshape(3, -1)
    want = [f"sample {i} (target {int(tg[i, t])})" for t in range(tg.shape[1]) for i in range(3)]
    assert _heads(page) == want
