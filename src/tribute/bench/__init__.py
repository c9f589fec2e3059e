"""Benchmarks: suites with ground truth, a runner, a leaderboard and a self-contained report.

>>> from tribute import bench  # doctest: +SKIP
>>> suite = bench.build_suite("quick", seed=0)  # doctest: +SKIP
>>> result = bench.run(suite)  # doctest: +SKIP
>>> print(bench.format_leaderboard(result))  # doctest: +SKIP
>>> bench.write_report(result, "report-out/report.html")  # doctest: +SKIP

The command line equivalent is ``tribute bench --suite quick --out report-out``; ``tribute
evaluate`` runs the same comparison on your own model and data and recommends a method.
"""

from ._io import atomic_write_bytes, atomic_write_text
from .leaderboard import (
    Check,
    case_ranks,
    format_leaderboard,
    overall,
    recommend,
    sanity_checks,
    tied_with_best,
    write_csv,
    write_json,
)
from .report import render_report, write_report
from .runner import REFERENCES, BenchResult, MethodRun, Score, explain_case, run, run_cases
from .suites import PRESETS, Case, GradView, Preset, Suite, available_suites, build_suite

__all__ = [
    "PRESETS",
    "REFERENCES",
    "BenchResult",
    "Case",
    "Check",
    "GradView",
    "MethodRun",
    "Preset",
    "Score",
    "Suite",
    "atomic_write_bytes",
    "atomic_write_text",
    "available_suites",
    "build_suite",
    "case_ranks",
    "explain_case",
    "format_leaderboard",
    "overall",
    "recommend",
    "render_report",
    "run",
    "run_cases",
    "sanity_checks",
    "tied_with_best",
    "write_csv",
    "write_json",
    "write_report",
]
