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
