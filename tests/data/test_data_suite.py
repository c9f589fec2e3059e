"""The data bench suite (tiny scale): runs end to end and scores against retraining."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tribute.bench.data_suite import build_data_case, format_data_results, run_data_case
from tribute.cli import main


def test_tiny_ridge_case_scores_methods_against_retraining() -> None:
    case = build_data_case("ridge", seed=0, scale="tiny")
    res = run_data_case(case, methods=["influence", "influence_loo_step", "grad_dot", "trak",
                                       "freeshap"])
    rows = res["methods"]
    # FreeShap (eNTK kernel regression = ridge here) is a data Shapley value: it tracks the
    # retraining game on random subsets (LDS 0.76 measured) more than leave-one-out (0.75)
    assert rows["freeshap"]["lds"] > 0.6
    assert rows["influence_loo_step"]["loo_correlation"] == pytest.approx(1.0, abs=1e-9)
    assert rows["influence"]["loo_correlation"] > 0.99
    for row in rows.values():
        lo, hi = row["lds_ci95"]
        assert lo <= row["lds"] <= hi and row["seconds"] > 0
    assert "ridge" in format_data_results([res])


@pytest.mark.slow
def test_cli_data_tiny_suite(tmp_path: Path) -> None:
    rc = main(["bench", "--suite", "data-tiny", "--cases", "digits_mlp_flipped",
               "--methods", "grad_dot,influence", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    res = json.loads((tmp_path / "data_results.json").read_text())
    assert set(res[0]["mislabel_auc"]) == {"grad_dot", "influence"}
    assert res[0]["gallery"]["method"] in ("grad_dot", "influence")
    assert "Proponents and opponents" in (tmp_path / "data_report.html").read_text()
    assert any(tmp_path.glob("banks/*/manifest.json"))


def test_digits_gallery_lists_attr_top_and_the_report_escapes_it(tmp_path: Path) -> None:
    import html

    import tribute
    from tribute.bench.data_report import render_data_report, write_data_report
    from tribute.bench.data_suite import data_gallery

    case = build_data_case("digits_logistic", seed=0, scale="tiny")
    attr = tribute.explain(case.model, case.X_test, method="grad_dot", target=case.y_test,
                           players=case.data())
    g = data_gallery(case, attr, "grad_dot", n_test=2, k=3)
    assert g["method"] == "grad_dot" and len(g["rows"]) == 2
    for i, row in enumerate(g["rows"]):
        top = attr.top(i, 3)
        for side in ("proponents", "opponents"):
            assert [(e["index"], e["score"]) for e in row[side]] == [(j, v) for j, _, v in top[side]]
            assert all(e["label"] == int(case.y[e["index"]]) for e in row[side])
        assert all(e["score"] > 0 for e in row["proponents"]) and all(e["score"] < 0 for e in row["opponents"])
        assert row["label"] == int(case.y_test[i])
        assert len(row["image"]) == 8 and len(row["image"][0]) == 8
    res = {"case": "<script>alert(1)</script>", "title": "digits", "n_subsets": 1, "n_test": 5,
           "methods": {"grad_dot": {"lds": 0.5, "lds_ci95": [0.4, 0.6], "seconds": 1.0, "peak_mib": 1.0},
                       "<b>x</b>": {"error": "<img src=x onerror=alert(1)>"}},
           "gallery": g}
    page = render_data_report([res])
    # strings from the results are escaped by the template engine
    assert "<script>alert(1)" not in page and html.escape("<script>alert(1)</script>") in page
    assert "<img src=x" not in page and "<b>x</b>" not in page
    n_images = sum(1 + len(r["proponents"]) + len(r["opponents"]) for r in g["rows"])
    assert page.count('src="data:image/png;base64,') == n_images
    assert write_data_report([res], tmp_path / "r.html").read_text().startswith("<!doctype html>")


def test_lds_interval_is_student_t_over_test_points() -> None:
    """The leaderboard's 95% interval over n test points uses t_{n-1}, not 1.96 (27-31% too
    narrow at the tiny scale's 5-6 test points); non-finite scores are left out."""
    import numpy as np
    from scipy import stats

    from tribute.bench.data_suite import _ci

    s = np.array([0.71, 0.80, 0.66, 0.93, 0.75, np.nan, 0.62])
    finite = s[np.isfinite(s)]
    lo, hi = stats.t.interval(0.95, len(finite) - 1, loc=finite.mean(), scale=stats.sem(finite))
    m, lo2, hi2 = _ci(s)
    assert m == pytest.approx(finite.mean()) and lo2 == pytest.approx(lo) and hi2 == pytest.approx(hi)


