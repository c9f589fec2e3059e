"""The benchmark's own sanity checks on the tiny suite (every case, the suite's methods).

One run of the ``tiny`` suite is shared by the tests of this module. The checks are the
reason a leaderboard can be trusted: the ground truth used as an attribution must rank first,
seeded noise last, and credits for the wrong class below every real method on faithfulness
(a method within the 95% paired interval of a reference is tied with it, not shown worse).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from tribute import bench
from tribute.bench.leaderboard import Check, case_ranks, paired_tie, sanity_checks


@pytest.fixture(scope="module")
def tiny() -> bench.BenchResult:
    return bench.run(bench.build_suite("tiny", seed=0), log=None)


def _gt_metrics(result: bench.BenchResult) -> list[str]:
    return [m for m in result.metrics if result.metric_info[m]["category"] == "ground_truth"]


#: (case, method) pairs of the tiny suite allowed to decline (``n/a``); none today. The runner
#: records any TributeError as ``n/a`` (an unsupported model, a budget too small), so a method
#: whose bug raises InputError on a case it supports would otherwise leave the ranking silently.
EXPECTED_NA: frozenset[tuple[str, str]] = frozenset()


def assert_nothing_crashed(result: bench.BenchResult, case: str) -> None:
    """Every real method ran (or declined with a reason where :data:`EXPECTED_NA` allows it); a
    crash (``failed``: any other exception) fails the benchmark, and so does a metric that
    crashed."""
    for meth in result.methods:
        run = result.run_of(case, meth)
        assert run is not None, (case, meth)
        allowed = ("ok", "n/a") if (case, meth) in EXPECTED_NA else ("ok",)
        assert run.status in allowed, (case, meth, run.status, run.message)
        assert run.status == "ok" or run.message, (case, meth)
    for s in result.scores:
        if s.case == case:
            assert s.status != "failed", (s.case, s.method, s.metric, s.message)


def test_every_case_and_reference_ran(tiny: bench.BenchResult) -> None:
    names = [c.name for c in tiny.cases]
    assert names == list(bench.PRESETS["tiny"].cases)
    assert tiny.methods, "no registered method ran"
    for case in tiny.cases:
        assert tiny.run_of(case.name, "random").status == "ok"  # type: ignore[union-attr]
        oracle = tiny.run_of(case.name, "oracle")
        assert oracle is not None and (oracle.status == "ok") == case.has_truth
        assert_nothing_crashed(tiny, case.name)
        # the default methods work on every case (occlusion on grouped DiFull via windows,
        # gradient methods on text via the embedding view)
        for meth in ("saliency", "input_x_gradient", "feature_ablation"):
            run = tiny.run_of(case.name, meth)
            assert run is not None and run.status == "ok", (case.name, meth, run)


def test_a_crashing_method_fails_the_sanity_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a method that raises an unexpected error is recorded as
    ``failed`` (the runner itself never crashes), and the status check rejects it."""
    from tribute.bench import runner

    real = runner.explain_case

    def crash(case: Any, name: str, **kw: Any) -> Any:
        if name == "saliency":
            raise ZeroDivisionError("planted crash")
        return real(case, name, **kw)

    monkeypatch.setattr(runner, "explain_case", crash)
    res = bench.run(bench.build_suite("tiny", seed=0, cases=["symbolic"]),
                    methods=["saliency", "feature_ablation"], log=None)
    run = res.run_of("symbolic", "saliency")
    assert run is not None and run.status == "failed" and "planted crash" in run.message
    assert res.run_of("symbolic", "feature_ablation").status == "ok"  # type: ignore[union-attr]
    with pytest.raises(AssertionError, match="planted crash"):
        assert_nothing_crashed(res, "symbolic")


def test_a_method_refusing_a_case_it_supports_fails_the_sanity_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """A library error (recorded ``n/a``, not ``failed``) fails the check too, unless the pair
    is expected to decline: a bug raising InputError must not leave the ranking silently."""
    from tribute.bench import runner
    from tribute.errors import InputError

    real = runner.explain_case

    def refuse(case: Any, name: str, **kw: Any) -> Any:
        if name == "saliency":
            raise InputError("planted refusal")
        return real(case, name, **kw)

    monkeypatch.setattr(runner, "explain_case", refuse)
    res = bench.run(bench.build_suite("tiny", seed=0, cases=["symbolic"]),
                    methods=["saliency", "feature_ablation"], log=None)
    assert res.run_of("symbolic", "saliency").status == "n/a"  # type: ignore[union-attr]
    with pytest.raises(AssertionError, match="planted refusal"):
        assert_nothing_crashed(res, "symbolic")


def test_oracle_first_on_ground_truth_metrics(tiny: bench.BenchResult) -> None:
    checked = 0
    for case in tiny.cases:
        if not case.has_truth:
            continue
        for metric in _gt_metrics(tiny):
            ranks = case_ranks(tiny, case.name, metric)
            if "oracle" not in ranks:
                continue
            checked += 1
            assert ranks["oracle"] == 1, (case.name, metric, ranks)
    # 6 truth cases x 4 mask metrics, minus relevance_rank on 3 tabular cases, plus
    # truth_error on 3 tabular cases
    assert checked >= 20


def test_random_last_on_mask_metrics(tiny: bench.BenchResult) -> None:
    checked = 0
    for case in tiny.cases:
        if not case.has_truth:
            continue
        for metric in _gt_metrics(tiny):
            if "ground_truth" not in tiny.metric_info[metric]["needs"]:
                continue  # truth_error: distances in value units have no random floor
            ranks = case_ranks(tiny, case.name, metric,
                               [*tiny.methods, "oracle", "random"])
            if "random" not in ranks:
                continue
            checked += 1
            worst = max(ranks.values())
            assert ranks["random"] == worst, (case.name, metric, ranks)
            real = [m for m in tiny.methods if m in ranks]
            assert all(ranks[m] < ranks["random"] for m in real), (case.name, metric, ranks)
    assert checked >= 15


