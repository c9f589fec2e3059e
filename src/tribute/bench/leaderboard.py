"""Leaderboards: ranks with uncertainty, sanity checks, terminal table, CSV and JSON.

Ranks are per (case, metric), 1 = best in the metric's direction; tied means share the
smaller rank. A method is *tied with the best* when the paired difference of their
per-sample scores is within its 95% confidence interval (same samples, so the comparison is
paired: ``|mean(d)| <= t * stderr(d)``, Student's ``t`` for ``n - 1`` degrees of freedom).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_write_text
from .runner import REFERENCES, BenchResult, Score

__all__ = [
    "Check",
    "better",
    "case_ranks",
    "format_leaderboard",
    "metric_failures",
    "overall",
    "paired_tie",
    "recommend",
    "sanity_checks",
    "tied_with_best",
    "write_csv",
    "write_json",
]

#: Metrics on which ``wrong_class`` must rank below the real methods.
FAITHFULNESS_CHECK = ("deletion", "insertion", "faithfulness_correlation", "linear_score")
_TOL = 1e-9


def _ok(s: Score | None) -> bool:
    return s is not None and s.status == "ok" and math.isfinite(s.mean)


def _means(result: BenchResult, case: str, methods: list[str], metric: str) -> dict[str, float]:
    """Finite mean scores of ``methods`` on (case, metric)."""
    out = {}
    for m in methods:
        s = result.score(case, m, metric)
        if s is not None and s.status == "ok" and math.isfinite(s.mean):
            out[m] = float(s.mean)
    return out


def better(a: float, b: float, higher: bool) -> bool:
    """``a`` strictly better than ``b`` (beyond rounding)."""
    tol = _TOL * max(1.0, abs(a), abs(b))
    return a > b + tol if higher else a < b - tol


def case_ranks(result: BenchResult, case: str, metric: str,
               methods: list[str] | None = None) -> dict[str, int]:
    """Rank of each method with a finite score (1 = best; ties share the smaller rank)."""
    pool = methods if methods is not None else result.all_methods()
    vals = _means(result, case, pool, metric)
    if not vals:
        return {}
    higher = bool(result.metric_info[metric]["higher_is_better"])
    return {m: 1 + sum(better(o, v, higher) for o in vals.values()) for m, v in vals.items()}


def paired_tie(result: BenchResult, case: str, a: str, b: str, metric: str) -> bool:
    """Whether methods ``a`` and ``b`` are indistinguishable on (case, metric): the mean of
    their per-sample score differences lies within its 95% interval (Student's ``t`` with
    ``n - 1`` degrees of freedom: with the ~12 samples of a case, 1.96 would call differences
    real that a t interval, 2.20, does not)."""
    sa, sb = result.score(case, a, metric), result.score(case, b, metric)
    if sa is None or sb is None or sa.scores is None or sb.scores is None:
        return False
    xa, xb = np.asarray(sa.scores, float).ravel(), np.asarray(sb.scores, float).ravel()
    d = xa - xb
    fin = np.isfinite(d)
    d = d[fin]
    if d.size and abs(float(d.mean())) <= _TOL * max(1.0, float(np.abs(xa[fin]).max()),
                                                    float(np.abs(xb[fin]).max())):
        # aud44b: equal but for rounding is a tie, as in `better` (the ranks): relevance_mass
        # 0.9999999999999991 (kernel_shap) vs 1.0 exactly had a tiny standard error, so the
        # interval excluded 0 and kernel_shap, below two methods scoring 1.0, got a clear win
        return True
    if d.size < 2:
        return False
    from scipy.stats import t as student_t

    se = float(d.std(ddof=1) / math.sqrt(d.size))
    return abs(float(d.mean())) <= float(student_t.ppf(0.975, d.size - 1)) * se


def tied_with_best(result: BenchResult, case: str, metric: str) -> dict[str, bool]:
    """Whether each ranked method is within the 95% paired interval of the best one."""
    ranks = case_ranks(result, case, metric)
    if not ranks:
        return {}
    best = min(ranks, key=lambda m: (ranks[m], m))
    return {m: ranks[m] == 1 or paired_tie(result, case, m, best, metric) for m in ranks}


def overall(result: BenchResult, metrics: list[str] | None = None) -> list[dict[str, Any]]:
    """Real methods ordered by their mean rank among real methods over all (case, metric) pairs.

    Returns one dict per method: ``method``, ``mean_rank``, ``wins`` (first places),
    ``clear_wins`` (first places no other real method is within the 95% paired interval of:
    :func:`paired_tie`), ``scored`` (pairs with a score), ``failed`` (pairs where the method or
    the metric on it raised), ``pairs`` (pairs in the run), ``seconds`` (total explain time; a call
    that cases sharing a ``share_key`` reuse counts once) and
    ``evals`` (mean evaluations per input over the cases it ran on).

    A pair where the method failed (status ``"failed"``: it raised, or the metric raised on its
    credits) counts as a last place, after every method scored there: skipping it let a method
    that fails on the hard cases rank better than one that answers them. Pairs where it does not
    apply (``"n/a"``: an image-only method on a table, a budget it cannot meet) are left out.
    """
    rows: list[dict[str, Any]] = []
    pairs = [(c.name, m) for c in result.cases for m in result.metrics_of(c.name)
             if metrics is None or m in metrics]
    failed_runs = {(r.case, r.method) for r in result.runs if r.status == "failed"}
    # cases with one share_key (correlated_model / correlated_data) show one explain call each: its
    # time counts once in the total (aud49b: kernel_shap's 1.21 s counted twice in quick's total)
    call_of = {c.name: ("shared", c.share_key) if getattr(c, "share_key", None) else ("case", c.name)
               for c in result.cases}
    failed_scores = {(s.case, s.method, s.metric) for s in result.scores if s.status == "failed"}
    for meth in result.methods:
        ranks = []
        wins = clear = failed = 0
        for case, metric in pairs:
            pair_ranks = case_ranks(result, case, metric, result.methods)
            r = pair_ranks.get(meth)
            if r is None and pair_ranks and ((case, meth) in failed_runs
                                             or (case, meth, metric) in failed_scores):
                ranks.append(len(pair_ranks) + 1)
                failed += 1
            elif r is not None:
                ranks.append(r)
                wins += r == 1
                clear += r == 1 and not any(paired_tie(result, case, meth, o, metric)
                                            for o in pair_ranks if o != meth)
        runs = [r for r in result.runs if r.method == meth and r.status == "ok"]
        calls = {call_of.get(r.case, ("case", r.case)): r.seconds for r in runs}
        rows.append({
            "method": meth,
            "mean_rank": float(np.mean(ranks)) if ranks else math.nan,
            "wins": int(wins), "clear_wins": int(clear),
            "scored": len(ranks) - failed, "failed": failed,
            "pairs": len(pairs),
            "seconds": float(sum(calls.values())),
            "evals": float(np.mean([r.n_evals or 0 for r in runs])) if runs else math.nan,
            "cases_ok": len(runs),
        })
    rows.sort(key=lambda r: (math.isnan(float(r["mean_rank"])), float(r["mean_rank"]),
                             str(r["method"])))
    return rows


# --------------------------------------------------------------------------- sanity
@dataclass
class Check:
    """One sanity check of the benchmark itself."""

    case: str
    check: str
    metric: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"case": self.case, "check": self.check, "metric": self.metric,
                "passed": self.passed, "detail": self.detail}


def sanity_checks(result: BenchResult) -> list[Check]:
    """The benchmark's own sanity checks (they must pass for its rankings to mean anything).

    * ``oracle_first`` — on every case with ground truth, the oracle is best (ties allowed)
      on every ground-truth metric.
    * ``random_last`` — there, random credits are worst among the real methods and the
      oracle (ties allowed) on the mask metrics (those that take ``ground_truth``); on
      distances to exact values (``truth_error``) random noise is no floor.
    * ``wrong_class_below`` — on classification cases, credits for the wrong class are worse
      than every real method on the faithfulness metrics.

    "Ties allowed" is the leaderboard's own test (:func:`paired_tie`): ``random_last`` and
    ``wrong_class_below`` fail only where a real method is worse than the reference *beyond*
    the 95% paired interval. A method at chance level (LIME on a shape it cannot see with
    half of the pixels off) is then reported as tied in the detail, not as a broken
    benchmark; one that the samples show to be worse still fails the check.
    """
    out: list[Check] = []
    gt_metrics = [m for m in result.metrics
                  if result.metric_info[m]["category"] == "ground_truth"]
    for case in result.cases:
        higher_of = {m: bool(result.metric_info[m]["higher_is_better"]) for m in result.metrics}
        if case.has_truth:
            for metric in gt_metrics:
                om = _means(result, case.name, ["oracle"], metric)
                if not om:
                    continue
                o = om["oracle"]
                h = higher_of[metric]
                others = _means(result, case.name,
                                [m for m in result.all_methods() if m != "oracle"], metric)
                beat = [f"{m} ({v:.4g})" for m, v in others.items() if better(v, o, h)]
                out.append(Check(case.name, "oracle_first", metric, not beat,
                                 f"oracle {o:.4g}" + (
                                     f"; better: {', '.join(beat)}" if beat else "")))
                # Random credits are a floor for the mask metrics (ranking-based). Distances
                # in value units (truth_error) have none: credits on another scale (saliency:
                # gradients, not output differences) can be farther from the truth than noise.
                mask_metric = "ground_truth" in result.metric_info[metric]["needs"]
                if "random" in others and mask_metric:
                    rv = others["random"]
                    lower = [m for m, v in others.items()
                             if m not in ("random", "wrong_class") and better(rv, v, h)]
                    below, tied = _split_ties(result, case.name, metric, lower, "random",
                                              others)
                    out.append(Check(case.name, "random_last", metric, not below,
                                     f"random {rv:.4g}" + (
                                         f"; worse than random: {', '.join(below)}"
                                         if below else "") + tied))
        wrong = [m for m in FAITHFULNESS_CHECK if m in result.metrics]
        for metric in wrong:
            wm = _means(result, case.name, ["wrong_class"], metric)
            real = _means(result, case.name, result.methods, metric)
            if not wm or not real:
                continue
            w = wm["wrong_class"]
            h = higher_of[metric]
            lower = [m for m, v in real.items() if not better(v, w, h)]
            above, tied = _split_ties(result, case.name, metric, lower, "wrong_class", real)
            out.append(Check(case.name, "wrong_class_below", metric, not above,
                             f"wrong_class {w:.4g}" + (
                                 f"; not better than it: {', '.join(above)}" if above else "")
                             + tied))
    return out


def _split_ties(result: BenchResult, case: str, metric: str, worse: list[str], ref: str,
                means: dict[str, float]) -> tuple[list[str], str]:
    """``worse`` (methods not better than reference ``ref``) split into those the samples
    show to be worse (``"name (mean)"``) and a note on those within the 95% paired interval."""
    tied = [m for m in worse if paired_tie(result, case, m, ref, metric)]
    shown = [f"{m} ({means[m]:.4g})" for m in worse if m not in tied]
    note = (f"; tied with {ref} (within the 95% paired interval): "
            + ", ".join(f"{m} ({means[m]:.4g})" for m in tied)) if tied else ""
    return shown, note


# --------------------------------------------------------------------------- formatting
def fmt_cell(mean: float, stderr: float) -> str:
    """``0.912 ± 0.013`` with a precision that suits the numbers."""
    if not math.isfinite(mean):
        return "n/a"
    a = abs(mean)
    sci = a != 0 and (a >= 1e4 or a < 1e-3)
    m = f"{mean:.2e}" if sci else (f"{mean:.3f}" if a < 100 else f"{mean:.1f}")
    if not math.isfinite(stderr):
        return m
    if stderr <= 1e-12 * max(1.0, a):
        return f"{m} ± 0"
    if sci or stderr < 1e-3:
        return f"{m} ± {stderr:.1e}"
    return f"{m} ± {stderr:.3f}" if a < 100 else f"{m} ± {stderr:.1f}"


def _arrow(higher: bool) -> str:
    return "↑" if higher else "↓"


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(headers[i]), *(len(r[i]) for r in rows)) if rows else len(headers[i])
              for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def format_leaderboard(result: BenchResult, cases: list[str] | None = None,
                       user_data: bool = False) -> str:
    """An aligned text leaderboard: one table per case (mean ± stderr, rank; ``*`` = the best mean,
    ``=`` = a method within the 95% paired interval of it, so not shown to be worse).

    With ``user_data`` (``tribute evaluate``) failed checks are warnings about the methods,
    not about the benchmark.
    """
    out: list[str] = []
    for case in result.cases:
        if cases is not None and case.name not in cases:
            continue
        mets = result.metrics_of(case.name)
        out.append(f"== {case.name}: {case.title} ({case.n_samples} samples, "
                   f"{case.n_players} players)")
        headers = ["method"] + [f"{m} {_arrow(result.metric_info[m]['higher_is_better'])}"
                                for m in mets] + ["seconds", "evals/input"]
        ranks = {m: case_ranks(result, case.name, m) for m in mets}
        ties = {m: tied_with_best(result, case.name, m) for m in mets}
        rows = []
        foot: list[str] = []
        for meth in result.all_methods():
            run = result.run_of(case.name, meth)
            if run is None:
                continue
            label = meth + (" †" if run.reference else "")
            if run.status != "ok":
                foot.append(f"   {meth}: {run.status} — {run.message}")
                rows.append([label] + ["-"] * len(mets) + [run.status, "-"])
                continue
            cells = []
            for m in mets:
                s = result.score(case.name, meth, m)
                if not _ok(s):
                    cells.append("-")
                    continue
                assert s is not None
                r = ranks[m].get(meth)
                mark = "*" if r == 1 else ("=" if ties[m].get(meth) else " ")
                cells.append(f"{mark}{fmt_cell(s.mean, s.stderr)} ({r})")
            cost = "-" if run.n_evals is None else str(run.n_evals)
            rows.append([label, *cells, f"{run.seconds:.2f}", cost])
        out.extend(_table(headers, rows, set(range(1, len(headers)))))
        out.extend(foot)
        out.extend(f"   {line}" for line in metric_settings(result, case.name))
        out.extend(f"   {line}" for line in metric_failures(result, case.name))
        out.append("")
    ov = overall(result)
    if ov:
        out.append("== overall (real methods): mean rank over every case x metric "
                   "(lower is better)")
        rows = [[r["method"], f"{r['mean_rank']:.2f}" if math.isfinite(r["mean_rank"]) else "-",
                 str(r["wins"]), str(r["clear_wins"]), f"{r['scored']}/{r['pairs']}", f"{r['seconds']:.2f}"]
                for r in ov]
        out.extend(_table(["method", "mean rank", "wins", "clear wins", "scored", "seconds"], rows,
                          {1, 2, 3, 4, 5}))
        out.append("   clear wins: first places outside the 95% paired interval of every other real method")
        out.append("")
    checks = sanity_checks(result)
    if checks:
        failed = [c for c in checks if not c.passed]
        what = ("checks" if user_data else "sanity checks")
        out.append(f"== {what}: {len(checks) - len(failed)}/{len(checks)} passed "
                   "(oracle first and random last on ground-truth metrics; wrong_class below "
                   "the real methods on faithfulness)")
        for c in failed:
            tag = "WARNING" if user_data else "FAILED"
            out.append(f"   {tag} {c.check} on {c.case} / {c.metric}: {c.detail}")
        if failed and user_data:
            out.append("   (a method that does not beat credits for another class is not "
                       "explaining the class you asked for, on these inputs)")
        out.append("")
    out.append("† reference attribution (not a registry method): oracle = the ground truth, "
               "random = seeded noise, wrong_class = credits for another class. "
               "* = best mean, = = within the 95% paired interval of the best (not separable "
               "from it), (k) = rank.")
    return "\n".join(out)


#: What a non-default setting of a metric changes in its number (said next to the case's table:
#: the metric's summary, in the report's column header, describes its defaults).
_SETTING_MEANING = {("relevance_mass", "absolute", True): (
    "the share of |credit| inside the truth, not of the positive credit")}


def metric_settings(result: BenchResult, case: str) -> list[str]:
    """Footnotes for the metrics a case scores with non-default settings (``metric_params``).

    ``relevance_mass`` on the signed-truth cases (and in ``tribute evaluate``) is the share of
    ``|credit|`` in the truth, while the metric's summary, which the report shows, describes
    its default (the positive credit); on the tiny ``correlated_data`` case lime reads 0.98 on
    ``|credit|`` and 0.87 on the positive part (aud49b), and nothing said which one was shown.
    """
    c = next((c for c in result.cases if c.name == case), None)
    params = getattr(c, "metric_params", None) or {}  # a hand-built result's case may have none
    if not params:
        return []
    lines = []
    for metric in result.metrics_of(case):
        defaults = result.metric_info.get(metric, {}).get("defaults", {})
        given = {k: v for k, v in params.get(metric, {}).items()
                 if k in defaults and v != defaults[k]}
        if not given:
            continue
        why = [_SETTING_MEANING[(metric, k, v)] for k, v in given.items()
               if (metric, k, v) in _SETTING_MEANING]
        lines.append(f"{metric} here: " + ", ".join(f"{k}={v!r}" for k, v in given.items())
                     + (f" — {'; '.join(why)}" if why else ""))
    return lines


def metric_failures(result: BenchResult, case: str) -> list[str]:
    """Footnotes for metrics that raised on a method: a metric that failed for every method
    has no column (``metrics_of`` keeps metrics with a score), so without them the failure
    would not show at all; a failed cell would read ``-`` like a metric that does not apply."""
    failed = [s for s in result.scores if s.case == case and s.status == "failed"]
    by_metric: dict[str, list[Score]] = {}
    for s in failed:
        by_metric.setdefault(s.metric, []).append(s)
    lines = []
    for metric, group in by_metric.items():
        meths = ", ".join(s.method for s in group)
        lines.append(f"metric {metric} failed on {meths} — {group[0].message}")
    return lines


# --------------------------------------------------------------------------- files
def write_csv(result: BenchResult, path: str | Path) -> Path:
    """One row per (case, method, metric): mean, stderr, n, rank, status and the method's cost.

    A method whose explanation did not run (status ``failed`` or ``n/a``) has no scores; it
    gets one row per metric of its case with an empty mean and the run's status and message
    (before stop 48 it had no row at all, and the CSV read as if it had not been run).
    """
    fh = io.StringIO(newline="")
    w = csv.writer(fh)
    w.writerow(["suite", "seed", "case", "method", "reference", "metric",
                "higher_is_better", "mean", "stderr", "n", "rank", "tied_with_best",
                "status", "message", "method_seconds", "method_evals_per_input"])
    rank_cache: dict[tuple[str, str], dict[str, int]] = {}
    tie_cache: dict[tuple[str, str], dict[str, bool]] = {}
    for s in result.scores:
        key = (s.case, s.metric)
        if key not in rank_cache:
            rank_cache[key] = case_ranks(result, s.case, s.metric)
            tie_cache[key] = tied_with_best(result, s.case, s.metric)
        run = result.run_of(s.case, s.method)
        w.writerow([result.suite, result.seed, s.case, s.method, s.method in REFERENCES,
                    s.metric, s.higher_is_better,
                    "" if not math.isfinite(s.mean) else repr(float(s.mean)),
                    "" if not math.isfinite(s.stderr) else repr(float(s.stderr)), s.n,
                    rank_cache[key].get(s.method, ""), tie_cache[key].get(s.method, ""),
                    s.status, s.message,
                    "" if run is None else f"{run.seconds:.4f}",
                    "" if run is None or run.n_evals is None else run.n_evals])
    for run in result.runs:
        if run.status == "ok":
            continue
        scored = {s.metric for s in result.scores if s.case == run.case}
        for metric in [m for m in result.metrics if m in scored] or list(result.metrics):
            higher = result.metric_info.get(metric, {}).get("higher_is_better", "")
            w.writerow([result.suite, result.seed, run.case, run.method, run.method in REFERENCES, metric, higher,
                        "", "", "", "", "", run.status, run.message,
                        f"{run.seconds:.4f}", "" if run.n_evals is None else run.n_evals])
    return atomic_write_text(path, fh.getvalue())


def result_dict(result: BenchResult) -> dict[str, Any]:
    """The whole run as JSON-friendly data (per-sample scores included)."""
    return {
        "suite": result.suite, "seed": result.seed, "created": result.created,
        "seconds": result.seconds, "versions": result.versions,
        "methods": result.methods, "references": [m for m in REFERENCES],
        "metrics": result.metrics, "metric_info": result.metric_info,
        "method_info": result.method_info, "notes": result.notes,
        "cases": [c.summary() for c in result.cases],
        "runs": [r.as_dict() for r in result.runs],
        "scores": [s.as_dict() for s in result.scores],
        "overall": overall(result),
        "sanity_checks": [c.as_dict() for c in sanity_checks(result)],
    }


def write_json(result: BenchResult, path: str | Path) -> Path:
    """Write :func:`result_dict` (NaN written as null)."""
    def clean(v: Any) -> Any:
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return atomic_write_text(path, json.dumps(clean(result_dict(result)), indent=1,
                                              default=repr))


# --------------------------------------------------------------------------- recommend
def _cost(result: BenchResult, case: str, method: str) -> str:
    run = result.run_of(case, method)
    if run is None:
        return "unknown cost"
    ev = "?" if run.n_evals is None else str(run.n_evals)
    return f"{ev} evaluations per input, {run.seconds:.2f}s"


def recommend(result: BenchResult, case: str,
              metrics: list[str] | None = None) -> tuple[str | None, list[str]]:
    """The best real method on ``case`` by mean rank over ``metrics``, and why (lines of text).

    Only metrics on which every compared method has a score count. The method with the best
    mean rank is the candidate; every method statistically tied with it on *every* metric
    (its per-sample differences lie within the 95% paired interval, so the data cannot tell
    them apart) competes on cost, and the cheapest wins: fewer evaluations per input, then
    less time. The explanation says so when cost decided, and states each metric's value,
    rank and whether the runner-up is within the 95% paired interval.
    """
    mets = [m for m in (metrics or result.metrics_of(case)) if m in result.metrics_of(case)]
    cands = [m for m in result.methods if (r := result.run_of(case, m)) and r.status == "ok"]
    usable = [x for x in mets if all(_ok(result.score(case, m, x)) for m in cands)]
    if not cands or not usable:
        return None, ["no method produced scores on the chosen metrics"]
    ranks = {x: case_ranks(result, case, x, cands) for x in usable}

    def secs(m: str) -> float:
        run = result.run_of(case, m)
        return run.seconds if run else math.inf

    def evals(m: str) -> float:
        run = result.run_of(case, m)
        return math.inf if run is None or run.n_evals is None else float(run.n_evals)

    mean_rank = {m: float(np.mean([ranks[x][m] for x in usable])) for m in cands}
    order = sorted(cands, key=lambda m: (mean_rank[m], secs(m), m))
    top = order[0]
    tied = [m for m in cands if m == top
            or all(paired_tie(result, case, m, top, x) for x in usable)]
    best = min(tied, key=lambda m: (evals(m), secs(m), mean_rank[m], m))
    order = [best, *[m for m in order if m != best]]
    lines = [f"recommended: {best} (mean rank {mean_rank[best]:.2f} of {len(cands)} methods "
             f"over {', '.join(usable)})"]
    if best != top:
        lines.append(
            f"  cheaper among ties: {top} has the best mean rank ({mean_rank[top]:.2f}), but "
            f"{best} is statistically tied with it on every metric (overlapping 95% paired "
            f"intervals) and costs less ({_cost(result, case, best)} vs "
            f"{_cost(result, case, top)}), so {best} is recommended")
    for x in usable:
        info = result.metric_info[x]
        s = result.score(case, best, x)
        assert s is not None
        leader = min(ranks[x], key=lambda m: (ranks[x][m], m))
        rel = ("best" if ranks[x][best] == 1 else
               f"rank {ranks[x][best]}, behind {leader}" + (
                   " (within the 95% interval)" if paired_tie(result, case, best, leader, x)
                   else ""))
        close = [m for m in cands if m != best and ranks[x][m] != 1
                 and paired_tie(result, case, m, best, x)]
        lines.append(f"  {x} {_arrow(info['higher_is_better'])}: {fmt_cell(s.mean, s.stderr)}"
                     f" — {rel}" + (f"; not distinguishable from {', '.join(close)}"
                                    if close and ranks[x][best] == 1 else ""))
    runner = order[1] if len(order) > 1 else None
    b_run = result.run_of(case, best)
    if b_run is not None:
        lines.append(f"  cost: {b_run.seconds:.2f}s, {b_run.n_evals} evaluations per input")
    r_run = result.run_of(case, runner) if runner is not None else None
    if runner is not None and r_run is not None and b_run is not None:
        ties = sum(paired_tie(result, case, runner, best, x) for x in usable)
        speed = ""
        if r_run.seconds > 0 and b_run.seconds > 0:
            ratio = b_run.seconds / r_run.seconds
            speed = (f"{ratio:.2g}x faster" if ratio >= 1 else f"{1 / ratio:.2g}x slower")
            speed += f" ({r_run.seconds:.2f}s, {r_run.n_evals} evaluations per input); "
        lines.append(f"  runner-up: {runner} (mean rank {mean_rank[runner]:.2f}): {speed}"
                     f"indistinguishable from {best} on {ties} of {len(usable)} metrics")
    worse = []
    for x in usable:
        mv = _means(result, case, [best, "random"], x)
        if len(mv) == 2 and not better(mv[best], mv["random"],
                                        bool(result.metric_info[x]["higher_is_better"])):
            worse.append(x)
    if worse:
        lines.append(f"  warning: {best} is not better than random credits on "
                     f"{', '.join(worse)} — treat these credits with care")
    return best, lines
