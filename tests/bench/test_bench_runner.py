"""Runner, leaderboard files and report content on a small slice of the tiny suite."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tribute
from tribute import bench
from tribute.bench import runner as runner_mod
from tribute.bench.leaderboard import format_leaderboard, overall, recommend

CASES = ["symbolic", "wine"]
METHODS = ["saliency", "feature_ablation", "lime"]


@pytest.fixture(scope="module")
def suite() -> bench.Suite:
    return bench.build_suite("tiny", seed=0, cases=CASES)


@pytest.fixture(scope="module")
def result(suite: bench.Suite) -> bench.BenchResult:
    return bench.run(suite, methods=METHODS, log=None)


def _numbers(res: bench.BenchResult) -> list[tuple[str, str, str, str, float, float]]:
    return [(s.case, s.method, s.metric, s.status, s.mean, s.stderr) for s in res.scores]


def test_same_seed_same_numbers(suite: bench.Suite, result: bench.BenchResult) -> None:
    again = bench.run(bench.build_suite("tiny", seed=0, cases=CASES), methods=METHODS, log=None)
    a, b = _numbers(result), _numbers(again)
    assert len(a) == len(b) > 20
    for x, y in zip(a, b):
        assert x[:4] == y[:4]
        assert (math.isnan(x[4]) and math.isnan(y[4])) or x[4] == y[4], (x, y)
    for r1, r2 in zip(result.runs, again.runs):
        if r1.flat is not None:
            assert r2.flat is not None and np.array_equal(r1.flat, r2.flat)
    # a different seed changes the explained samples and the random draws
    other = bench.run(bench.build_suite("tiny", seed=1, cases=CASES), methods=METHODS, log=None)
    assert _numbers(other) != a


def test_failing_method_is_recorded_not_fatal(suite: bench.Suite, monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    real = tribute.api.explain  # what the runner calls (``from ..api import explain``)

    def flaky(model: Any, inputs: Any, method: str = "", **kw: Any) -> Any:
        if method == "saliency":
            raise RuntimeError("boom from a broken method")
        return real(model, inputs, method=method, **kw)

    monkeypatch.setattr(runner_mod, "explain", flaky)
    res = bench.run(suite, methods=["saliency", "feature_ablation"], metrics=["deletion"],
                    log=None)
    for case in CASES:
        bad = res.run_of(case, "saliency")
        assert bad is not None and bad.status == "failed"
        assert "boom from a broken method" in bad.message
        good = res.run_of(case, "feature_ablation")
        assert good is not None and good.status == "ok"
        assert res.score(case, "feature_ablation", "deletion") is not None
        assert res.score(case, "saliency", "deletion") is None
    assert "failed" in format_leaderboard(res)
    # small48a (rev47b): leaderboard.csv had no row for the failed method, so a reader of the CSV
    # saw feature_ablation alone, as if saliency had not been asked for
    rows = list(csv.DictReader(bench.write_csv(res, tmp_path / "lb.csv").open(encoding="utf-8")))
    for case in CASES:
        bad_rows = [r for r in rows if r["case"] == case and r["method"] == "saliency"]
        assert [r["metric"] for r in bad_rows] == ["deletion"]
        assert bad_rows[0]["status"] == "failed" and "boom from a broken method" in bad_rows[0]["message"]
        assert bad_rows[0]["mean"] == "" and bad_rows[0]["rank"] == ""
        good_rows = [r for r in rows if r["case"] == case and r["method"] == "feature_ablation"]
        assert len(good_rows) == 1 and good_rows[0]["status"] == "ok" and good_rows[0]["mean"] != ""


def test_unknown_names_are_errors_defaults_are_notes(suite: bench.Suite) -> None:
    # a typo used to drop the method/metric with a note and run (and exit 0) without it
    with pytest.raises(tribute.InputError, match=r"--methods.*'no_such_method'"):
        bench.run(suite, methods=["feature_ablation", "no_such_method"], log=None)
    with pytest.raises(tribute.InputError, match=r"--metrics.*'auroc_x'.*did you mean 'auroc'"):
        bench.run(suite, methods=["feature_ablation"], metrics=["deletion", "auroc_x"], log=None)
    res = bench.run(suite, methods=["feature_ablation", "oracle"], metrics=["deletion"], log=None)
    assert res.methods == ["feature_ablation"] and res.metrics == ["deletion"]
    # a preset's defaults that this install lacks are dropped with a note
    names, notes = runner_mod.resolve_methods(("feature_ablation", "no_such_method"))
    assert names == ["feature_ablation"] and any("no_such_method" in n for n in notes)
    # references stay out of the user-facing registry
    assert not set(bench.REFERENCES) & set(tribute.methods())


def test_bad_seed_is_an_input_error() -> None:
    for bad in (-1, 1.5, "3"):
        with pytest.raises(tribute.InputError, match=r"--seed"):
            bench.build_suite("tiny", seed=bad, cases=["wine"])  # type: ignore[arg-type]


def test_regression_case_has_no_wrong_class(result: bench.BenchResult) -> None:
    wc = result.run_of("symbolic", "wrong_class")
    assert wc is not None and wc.status == "n/a" and "regression" in wc.message
    assert result.run_of("wine", "wrong_class").status == "ok"  # type: ignore[union-attr]
    assert result.run_of("wine", "oracle").status == "n/a"  # type: ignore[union-attr]
    # no ground truth on real data: ground-truth metrics are not applicable there
    s = result.score("wine", "feature_ablation", "auroc")
    assert s is not None and s.status == "n/a"


def test_terminal_table_is_aligned(result: bench.BenchResult) -> None:
    text = format_leaderboard(result)
    tables = 0
    for block in text.split("\n\n"):
        lines = block.splitlines()
        if len(lines) < 3 or not set(lines[2]) <= {"-", " "}:
            continue
        header, rule, rows = lines[1], lines[2], lines[3:]
        gaps = [i for i, ch in enumerate(rule) if ch == " "]
        for line in [header, *rows]:
            if line.startswith("   "):  # footnote under the table
                continue
            assert len(line) <= len(rule), (line, rule)
            assert all(line[i] == " " for i in gaps if i < len(line)), (line, rule)
        tables += 1
    assert tables == len(result.cases) + 1  # one per case and the overall ranking
    assert "±" in text and "sanity checks" in text


def test_csv_and_json(result: bench.BenchResult, tmp_path: Path) -> None:
    p = bench.write_csv(result, tmp_path / "lb.csv")
    rows = list(csv.DictReader(p.open(encoding="utf-8")))
    # one row per score, plus one per metric of the case for each run that did not produce
    # credits (here wrong_class on the regression case, oracle without ground truth)
    not_ok = {(r.case, r.method): r for r in result.runs if r.status != "ok"}
    assert not_ok
    scored = [r for r in rows if (r["case"], r["method"]) not in not_ok]
    assert len(scored) == len(result.scores)
    for (case, method), run in not_ok.items():
        own = [r for r in rows if (r["case"], r["method"]) == (case, method)]
        case_metrics = {s.metric for s in result.scores if s.case == case}
        assert sorted(r["metric"] for r in own) == sorted(case_metrics)
        assert all(r["mean"] == "" and r["status"] == run.status and r["message"] == run.message for r in own)
    assert {(r["case"], r["method"]) for r in rows} == {(r.case, r.method) for r in result.runs}
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(r["mean"] != "" for r in ok)
    r0 = next(r for r in ok if r["method"] == "feature_ablation" and r["metric"] == "deletion")
    s = result.score(r0["case"], "feature_ablation", "deletion")
    assert s is not None and float(r0["mean"]) == s.mean and float(r0["stderr"]) == s.stderr
    j = bench.write_json(result, tmp_path / "r.json")
    data = json.loads(j.read_text(encoding="utf-8"))
    assert data["suite"] == "tiny" and data["seed"] == 0
    assert {c["name"] for c in data["cases"]} == set(CASES)
    assert len(data["scores"]) == len(result.scores)
    assert data["sanity_checks"] and data["overall"]
    assert all("scores" in s for s in data["scores"] if s["status"] == "ok")


def test_overall_and_recommend(result: bench.BenchResult) -> None:
    ov = overall(result)
    assert [r["method"] for r in ov] and set(r["method"] for r in ov) == set(METHODS)
    assert all(r["mean_rank"] >= 1 for r in ov)
    best, why = recommend(result, "wine", ["deletion", "insertion"])
    assert best in METHODS
    assert why[0].startswith(f"recommended: {best}")
    assert any("deletion" in line for line in why)


def test_text_case_uses_embeddings_for_gradients() -> None:
    suite = bench.build_suite("tiny", seed=0, cases=["planted_text"])
    res = bench.run(suite, methods=["integrated_gradients", "feature_ablation"],
                    metrics=["auroc", "deletion"], log=None)
    ig = res.run_of("planted_text", "integrated_gradients")
    assert ig is not None and ig.status == "ok", ig
    assert "embeddings" in ig.message
    assert ig.flat is not None and ig.flat.shape == (suite.cases[0].n_samples, 1, 16)
    s = res.score("planted_text", "integrated_gradients", "auroc")
    assert s is not None and s.mean > 0.8


def test_group_credits_spread_over_pixel_players() -> None:
    # LIME runs on 2x2 superpixels of a pixel-player image case: each square's credit is
    # spread evenly over its 4 pixels (density), so the metrics see pixel credits that sum
    # to the same totals.
    import torch

    from tribute.bench.suites import Case
    from tribute.datasets import patch_groups

    case = Case(name="c", title="", description="", modality="image", model=None,
                inputs=torch.zeros(2, 1, 4, 4), target=None)
    own = patch_groups(4, 4, 2)
    flat = np.arange(8, dtype=np.float64).reshape(2, 1, 4)
    out, how = runner_mod._to_case_players(case, flat, own)
    assert out.shape == (2, 1, 16) and "spread" in how
    np.testing.assert_allclose(out.reshape(2, 1, 4, 4)[0, 0],
                               [[0, 0, .25, .25], [0, 0, .25, .25],
                                [.5, .5, .75, .75], [.5, .5, .75, .75]])
    np.testing.assert_allclose(out.sum(-1), flat.sum(-1))
    same, how = runner_mod._to_case_players(case, np.zeros((2, 1, 16)), own)
    assert same.shape == (2, 1, 16) and how == ""



def test_crashing_metric_is_shown_as_failed(suite: bench.Suite, tmp_path: Path) -> None:
    # A metric that raises on every method used to vanish from the text leaderboard (no
    # column: metrics_of keeps metrics with a finite score) and from its footnotes.
    from tribute.metrics.base import Metric, MetricInfo

    def boom(game: Any, attr: Any) -> Any:
        raise ValueError("kaboom")

    metric = Metric(boom, MetricInfo(name="boom", category="faithfulness",
                                     higher_is_better=True, needs=(), paper="", defaults={},
                                     summary="", games=("feature",)))
    wine = [c for c in suite.cases if c.name == "wine"]
    runs, scores = runner_mod.run_cases(wine, methods=["feature_ablation"],
                                        metrics={"boom": metric}, references=False, log=None)
    res = runner_mod.make_result("t", 0, wine, ["feature_ablation"], {"boom": metric}, runs,
                                 scores, [], 0.0)
    assert [s.status for s in res.scores] == ["failed"]
    text = format_leaderboard(res)
    assert "metric boom failed on feature_ablation" in text and "kaboom" in text
    from tribute.bench.report import write_report

    html = write_report(res, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "metric boom failed on feature_ablation" in html


def test_reexplaining_metrics_see_case_players() -> None:
    # occlusion runs ungrouped on DiFull (256 pixels, mapped to the 64 patches): a metric that
    # re-explains used to get 256 credits against 64 and came out n/a
    difull = bench.build_suite("tiny", seed=0, cases=["difull"])
    res = bench.run(difull, methods=["occlusion"], metrics=["max_sensitivity"], log=None)
    s = res.score("difull", "occlusion", "max_sensitivity")
    assert s is not None and s.status == "ok", s


def test_a_failure_counts_as_a_last_place_in_the_overall_ranking() -> None:
    # overall() used to skip the pairs where a method failed: failing on the hard cases improved
    # its mean rank. Now a failure is a last place (n/a pairs are still left out).
    from tribute.bench.leaderboard import case_ranks, overall

    two = bench.build_suite("tiny", seed=0, cases=["symbolic", "wine"])
    res = bench.run(two, methods=["feature_ablation", "saliency"], metrics=["deletion"], log=None)
    before = {r["method"]: r for r in overall(res)}
    assert before["saliency"]["scored"] == 2 and before["saliency"]["failed"] == 0
    for s in res.scores:
        if s.case == "wine" and s.method == "saliency":
            s.status, s.mean, s.scores = "failed", math.nan, None
    after = {r["method"]: r for r in overall(res)}["saliency"]
    sym = case_ranks(res, "symbolic", "deletion", res.methods)["saliency"]
    assert after["failed"] == 1 and after["scored"] == 1
    assert after["mean_rank"] == (sym + 2) / 2  # last of the two methods on wine


def test_a_method_with_nan_credits_is_failed_not_left_out(suite: bench.Suite,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # NaN credits scored NaN on every metric, which the runner reads as "undefined here" (n/a):
    # a method that answered NaN was left out of the ranking instead of placed last.
    real = tribute.api.explain

    def nan_saliency(model: Any, inputs: Any, method: str = "", **kw: Any) -> Any:
        attr = real(model, inputs, method=method, **kw)
        if method == "saliency":
            attr.values[0] = float("nan")
        return attr

    monkeypatch.setattr(runner_mod, "explain", nan_saliency)
    res = bench.run(suite, methods=["saliency", "feature_ablation"], metrics=["deletion"], log=None)
    for case in CASES:
        bad = res.run_of(case, "saliency")
        assert bad is not None and bad.status == "failed"
        assert "credits are not finite (1 of" in bad.message
    ranks = {r["method"]: r for r in overall(res)}
    assert ranks["saliency"]["failed"] == 2 and ranks["saliency"]["mean_rank"] == 2.0


def test_signed_truth_relevance_mass_scores_every_sample_of_every_method() -> None:
    # On the symbolic and correlated cases the truth is signed (exact Shapley values): a sample
    # whose relevant effects are all negative has no positive credit, so relevance_mass on the
    # positive part was NaN there and dropped for faithful methods (the oracle, feature_ablation)
    # but not for saliency's |gradient|: the means compared different samples (oracle 9 of 10).
    # Those cases score the share of |credit| instead (absolute=True), on every sample.
    cases = ["symbolic", "correlated_model"]
    suite = bench.build_suite("tiny", seed=0, cases=cases)
    res = bench.run(suite, methods=["saliency", "feature_ablation"], metrics=["relevance_mass"],
                    log=None)
    for case in suite.cases:
        for meth in ("saliency", "feature_ablation", "oracle", "random"):
            s = res.score(case.name, meth, "relevance_mass")
            assert s is not None and s.status == "ok", (case.name, meth)
            assert s.n == case.n_samples, (case.name, meth, s.n)
        oracle = res.score(case.name, "oracle", "relevance_mass")
        assert oracle is not None and oracle.mean == pytest.approx(1.0)
        assert case.summary()["metric_params"] == {"relevance_mass": {"absolute": True}}


def test_planted_text_leaves_out_relevance_mass() -> None:
    # Under pad removal (pads never occur in training) exact Shapley values of the planted_text
    # game put half of their positive credit on ordinary tokens (relevance_mass 0.51 on 8
    # positives, auroc 1): the mass metric ranked Shapley estimators (0.53-0.55) below
    # integrated gradients (0.67) for being faithful to the model.
    suite = bench.build_suite("tiny", seed=0, cases=["planted_text"])
    res = bench.run(suite, methods=["feature_ablation"], metrics=["relevance_mass", "auroc"],
                    log=None)
    mass = res.score("planted_text", "feature_ablation", "relevance_mass")
    assert mass is not None and mass.status == "n/a" and "exact Shapley" in mass.message
    auroc = res.score("planted_text", "feature_ablation", "auroc")
    assert auroc is not None and auroc.status == "ok"