def test_wrong_class_below_real_methods_on_faithfulness(tiny: bench.BenchResult) -> None:
    checked = set()
    for case in tiny.cases:
        if case.target is None:
            continue
        for metric in ("deletion", "insertion", "faithfulness_correlation"):
            w = tiny.score(case.name, "wrong_class", metric)
            assert w is not None and w.status == "ok", (case.name, metric)
            higher = w.higher_is_better
            for meth in tiny.methods:
                s = tiny.score(case.name, meth, metric)
                if s is None or s.status != "ok":
                    continue
                better = s.mean > w.mean if higher else s.mean < w.mean
                # a method the samples cannot tell from wrong_class is not shown worse
                assert better or paired_tie(tiny, case.name, meth, "wrong_class", metric), (
                    case.name, metric, meth, s.mean, w.mean)
            checked.add(case.name)
    assert {"wine", "digits", "planted_images", "planted_text", "difull"} <= checked


def test_sanity_checks_report_all_passed(tiny: bench.BenchResult) -> None:
    checks = sanity_checks(tiny)
    kinds = {c.check for c in checks}
    assert kinds == {"oracle_first", "random_last", "wrong_class_below"}
    failed = [c for c in checks if not c.passed]
    assert not failed, failed


def test_ground_truth_metrics_see_the_truth(tiny: bench.BenchResult) -> None:
    """Reference numbers that can fail: the oracle is perfect, random is near chance."""
    for case in tiny.cases:
        if case.ground_truth is None:
            continue
        a = tiny.score(case.name, "oracle", "auroc")
        r = tiny.score(case.name, "random", "auroc")
        assert a is not None and a.mean == pytest.approx(1.0)
        # chance level, within the sampling noise of a handful of samples
        assert r is not None and abs(r.mean - 0.5) < max(0.15, 4 * r.stderr), (case.name, r)
    # exact Shapley values of the generating function: the oracle's error is 0, and leave-one-
    # out, which credits a whole interaction to each partner, is measurably off
    s = tiny.score("symbolic", "oracle", "truth_error")
    assert s is not None and s.mean < 1e-6  # float32 rounding of the inputs
    loo = tiny.score("symbolic", "feature_ablation", "truth_error")
    assert loo is not None and loo.mean > 0.05
    # true to the model vs true to the data: a baseline method is exact for the model ...
    fa_model = tiny.score("correlated_model", "feature_ablation", "truth_error")
    fa_data = tiny.score("correlated_data", "feature_ablation", "truth_error")
    assert fa_model is not None and fa_model.mean < 1e-6
    # ... and cannot credit correlated-but-unused features as the data-truth does
    assert fa_data is not None and fa_data.mean > 0.2


def test_uncertainty_is_reported(tiny: bench.BenchResult) -> None:
    for s in tiny.scores:
        if s.status != "ok":
            continue
        assert s.scores is not None and s.n >= 2
        finite = np.asarray(s.scores, float)
        finite = finite[np.isfinite(finite)]
        assert s.mean == pytest.approx(float(finite.mean()))
        assert math.isfinite(s.stderr)
        across = float(finite.std(ddof=1) / math.sqrt(finite.size))
        if s.metric in ("linear_score", "faithfulness_correlation", "infidelity"):
            # + the part of the random draws every sample shares (a jackknife over them)
            assert s.stderr >= across * (1 - 1e-12)
        else:
            assert s.stderr == pytest.approx(across)


def test_costs_recorded(tiny: bench.BenchResult) -> None:
    for run in tiny.runs:
        if run.status != "ok" or run.reference:
            continue
        assert run.n_evals is not None and run.n_evals >= 1
        assert run.seconds > 0
        if run.budget is not None:
            assert run.n_evals <= run.budget


def test_planted_images_lime_runs_on_superpixels(tiny: bench.BenchResult) -> None:
    # on 400 raw pixels with half of them off per sample, LIME fits noise on a shape
    # detector (scores at chance); on 2x2 superpixels, as in its paper, it finds the plus
    run = tiny.run_of("planted_images", "lime")
    assert run is not None and run.status == "ok" and run.flat is not None
    assert run.flat.shape[-1] == 400 and "spread" in run.message
    auroc = tiny.score("planted_images", "lime", "auroc")
    assert auroc is not None and auroc.mean > 0.8


def test_sanity_checks_fail_real_losses_not_ties(tiny: bench.BenchResult) -> None:
    # saliency's auroc replaced by random's minus a little on every sample: shown worse, fails;
    # replaced by random's plus zero-mean-ish noise that ends lower on average: a tie, passes.
    case, metric = "planted_images", "auroc"
    ref = tiny.score(case, "random", metric)
    assert ref is not None and ref.scores is not None
    base = np.asarray(ref.scores, float).ravel()

    def with_saliency(scores: np.ndarray) -> list[Check]:
        res = copy.copy(tiny)
        res.scores = [dataclasses.replace(s, scores=scores, mean=float(np.mean(scores)))
                      if (s.case, s.method, s.metric) == (case, "saliency", metric) else s
                      for s in tiny.scores]
        return [c for c in sanity_checks(res)
                if (c.case, c.check, c.metric) == (case, "random_last", metric)]

    (loss,) = with_saliency(base - 0.01)
    assert not loss.passed and "worse than random: saliency" in loss.detail
    noise = np.resize([0.2, -0.21], base.size)
    (tie,) = with_saliency(base + noise - 0.01)
    assert tie.passed and "tied with random" in tie.detail and "saliency" in tie.detail
