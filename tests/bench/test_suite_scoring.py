"""How the bench suites score and show their numbers: the decision suite's PGD check, the concept
suite's chance level, the data report's sortable columns, the text leaderboard's ties."""

from __future__ import annotations

from typing import Any

import pytest
import torch


def test_pgd_on_cosine_evaluates_its_last_step() -> None:
    # the attack kept the best iterate *before* each step, so the last step was never looked at:
    # with one step it returned its random start (180 of 180 suite attacks at 5 steps, 173 of 180
    # at 20 found a lower cosine at the discarded last iterate; up to 0.21 lower)
    from tribute.bench.decision_suite import _pgd_on_cosine, _smoothed_clipped_ixg

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
    x = torch.linspace(-0.8, 0.9, 6, dtype=torch.float64)
    ref = _smoothed_clipped_ixg(net, x, 0.1 * torch.randn(64, 6, dtype=torch.float64)).detach()
    start = _pgd_on_cosine(net, x, ref, 0.3, 0.2, 32, 0, torch.Generator().manual_seed(3))
    one = _pgd_on_cosine(net, x, ref, 0.3, 0.2, 32, 1, torch.Generator().manual_seed(3))
    assert float(one.norm()) <= 0.3 + 1e-12
    assert not torch.equal(start, one)  # the step's iterate is better than the start, and is returned


def test_concept_suite_chance_iou_is_the_iou_of_random_maps() -> None:
    # the suite printed 'chance IoU ~ 20 / size^2' = 0.020 at 32 x 32; k random pixels against a
    # k-pixel mask overlap in k^2 / size^2 pixels on average, over a union of ~2k: 0.0101
    import numpy as np

    from tribute.bench.concept_suite import (
        ConceptSuiteResult,
        chance_iou,
        format_concept_results,
        pattern_iou,
        two_pattern_images,
    )

    data = two_pattern_images(200, 32, 1)
    pos = np.flatnonzero(data.y == 1)
    maps = np.random.default_rng(0).random((len(pos), 8, 32, 32))
    iou = pattern_iou(maps, data.masks["ring"][pos])
    assert abs(iou.mean() - chance_iou(20, 32 * 32)) < 3 * iou.std(ddof=1) / np.sqrt(iou.size)
    assert chance_iou(20, 1024) == pytest.approx(0.0101098, abs=1e-6)
    vec = np.array([0.5, 0.1])
    r = ConceptSuiteResult(
        accuracy=1.0, n_images=4, n_concepts=2, reconstruction_error=0.1, iou={"plus": vec, "ring": vec[::-1]},
        iou_stderr={"plus": vec, "ring": vec}, box_iou={"plus": vec, "ring": vec}, pointing={"plus": vec, "ring": vec},
        matched={"plus": 0, "ring": 1}, importances=vec, importance_stderr=vec, n_evals=1, seconds_train=0.0,
        seconds_craft=0.0, settings={"size": 32})
    text = format_concept_results(r)
    assert "chance IoU 0.010" in text and "chance pointing 0.035" in text


def _same(a: float, b: float) -> bool:
    import math

    return (math.isnan(a) and math.isnan(b)) or a == b


def test_data_report_cells_carry_the_numbers_they_show() -> None:
    # the data report's table is sortable, but no cell had data-v: report.js compared the texts, so
    # seconds sorted 0.50 < 100.00 < 12.35 < 3.21 and peak MiB 0 < 10 < 1024 < 88
    import re

    from tribute.bench.data_report import render_data_report

    nan = float("nan")
    rows: dict[str, Any] = {"a": {"lds": 0.12345, "lds_ci95": [0.0995, 0.1474], "seconds": 12.345, "peak_mib": 1024.4,
                  "loo_correlation": 0.98765, "lds_drop1pct": 0.5, "lds_drop3pct": 0.4, "lds_drop5pct": 0.3},
            "b": {"lds": -0.05, "lds_ci95": [-0.1, 0.0], "seconds": 3.21, "peak_mib": 88.0},
            "c": {"lds": nan, "lds_ci95": [nan, nan], "seconds": 100.0, "peak_mib": 9.6},
            "<i>x</i>": {"error": "ValueError: <b>"}}
    html = render_data_report([{"case": "k", "title": "t", "n_subsets": 100, "n_test": 5, "methods": rows}])
    body = html[html.index("<tbody>"):html.index("</tbody>")]
    cells = re.findall(r'<tr><td>([^<]*)</td>((?:<td[^>]*>[^<]*</td>)+)</tr>', body)
    got = {name: re.findall(r'<td[^>]*?(?: data-v="([^"]*)")?>([^<]*)</td>', tds) for name, tds in cells}
    assert set(got) == {"a", "b", "c", "&lt;i&gt;x&lt;/i&gt;"} and "<i>" not in body
    for name, row in rows.items():
        if "error" in row:
            continue
        (lds_v, lds), (ci_v, _), (sec_v, sec), (mib_v, mib), (loo_v, _), (drop_v, _) = got[name]
        assert _same(float(lds_v), row["lds"]) and _same(float(ci_v), row["lds_ci95"][0])
        assert float(sec_v) == row["seconds"] and float(mib_v) == row["peak_mib"]
        assert lds == f"{row['lds']:.3f}" and sec == f"{row['seconds']:.2f}" and mib == f"{row['peak_mib']:.0f}"
        assert (loo_v == "") == ("loo_correlation" not in row) and (drop_v == "") == ("lds_drop1pct" not in row)
    assert got["c"][0] == ("nan", "nan")  # NaN shown as nan, sorted last by report.js


