"""aud49b: the leaderboard and the report say which setting a case scores a metric with.

The signed-truth tabular cases (symbolic, symbolic_additive, correlated_*) and ``tribute evaluate``
score ``relevance_mass`` with ``absolute=True``: the share of ``|credit|`` inside the truth. The
report's column header showed the metric's summary ("share of the positive credit") and neither the
text leaderboard nor the report said otherwise; on the tiny ``correlated_data`` case lime reads 0.98
on ``|credit|`` and 0.87 on the positive part, so the number shown was not the number described.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest

from tribute.bench import runner
from tribute.bench.leaderboard import format_leaderboard
from tribute.bench.report import render_report
from tribute.bench.suites import build_suite
from tribute.cli import main

NOTE = "relevance_mass here: absolute=True — the share of |credit| inside the truth"


@pytest.fixture(scope="module")
def symbolic() -> runner.BenchResult:
    suite = build_suite("tiny", seed=0, cases=["symbolic", "wine"], progress=lambda *_: None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return runner.run(suite, methods=["saliency", "lime"], log=None)


def _block(text: str, case: str) -> str:
    return text.split(f"== {case}:", 1)[1].split("\n== ", 1)[0]


def test_the_relevance_mass_shown_is_the_share_of_absolute_credit(symbolic: runner.BenchResult) -> None:
    case = next(c for c in symbolic.cases if c.name == "symbolic")
    gt = np.asarray(case.ground_truth, dtype=bool).reshape(case.n_samples, -1)
    run = symbolic.run_of("symbolic", "lime")
    assert run is not None and run.flat is not None
    a = np.abs(run.flat[:, 0, :])
    by_hand = ((a * gt).sum(1) / a.sum(1)).mean()  # |credit| share, numpy
    positive = np.clip(run.flat[:, 0, :], 0, None)
    positive_part = ((positive * gt).sum(1) / positive.sum(1)).mean()
    score = symbolic.score("symbolic", "lime", "relevance_mass")
    assert score is not None
    assert score.mean == pytest.approx(by_hand, rel=1e-12)
    assert abs(by_hand - positive_part) > 0.02  # the two readings differ here: the label matters


def test_the_text_leaderboard_says_relevance_mass_is_on_absolute_credit(
        symbolic: runner.BenchResult) -> None:
    text = format_leaderboard(symbolic)
    assert NOTE in _block(text, "symbolic")
    assert "relevance_mass here" not in _block(text, "wine")  # no relevance_mass there


@pytest.mark.slow  # the report draws its figures (~6 s)
def test_the_report_says_it_in_the_case_notes_and_the_column_header(symbolic: runner.BenchResult) -> None:
    html = render_report(symbolic)
    section = html.split('data-case="symbolic"', 1)[1].split('data-case="wine"', 1)[0]
    assert section.count(NOTE) >= 2  # the case's notes and the column's header
    assert "relevance_mass here" not in html.split('data-case="wine"', 1)[1].split("id=\"overall\"")[0]


def test_no_note_for_a_case_scored_with_the_metric_defaults(symbolic: runner.BenchResult) -> None:
    plain = dataclasses.replace(symbolic, cases=[
        dataclasses.replace(c, metric_params={"relevance_mass": {"absolute": False}, "auroc": {}})
        for c in symbolic.cases])
    assert "here:" not in format_leaderboard(plain)


MODEL = """
import torch
def lin():
    m = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0, -2.0, 0.0, 0.0]]))
    return m.eval()
"""


def test_evaluate_says_it_too(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(MODEL, encoding="utf-8")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32))
    np.save(tmp_path / "gt.npy", np.array([1, 1, 0, 0], dtype=bool))
    rc = main(["evaluate", "--model", f"{tmp_path / 'm.py'}:lin", "--data", str(tmp_path / "x.npy"),
               "--ground-truth", str(tmp_path / "gt.npy"), "--methods", "saliency",
               "--metrics", "relevance_mass,auroc", "--out", str(tmp_path / "o"), "--no-progress"])
    assert rc == 0
    assert NOTE in (tmp_path / "o" / "leaderboard.txt").read_text(encoding="utf-8")


def test_the_overall_total_counts_a_shared_explain_call_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # correlated_model and correlated_data share one explain call per method (share_key); the overall
    # table's total seconds added its time once per case (kernel_shap 1.21 s twice in quick's total)
    from tribute.bench.leaderboard import overall

    calls: list[float] = []
    real = runner._run_method

    def counted(*args: object, **kw: object) -> runner.MethodRun:
        r = real(*args, **kw)  # type: ignore[arg-type]
        calls.append(r.seconds)
        return r

    monkeypatch.setattr(runner, "_run_method", counted)
    suite = build_suite("tiny", seed=0, cases=["correlated_model", "correlated_data", "symbolic"],
                        progress=lambda *_: None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = runner.run(suite, methods=["saliency"], log=None)
    assert len(calls) == 2  # one call for the shared pair, one for symbolic
    row = next(r for r in overall(res) if r["method"] == "saliency")
    assert row["seconds"] == pytest.approx(sum(calls), rel=1e-12)
    assert row["cases_ok"] == 3  # the per-case view still has three runs
    shown = {r.case: r.seconds for r in res.runs if r.method == "saliency"}
    assert shown["correlated_model"] == shown["correlated_data"]  # each shows the one call's time
    assert sorted([shown["correlated_model"], shown["symbolic"]]) == sorted(calls)