def test_a_misspelt_method_label_is_refused_before_any_work() -> None:
    """``--methods`` with a label that no case has and no method is registered as used to run as
    ``method=label``, fail, print "skipped" and exit 0; it is refused up front, named."""
    from tribute.bench.data_suite import run_data_suite
    from tribute.errors import InputError

    with pytest.raises(InputError, match="nosuchmethod"):
        run_data_suite(cases=["ridge"], scale="tiny", methods=["grad_dot", "nosuchmethod"])


def test_a_label_of_another_case_is_not_run_and_says_so() -> None:
    case = build_data_case("ridge", seed=0, scale="tiny")
    res = run_data_case(case, methods=["influence_ekfac", "grad_dot"])
    assert "not a method of the 'ridge' case" in res["methods"]["influence_ekfac"]["not_run"]
    assert "influence_ekfac" in format_data_results([res]) and res["methods"]["grad_dot"]["lds"] > 0.5


def test_a_crashing_or_nan_method_is_a_failure_and_the_cli_exits_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A method that raises or returns NaN credits is a failure (``FAILED`` in the table and the
    report, exit status 1), not a silent "skipped" row with exit status 0."""
    import torch

    from tribute.api import explain as real

    def broken(model: object, inputs: object, *, method: str, **kw: object) -> object:
        if method == "tracin":
            raise RuntimeError("boom")
        attr = real(model, inputs, method=method, **kw)  # type: ignore[arg-type]
        if method == "representer":
            attr.values[0, 0] = torch.nan
        return attr

    monkeypatch.setattr("tribute.bench.data_suite.explain", broken)
    rc = main(["bench", "--suite", "data-tiny", "--cases", "ridge", "--methods",
               "grad_dot,tracin,representer", "--out", str(tmp_path), "--quiet"])
    out = capsys.readouterr()
    assert rc == 1
    res = json.loads((tmp_path / "data_results.json").read_text())[0]["methods"]
    assert res["tracin"]["error"] == "RuntimeError: boom"
    assert "NaN or infinite" in res["representer"]["error"] and "lds" in res["grad_dot"]
    assert "tracin               FAILED: RuntimeError: boom" in out.out
    assert "ridge/tracin" in out.err and "ridge/representer" in out.err
    assert "FAILED: RuntimeError: boom" in (tmp_path / "data_report.html").read_text()


def test_the_flipped_case_mislabel_run_leaves_out_methods_without_a_loss_output() -> None:
    """FreeShap (in the flipped case's default table) has no ``output="loss"``: it is left out of
    ``mislabel_auc`` like the metagradient, not a failure that would make every full run exit 1."""
    from tribute.bench.data_suite import _mislabel

    case = build_data_case("digits_mlp_flipped", seed=0, scale="tiny")
    auc, errors = _mislabel(case, case.data(), ["freeshap", "grad_dot"], 0, lambda s: None)
    assert errors == {} and set(auc) == {"grad_dot"} and auc["grad_dot"] > 0.5


def test_the_first_method_seconds_leave_out_the_one_time_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first ``explain`` of a process imports the method modules (seconds); that one-time cost
    is paid before the timed runs, not charged to whichever method comes first. A fake clock: the
    first call of ``explain`` advances it by 100 s (the "import"), every call by 0.01 s."""
    import time as time_module

    from tribute.api import explain as real

    clock = [0.0]
    calls = [0]

    def fake_clock() -> float:
        return clock[0]

    def slow_first(*args: object, **kw: object) -> object:
        calls[0] += 1
        clock[0] += 100.0 if calls[0] == 1 else 0.01
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr("tribute.bench.data_suite.explain", slow_first)
    monkeypatch.setattr(time_module, "perf_counter", fake_clock)
    case = build_data_case("ridge", seed=0, scale="tiny")
    rows = run_data_case(case, methods=["grad_dot", "tracin"])["methods"]
    assert rows["grad_dot"]["seconds"] == pytest.approx(0.01) == rows["tracin"]["seconds"]


def test_lds_interval_stays_within_the_range_of_a_correlation() -> None:
    """The t-interval of a mean of Spearman correlations is clipped to [-1, 1] (the tiny
    digits_logistic influence row read [0.230, 1.265])."""
    import numpy as np

    from tribute.bench.data_suite import _ci

    m, lo, hi = _ci(np.array([0.99, 0.98, 0.2, 0.97, 0.99]))
    assert m == pytest.approx(0.826) and hi == 1.0 and -1.0 <= lo < m
    assert _ci(np.array([-0.99, -0.98, -0.2, -0.97, -0.99]))[1] == -1.0
