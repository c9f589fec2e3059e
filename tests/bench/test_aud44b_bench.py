"""aud44b: `tribute bench --out` is checked before the run (a file as --out ran the whole suite,
then mkdir raised FileExistsError with a traceback and every result was lost)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tribute.cli import main


def _no_run(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the suite ran before --out was checked")


@pytest.mark.parametrize(("suite", "module", "attr"), [
    ("tiny", "tribute.bench.suites", "build_suite"),
    ("decision-tiny", "tribute.bench.decision_suite", "run_decision_suite"),
    ("data-tiny", "tribute.bench.data_suite", "run_data_suite"),
])
def test_bench_refuses_a_file_as_out_before_running(
        suite: str, module: str, attr: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    monkeypatch.setattr(importlib.import_module(module), attr, _no_run)
    target = tmp_path / "results.txt"
    target.write_text("keep me\n")
    # before: the tiny suite built and ran its cases (seconds here, minutes for quick/full), then
    # FileExistsError: [Errno 17] File exists (a traceback, nothing written); data-tiny raised it
    # straight away, decision-tiny after all four parts
    assert main(["bench", "--suite", suite, "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert f"--out {str(target)!r} is an existing file, not a folder" in err
    assert "Traceback" not in err
    assert target.read_text() == "keep me\n"


def test_bench_refuses_an_out_folder_under_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import tribute.bench.suites as suites

    monkeypatch.setattr(suites, "build_suite", _no_run)
    (tmp_path / "f").write_text("x")
    # before: NotADirectoryError from mkdir after the run
    assert main(["bench", "--suite", "tiny", "--out", str(tmp_path / "f" / "sub")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_build_suite_builds_a_case_named_twice_once() -> None:
    from tribute.bench.suites import build_suite

    # before: ['wine', 'symbolic_additive', 'symbolic_additive'] -- a case outside the tiny
    # preset, named twice, was built twice, run twice and weighed double in the overall mean rank
    # (kernel_shap, feature_ablation, saliency on deletion: feature_ablation 1.33 instead of 1.5)
    s = build_suite("tiny", cases=["symbolic_additive", "symbolic_additive", "symbolic_additive"])
    assert [c.name for c in s.cases] == ["symbolic_additive"]


def _result_with(scores: dict[str, list[float]]) -> Any:
    import math
    from types import SimpleNamespace

    import numpy as np

    from tribute.bench.runner import BenchResult, MethodRun, Score

    runs = [MethodRun("c", m, False, "ok", n_evals=1) for m in scores]
    sc = [Score("c", m, "relevance_mass", "ok", mean=float(np.nanmean(v)), stderr=math.nan,
                n=len(v), higher_is_better=True, scores=np.asarray(v, dtype=np.float64))
          for m, v in scores.items()]
    return BenchResult(suite="t", seed=0, methods=list(scores), metrics=["relevance_mass"],
                       cases=[SimpleNamespace(name="c")],  # type: ignore[list-item]
                       runs=runs, scores=sc,
                       metric_info={"relevance_mass": {"higher_is_better": True}}, method_info={})


def test_a_rounding_difference_is_no_clear_win() -> None:
    from tribute.bench.leaderboard import overall, paired_tie

    # measured on `tribute evaluate` (a linear model, 12 samples): kernel_shap's relevance_mass was
    # 1 - 4e-16, 1, 1 - 6e-16, ... (mean 0.9999999999999991), feature_ablation's 1.0 exactly; the
    # paired differences had a standard error of ~1e-16, so the 95% interval excluded 0 and
    # kernel_shap -- tied for first by rank, and numerically the lowest of the two -- got a
    # "clear win" (overall: kernel_shap 1 clear win, feature_ablation 0)
    ks = [1 - 4.4e-16, 1.0, 1 - 6.7e-16, 1 - 4.4e-16, 1 - 2.2e-16, 1 - 8.9e-16]
    res = _result_with({"kernel_shap": ks, "feature_ablation": [1.0] * 6})
    assert paired_tie(res, "c", "kernel_shap", "feature_ablation", "relevance_mass")
    rows = {r["method"]: r for r in overall(res)}
    assert rows["kernel_shap"]["wins"] == rows["feature_ablation"]["wins"] == 1
    assert rows["kernel_shap"]["clear_wins"] == rows["feature_ablation"]["clear_wins"] == 0
    # a real difference is still no tie: 0.9 vs 1.0 on every sample, and the t interval of a
    # noisy one (differences 0.05 +- 0.01) excludes 0
    res = _result_with({"a": [1.0] * 6, "b": [0.9] * 6})
    assert not paired_tie(res, "c", "a", "b", "relevance_mass")
    assert {r["method"]: r["clear_wins"] for r in overall(res)} == {"a": 1, "b": 0}
    res = _result_with({"a": [1.0] * 6, "b": [0.95, 0.96, 0.94, 0.95, 0.96, 0.94]})
    assert not paired_tie(res, "c", "a", "b", "relevance_mass")
