"""aud39b: names typed on the `tribute bench` command line are checked before any work starts,
and the data suite runs each named case once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tribute.cli import main
from tribute.errors import InputError


def _no_build(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the suite was built (its models trained) before the names were checked")


@pytest.mark.parametrize(("args", "needle"), [
    (["--methods", "kernel_shapp"], "--methods: unknown method name(s) 'kernel_shapp'"),
    (["--metrics", "aurocc"], "--metrics: unknown metric name(s) 'aurocc' (did you mean 'auroc'?)"),
])
def test_bench_cli_checks_method_and_metric_names_before_building_the_suite(
        args: list[str], needle: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # before: build_suite ran first (training every case's model on a first `--suite quick`,
    # minutes), and only then was the typo refused
    import tribute.bench.suites as suites

    monkeypatch.setattr(suites, "build_suite", _no_build)
    assert main(["bench", "--suite", "quick", "--no-report", *args]) == 2
    assert needle in capsys.readouterr().err


def test_generation_suite_checks_method_names_before_training() -> None:
    # before: the copy model was trained (a few seconds), then explain refused the name
    import tribute.bench.generation_suite as gen

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gen, "copy_task", _no_build)
        with pytest.raises(InputError, match="kernel_shapp"):
            gen.run_generation_suite(n_prompts=1, methods=["kernel_shapp"])


def test_data_suite_names_cases_option_and_runs_a_repeated_case_once() -> None:
    from tribute.bench.data_suite import run_data_suite

    # before: "unknown data case 'ridg'; choose from (...)" after building the cases before it,
    # without naming --cases or the closest name
    with pytest.raises(InputError, match=r"--cases: unknown data case\(s\) 'ridg' \(did you mean 'ridge'\?\)"):
        run_data_suite(cases=["ridge", "ridg"], scale="tiny", methods=["grad_dot"])
    # before: two 'ridge' results (retrained, rescored and printed twice)
    out = run_data_suite(cases=["ridge", "ridge"], scale="tiny", methods=["grad_dot"])
    assert [r["case"] for r in out] == ["ridge"]


def _strict(text: str) -> Any:
    def refuse(token: str) -> None:
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_data_suite_writes_strict_json_with_an_undefined_lds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # an LDS undefined on every test point (constant credits) is NaN with a [NaN, NaN] interval;
    # json.dumps wrote the token NaN, which strict JSON parsers (JSON.parse, jq) refuse
    import numpy as np

    import tribute.bench.data_suite as ds

    row = {"lds": float("nan"), "lds_ci95": [float("nan"), float("nan")], "seconds": 0.1,
           "peak_mib": np.float32(1.5), "lds_undefined": np.int64(6)}
    results = [{"case": "ridge", "title": "ridge", "n_train": 40, "n_test": 6, "n_subsets": 20,
                "bank_seconds": 0.0, "methods": {"zeros": row}}]
    monkeypatch.setattr(ds, "run_data_suite", lambda **kw: results)
    assert main(["bench", "--suite", "data-tiny", "--out", str(tmp_path), "--no-report"]) == 0
    capsys.readouterr()
    got = _strict((tmp_path / "data_results.json").read_text())[0]["methods"]["zeros"]
    assert got["lds"] is None and got["lds_ci95"] == [None, None]
    assert got["peak_mib"] == 1.5 and got["lds_undefined"] == 6
