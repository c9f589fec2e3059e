"""The ``data`` suite's HTML report: leaderboard per case and a proponent/opponent gallery.

Rendered by the benchmark report's Jinja2 environment (autoescape on,
:func:`tribute.bench.report._environment`) from ``templates/data_report.html.j2``: every string
from the results (case titles, method labels, error messages) is escaped by the template
engine; only the report's own CSS and the PNG ``data:`` URIs of the digit images are inserted
as given. The gallery shows, for the first test points of each image case, the training
examples with the largest positive credit (proponents: including them raises the test point's
explained output) and the most negative (opponents), with their labels and credits, from
``attr.top(i, k)`` of the case's best-LDS method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .. import viz
from ._io import atomic_write_text
from .report import _asset, _environment

__all__ = ["render_data_report", "write_data_report"]


def _digit_uri(pixels: list[list[float]]) -> str:
    fig = Figure(figsize=(0.9, 0.9))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.imshow(np.asarray(pixels, dtype=np.float64), cmap="gray_r", interpolation="nearest")
    ax.set_axis_off()
    return viz.to_data_uri(fig, dpi=40)


def _gallery(g: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for r in g["rows"]:
        rows.append({
            "test": r["test"], "label": r["label"], "uri": _digit_uri(r["image"]),
            **{side: [{"index": e["index"], "label": e["label"], "score": f"{e['score']:+.3g}",
                       "uri": _digit_uri(e["image"])} for e in r[side]]
               for side in ("proponents", "opponents")},
        })
    return {"method": g["method"], "k": g["k"], "rows": rows}


def _v(x: Any) -> str:
    """A cell's sort key for report.js (``data-v``): the number's repr ("nan" sorts last)."""
    return repr(float(x)) if x is not None else ""


def _case(r: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for name, row in r["methods"].items():
        if "error" in row or "not_run" in row:  # a failure, or a label of another case's table
            rows.append({"method": name, "error": f"FAILED: {row['error']}" if "error" in row
                         else f"not run: {row['not_run']}"})
            continue
        lo, hi = row["lds_ci95"]
        drops = [k for k in ("lds_drop1pct", "lds_drop3pct", "lds_drop5pct") if k in row]
        # ``*_v``: the number behind each cell (``data-v``), so the sortable table sorts numbers as
        # numbers (report.js falls back to comparing the text: "100.00" < "12.35" < "3.21")
        undefined = row.get("lds_undefined", 0)
        note = f" (over {r['n_test'] - undefined} of {r['n_test']} test points)" if undefined else ""
        rows.append({"method": name, "error": "", "lds": f"{row['lds']:.3f}{note}", "lds_v": _v(row["lds"]),
                     "ci": f"[{lo:.3f}, {hi:.3f}]", "ci_v": _v(lo), "seconds": f"{row['seconds']:.2f}",
                     "seconds_v": _v(row["seconds"]), "mib": f"{row['peak_mib']:.0f}", "mib_v": _v(row["peak_mib"]),
                     "loo": f"{row['loo_correlation']:.4f}" if "loo_correlation" in row else "",
                     "loo_v": _v(row["loo_correlation"]) if "loo_correlation" in row else "",
                     "drop": " / ".join(f"{row[k]:.3f}" for k in drops),
                     "drop_v": _v(row[drops[0]]) if drops else ""})
    return {"name": r["case"], "title": r["title"], "n_subsets": r["n_subsets"],
            "n_test": r["n_test"], "rows": rows,
            "mislabel": [{"method": k, "auc": f"{v:.3f}"} for k, v in r.get("mislabel_auc", {}).items()]
            + [{"method": k, "auc": f"FAILED: {e}"} for k, e in r.get("mislabel_errors", {}).items()],
            "gallery": _gallery(r["gallery"]) if r.get("gallery") else None}


def render_data_report(results: list[dict[str, Any]], title: str = "tribute — training-data attribution") -> str:
    """The report of :func:`tribute.bench.data_suite.run_data_suite` results as one HTML string."""
    template = _environment().get_template("data_report.html.j2")
    return str(template.render(title=title, css=_asset("report.css"),
                               cases=[_case(r) for r in results]))


def write_data_report(results: list[dict[str, Any]], path: str | Path) -> Path:
    """Write :func:`render_data_report` to ``path`` atomically."""
    return atomic_write_text(path, render_data_report(results))
