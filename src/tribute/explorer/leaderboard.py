"""Leaderboards from ``tribute bench`` result folders (``results.json``), read as plain JSON.

Each score becomes a row with its mean, standard error and 95% interval (``mean ± t se``
with Student's ``t`` for its ``n - 1`` degrees of freedom; 1.96 where ``n`` is not recorded: the
symmetric interval, since result files do not record the scores' skewness that
:attr:`tribute.metrics.MetricResult.ci95` corrects for) and its rank
among the methods of its (case, metric) pair in the metric's direction (1 = best; tied
means share the smaller rank; ties and ranks by the bench's own rule, as in its
``leaderboard.csv``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["find_results", "load_leaderboard"]

#: Result files larger than this are skipped (a leaderboard, not a data set).
MAX_RESULT_BYTES = 64 * 1024 * 1024


def find_results(root: Path, max_depth: int = 3) -> list[Path]:
    """``results.json`` files under ``root`` (at most ``max_depth`` folders deep; symlinks that
    leave ``root`` are ignored)."""
    base = root.resolve()
    out: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return
        for p in entries:
            if p.name.startswith("."):
                continue
            real = p.resolve()
            if real != base and base not in real.parents:
                continue
            if p.is_file() and p.name == "results.json":
                out.append(p)
            elif p.is_dir() and depth < max_depth:
                walk(p, depth + 1)

    walk(base, 0)
    return out


def _f(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def load_leaderboard(root: Path) -> dict[str, Any]:
    """Every run found under ``root``: ``{"runs": [{"name", "suite", "rows": [...]}]}``."""
    runs: list[dict[str, Any]] = []
    base = root.resolve()
    for path in find_results(base):
        name = str(path.parent.relative_to(base)) or "."
        try:
            if path.stat().st_size > MAX_RESULT_BYTES:
                raise ValueError(f"larger than {MAX_RESULT_BYTES:,} bytes")
            data = json.loads(path.read_text(encoding="utf-8"))
            rows = _rows(data)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            runs.append({"name": name, "error": f"cannot read {name}/results.json: {exc}",
                         "rows": []})
            continue
        runs.append({"name": name, "suite": data.get("suite"), "created": data.get("created"),
                     "seed": data.get("seed"), "rows": rows,
                     "overall": [{"method": r.get("method"), "mean_rank": _f(r.get("mean_rank")),
                                  "wins": r.get("wins"), "scored": r.get("scored")}
                                 for r in data.get("overall", []) if isinstance(r, dict)],
                     "report": f"{name}/report.html" if (path.parent / "report.html").is_file()
                     else None})
    return {"runs": runs}


def _t95(n: Any) -> float:
    """Student's two-sided 95% quantile for ``n - 1`` degrees of freedom (normal without n)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        return 1.96
    from scipy.stats import t as student_t

    return float(student_t.ppf(0.975, n - 1))


def _rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for s in data.get("scores", []):
        if not isinstance(s, dict) or s.get("status") != "ok":
            continue
        mean, se = _f(s.get("mean")), _f(s.get("stderr"))
        if mean is None:
            continue
        half = _t95(s.get("n")) * se if se is not None else None
        rows.append({"case": str(s.get("case")), "metric": str(s.get("metric")),
                     "method": str(s.get("method")), "mean": mean, "stderr": se,
                     "lo": mean - half if half is not None else None,
                     "hi": mean + half if half is not None else None,
                     "n": s.get("n"), "higher_is_better": bool(s.get("higher_is_better")),
                     "seconds": _f(s.get("seconds")), "n_evals": _f(s.get("n_evals"))})
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["case"], r["metric"]), []).append(r)
    from ..bench.leaderboard import better  # the bench's own rule: ranks as in its CSV

    for members in groups.values():
        higher = members[0]["higher_is_better"]
        for r in members:
            r["rank"] = 1 + sum(better(o["mean"], r["mean"], higher) for o in members)
    return rows
