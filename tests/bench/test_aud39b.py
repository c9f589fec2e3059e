"""aud39b: names typed on the `tribute bench` command line are checked before any work starts,
and the data suite runs each named case once."""

from __future__ import annotations

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