def test_text_leaderboard_marks_methods_tied_with_the_best() -> None:
    # '*' marked the best mean and nothing told a reader that the runner-up was within the 95%
    # paired interval of it (the HTML report shades such ties; the text board did not)
    from types import SimpleNamespace

    import numpy as np

    from tribute.bench.leaderboard import format_leaderboard, paired_tie
    from tribute.bench.runner import BenchResult, MethodRun, Score

    rng = np.random.default_rng(0)
    base = rng.standard_normal(30)
    per = {"top": base + 0.01 + 0.05 * rng.standard_normal(30), "close": base + 0.05 * rng.standard_normal(30),
           "poor": base - 2.0}
    runs = [MethodRun("c", m, False, "ok", seconds=1.0, n_evals=10) for m in per]
    scores = [Score("c", m, "up", "ok", mean=float(v.mean()), stderr=float(v.std(ddof=1) / np.sqrt(30)), n=30,
                    higher_is_better=True, scores=v) for m, v in per.items()]
    case = SimpleNamespace(name="c", title="t", n_samples=30, n_players=4, has_truth=False)
    res = BenchResult("t", 0, list(per), ["up"], [case], runs, scores,  # type: ignore[list-item]
                      {"up": {"higher_is_better": True, "category": "x", "needs": ()}}, {})
    assert paired_tie(res, "c", "close", "top", "up") and not paired_tie(res, "c", "poor", "top", "up")
    lines = {ln.split()[0]: ln for ln in format_leaderboard(res).splitlines() if ln[:1] in "tcp" and "(" in ln}
    assert "*" in lines["top"] and "=" in lines["close"] and "=" not in lines["poor"] and "*" not in lines["poor"]


def test_data_results_say_over_how_many_test_points_the_lds_is_averaged() -> None:
    # per-point LDS is NaN where Spearman is undefined (constant credits or outputs); _ci averages
    # the finite ones, and the text and HTML reports showed the mean next to n_test as if over all
    from tribute.bench.data_report import render_data_report
    from tribute.bench.data_suite import format_data_results

    res = {"case": "k", "title": "t", "n_subsets": 20, "n_test": 5, "methods": {
        "m": {"lds": 0.4, "lds_ci95": [0.1, 0.7], "seconds": 1.0, "peak_mib": 2.0, "lds_undefined": 2},
        "full": {"lds": 0.3, "lds_ci95": [0.1, 0.5], "seconds": 1.0, "peak_mib": 2.0}}}
    text = format_data_results([res])
    assert "LDS over 3 of 5 test points" in text and text.count("test points:") == 1
    html = render_data_report([res])
    assert "0.400 (over 3 of 5 test points)" in html and html.count("(over ") == 1


def test_overall_counts_clear_wins_apart_from_ties() -> None:
    # 'wins' counts first places; on the tiny suite 23 of 31 were within the 95% paired interval of
    # another real method (f_wins.py), so the count alone overstates which method is best
    from types import SimpleNamespace

    import numpy as np

    from tribute.bench.leaderboard import format_leaderboard, overall
    from tribute.bench.runner import BenchResult, MethodRun, Score

    rng = np.random.default_rng(0)
    base = rng.standard_normal(30)
    per = {"top": base + 0.01 + 0.05 * rng.standard_normal(30), "close": base + 0.05 * rng.standard_normal(30),
           "poor": base - 2.0}
    scores = []
    for metric, shift in (("tied", {"top": 0.0, "close": 0.0, "poor": 0.0}),
                          ("apart", {"top": 1.0, "close": 0.0, "poor": 0.0})):
        for m, v in per.items():
            s = v + shift[m]
            scores.append(Score("c", m, metric, "ok", mean=float(s.mean()), stderr=float(s.std(ddof=1) / np.sqrt(30)),
                                n=30, higher_is_better=True, scores=s))
    case = SimpleNamespace(name="c", title="t", n_samples=30, n_players=4, has_truth=False)
    info = {m: {"higher_is_better": True, "category": "x", "needs": ()} for m in ("tied", "apart")}
    res = BenchResult("t", 0, list(per), ["tied", "apart"], [case],  # type: ignore[list-item]
                      [MethodRun("c", m, False, "ok", seconds=1.0, n_evals=10) for m in per], scores, info, {})
    top = {r["method"]: r for r in overall(res)}["top"]
    assert top["wins"] == 2 and top["clear_wins"] == 1
    assert "clear wins" in format_leaderboard(res)
