"""The benchmark report: ONE self-contained HTML file (no external assets, opens offline).

The page is rendered from a Jinja2 template with autoescaping
(``templates/report.html.j2``, shipped as package data): this module only turns a
:class:`BenchResult` into plain data (strings and numbers), and every string that comes from
data (names, messages, summaries) is escaped by the template engine. The only values marked
safe are the report's own inline CSS and script (``templates/report.css``/``report.js``: sortable
tables, a render check that marks every image ``data-rendered="ok"``) and the token HTML of
:func:`tribute.viz.text`, which escapes each token itself. Figures are PNGs embedded as
``data:`` URIs (:func:`tribute.viz.to_data_uri`).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import Markup
from matplotlib.figure import Figure

from .. import viz
from ._io import atomic_write_text
from .leaderboard import (
    case_ranks,
    fmt_cell,
    metric_failures,
    metric_settings,
    overall,
    sanity_checks,
    tied_with_best,
)
from .runner import REFERENCES, BenchResult, MethodRun
from .suites import Case

__all__ = ["render_report", "write_report"]

#: Samples shown per case in the heat-map / text gallery.
GALLERY_SAMPLES = 3
_DPI = 80

Fig = dict[str, str]


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in s.lower())


def _img(fig: Figure, alt: str, caption: str = "", cls: str = "") -> Fig:
    return {"uri": viz.to_data_uri(fig, dpi=_DPI), "alt": alt, "caption": caption, "cls": cls}


def _arrow(higher: bool) -> str:
    return "↑" if higher else "↓"


# --------------------------------------------------------------------------- tables (as data)
def _leaderboard_table(result: BenchResult, case: Case) -> dict[str, Any]:
    mets = result.metrics_of(case.name)
    here = {line.split(" here: ", 1)[0]: line for line in metric_settings(result, case.name)}
    heads = [{"parts": m.split("_"),
              "summary": result.metric_info[m]["summary"] + (f" ({here[m]}.)" if m in here else ""),
              "arrow": _arrow(bool(result.metric_info[m]["higher_is_better"]))} for m in mets]
    ranks = {m: case_ranks(result, case.name, m) for m in mets}
    ties = {m: tied_with_best(result, case.name, m) for m in mets}
    rows = []
    for meth in result.all_methods():
        run = result.run_of(case.name, meth)
        if run is None:
            continue
        row: dict[str, Any] = {
            "method": meth, "label": meth + (" †" if run.reference else ""),
            "reference": run.reference, "message": run.message, "status": run.status,
            "failed": run.status != "ok"}
        if run.status == "ok":
            cells = []
            for m in mets:
                s = result.score(case.name, meth, m)
                if s is None or s.status != "ok" or not math.isfinite(s.mean):
                    cells.append({"na": True, "why": "" if s is None else s.message})
                    continue
                r = ranks[m].get(meth)
                klass = "num best" if r == 1 else ("num tie" if ties[m].get(meth) else "num")
                cells.append({"na": False, "klass": klass, "v": repr(s.mean), "n": s.n,
                              "text": fmt_cell(s.mean, s.stderr), "rank": r})
            row.update(cells=cells, seconds=f"{run.seconds:.2f}", seconds_v=repr(run.seconds),
                       evals="–" if run.n_evals is None else str(run.n_evals),
                       evals_v="" if run.n_evals is None else str(run.n_evals))
        rows.append(row)
    return {"heads": heads, "rows": rows}


def _cost_rows(result: BenchResult, case: Case) -> list[dict[str, Any]]:
    rows = []
    for meth in result.all_methods():
        run = result.run_of(case.name, meth)
        if run is None:
            continue
        rows.append({
            "method": meth, "status": run.status, "ok": run.status == "ok",
            "seconds": f"{run.seconds:.3f}",
            "evals": "–" if run.n_evals is None else run.n_evals,
            "rows": "–" if run.n_rows is None else run.n_rows,
            "budget": "default" if run.budget is None else run.budget,
            "message": run.message})
    return rows


def _summary(result: BenchResult) -> dict[str, Any]:
    rows = []
    for r in overall(result):
        mr = f"{r['mean_rank']:.2f}" if math.isfinite(r["mean_rank"]) else "–"
        ev = f"{r['evals']:.0f}" if math.isfinite(r["evals"]) else "–"
        rows.append({"method": r["method"], "mean_rank": mr, "wins": r["wins"], "clear_wins": r["clear_wins"],
                     "scored": r["scored"], "pairs": r["pairs"], "cases_ok": r["cases_ok"],
                     "seconds": f"{r['seconds']:.2f}", "seconds_v": repr(r["seconds"]),
                     "evals": ev})
    checks = sanity_checks(result)
    by_kind: dict[str, dict[str, Any]] = {}
    for c in checks:
        k = by_kind.setdefault(c.check, {"name": c.check, "passed": 0, "total": 0})
        k["passed"] += int(c.passed)
        k["total"] += 1
    return {"overall": rows, "kinds": list(by_kind.values()),
            "failed": [c for c in checks if not c.passed],
            "notes": list(result.notes) + [f"{c.name}: {line}" for c in result.cases
                                           for line in metric_failures(result, c.name)]}


def _metric_rows(result: BenchResult) -> list[dict[str, Any]]:
    rows = []
    for name in result.metrics:
        info = result.metric_info[name]
        rows.append({"name": name, "category": info["category"],
                     "direction": "higher is better" if info["higher_is_better"]
                     else "lower is better",
                     "summary": info["summary"], "paper": info["paper"]})
    return rows


#: What the reference attributions are (the methods glossary).
_REFERENCE_TEXT = {
    "oracle": "The ground truth used as the attribution: exact values where known, else "
              "the relevance mask (for grouped players, the fraction of each group that "
              "is relevant). Only on cases with ground truth.",
    "random": "I.i.d. standard-normal credits from a seeded local generator.",
    "wrong_class": "feature_ablation credits for another class ((target + 1) mod C), "
                   "scored against the true target. Classification cases only.",
}


def _method_rows(result: BenchResult) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in result.methods:
        info = result.method_info.get(name, {})
        rows.append({"name": name, "reference": False, "family": info.get("family", ""),
                     "summary": info.get("summary", ""), "paper": info.get("paper", "")})
    for name in REFERENCES:
        rows.append({"name": name, "reference": True, "summary": _REFERENCE_TEXT[name]})
    return rows


# --------------------------------------------------------------------------- figures
def _leaderboard_figure(result: BenchResult, case: Case) -> Fig | None:
    mets = result.metrics_of(case.name)
    if not mets:
        return None
    scores: dict[str, dict[str, tuple[float, float | None]]] = {}
    for meth in result.all_methods():
        for m in mets:
            s = result.score(case.name, meth, m)
            if s is not None and s.status == "ok" and math.isfinite(s.mean):
                se = s.stderr if math.isfinite(s.stderr) else None
                scores.setdefault(meth, {})[m] = (s.mean, se)
    if not scores:
        return None
    directions = {m: "higher" if result.metric_info[m]["higher_is_better"] else "lower"
                  for m in mets}
    fig = viz.leaderboard(scores, directions=directions, ncols=min(4, len(mets)))
    return _img(fig, f"leaderboard chart for {case.name}",
                "Mean ± standard error per metric; the best method is highlighted.")


def _curve_figures(result: BenchResult, case: Case) -> Fig | None:
    panels: list[tuple[str, dict[str, Any], dict[str, float]]] = []
    for kind in ("deletion", "insertion"):
        curves: dict[str, Any] = {}
        auc: dict[str, float] = {}
        for meth in result.all_methods():
            s = result.score(case.name, meth, kind)
            if s is None or s.status != "ok" or s.curve is None or s.fraction is None:
                continue
            curves[meth] = (s.fraction, s.curve)
            auc[meth] = s.mean
        if curves:
            panels.append((kind, curves, auc))
    if not panels:
        return None
    fig = Figure(figsize=(6.2 * len(panels), 4.4))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (kind, curves, auc) in zip(axes, panels):
        viz.curves(curves, kind=kind, auc=auc, ax=ax)  # type: ignore[arg-type]
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.92, wspace=0.22)
    kinds = " and ".join(k for k, _, _ in panels)
    return _img(fig, f"{kinds} curves for {case.name}",
                "Model output as players are removed (deletion) or inserted (insertion) in "
                "decreasing-credit order; mean over samples, band = ± 1 standard error; the "
                "legend shows each method's score.")


def _element_maps(case: Case, flat: np.ndarray, k: int) -> np.ndarray:
    """Credits of the first ``k`` samples as element maps with the inputs' shape."""
    vals = flat[:k, 0]
    shape = tuple(case.inputs.shape[1:])
    if case.groups is None:
        return vals.reshape(k, *shape)
    g = np.asarray(case.groups).reshape(-1)
    counts = np.bincount(g, minlength=vals.shape[1]).astype(np.float64)
    return np.asarray((vals[:, g] / counts[g][None]).reshape(k, *shape))


def _channels_last(case: Case) -> bool | None:
    """Whether an image case's ``(k, A, B, C)`` inputs hold their channels last: as the model's
    first ``Conv2d`` reads them, else by the shape where it reads one way only (the rule of
    :func:`tribute.viz.image`); None where the shape reads two ways and the model does not say.
    False for 2-D images."""
    from ..models.layout import channels_last_by_model, map_channel_axis

    shape = tuple(int(d) for d in case.inputs.shape[1:])
    if len(shape) != 3:
        return False
    told = channels_last_by_model(shape, getattr(case, "model", None))
    try:
        by_shape = map_channel_axis(shape, None, "inputs") == -1
    except ValueError:
        return told  # reads two ways: the model says, else None
    # a shape that reads one way is drawn by it, as before, unless the model reads it the other
    # way round: its first Conv2d may read a tensor made from the input whose width matches an
    # image axis by chance (a space-to-depth stem's Conv2d(16) on gray (1, 16, 16) images:
    # channels-last by the model, drawn 1 x 16; rev51v). Where the two disagree, channels
    # first, as this gallery always drew
    return by_shape and told is not False


def _gallery(result: BenchResult, case: Case) -> dict[str, Any]:
    """``{"figure": Fig}`` (images, tabular) or ``{"text": table data}`` (text); ``{}``: none."""
    runs: list[MethodRun] = []
    for meth in result.all_methods():
        run = result.run_of(case.name, meth)
        if run is not None and run.status == "ok" and run.flat is not None:
            runs.append(run)
    if not runs:
        return {}
    k = min(GALLERY_SAMPLES, case.n_samples)
    if case.modality == "image":
        last = _channels_last(case)
        if last is None:
            return {}  # (C, H, W) or (H, W, C)? nothing says: no map rather than a wrong one
        maps = {}
        for r in runs:
            m = _element_maps(case, r.flat, k)  # type: ignore[arg-type]
            if m.ndim == 4:  # (k, C, H, W): the map drawn is the channel sum; scale that one
                # (k, H, W, C) for a channels-last model: axis 1 summed each image's rows into a
                # W x C map, drawn over the image (4 x 6 x 3: 6 x 3), or refused with the whole
                # report when the underlay's aspect differed (8 x 8 x 3) (aud51v)
                m = m.sum(axis=3 if last else 1)
            # each map on its own scale (methods' credits live on different scales: random
            # noise would otherwise wash out every other map of a shared colour bar)
            scale = np.percentile(np.abs(m.reshape(k, -1)), 99.5, axis=1)
            scale = np.where(scale > 0, scale, np.abs(m.reshape(k, -1)).max(axis=1))
            scale = np.where(scale > 0, scale, 1.0)
            maps[r.method] = np.clip(m / scale.reshape(k, *([1] * (m.ndim - 1))), -1.0, 1.0)
        images = np.asarray(case.inputs[:k].detach().cpu() if hasattr(case.inputs, "detach")
                            else case.inputs[:k])
        if last:  # the underlays as (k, C, H, W), the layout their maps are drawn from
            images = np.moveaxis(images, -1, 1)
        fig = viz.image_grid(maps, images=images, percentile=100.0,
                             label="credit / its map's 99.5th percentile of |credit|")
        return {"figure": _img(fig, f"attribution maps for {case.name}",
                    f"First {k} samples (rows). Red = positive credit (raises the explained "
                    "output), blue = negative. Each map is scaled to its own 99.5th percentile "
                    "of |credit| (compare where the credit goes, not how large it is)."
                    + (" A group's credit is spread evenly over its pixels (credit per pixel)."
                       if case.groups is not None else ""),
                    cls="gallery")}
    if case.modality == "text" and case.tokens is not None:
        tokens = case.tokens
        rows = [{"method": r.method, "reference": r.reference,
                 # viz.text escapes every token itself and returns HTML
                 "cells": [Markup(viz.text(tokens[i], r.flat[i, 0]))  # type: ignore[index]
                           for i in range(k)]} for r in runs]
        return {"text": {"k": k, "rows": rows}}
    # tabular: mean |credit| per feature, one panel per method
    long_names = max((len(n) for n in case.feature_names or []), default=0) > 14
    ncols = min(3 if long_names else 4, len(runs))
    nrows = -(-len(runs) // ncols)
    n = case.n_players
    fig = Figure(figsize=(3.9 * ncols, (0.9 + 0.24 * min(n, 13)) * nrows + 0.3))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, r in enumerate(runs):
        ax = axes[i // ncols][i % ncols]
        viz.bar(r.flat[:, 0], case.feature_names or None, max_display=12,  # type: ignore[index]
                title=r.method, ax=ax)
    for i in range(len(runs), nrows * ncols):
        axes[i // ncols][i % ncols].set_axis_off()
    fig.subplots_adjust(left=0.16 if long_names else 0.08, right=0.97, top=0.95, bottom=0.08,
                        wspace=0.9 if long_names else 0.45, hspace=0.5)
    truth = ""
    if case.ground_truth is not None and case.feature_names:
        rel = [case.feature_names[j] for j in np.flatnonzero(
            np.asarray(case.ground_truth).reshape(case.n_samples, -1)[0])]
        truth = f" Relevant features (truth): {', '.join(rel)}."
    return {"figure": _img(fig, f"feature importance for {case.name}",
                f"Mean |credit| over the {case.n_samples} samples (± standard error).{truth}",
                cls="gallery")}


#: Preferred method for a tabular case's data-set views (the first that ran).
_DATASET_VIEW_METHODS = ("exact_shapley", "tree_shap", "shapley", "kernel_shap")


def _dataset_views(result: BenchResult, case: Case) -> tuple[Fig | None, str]:
    """Tabular cases: a SHAP-style summary (beeswarm) and a dependence plot of the top feature
    coloured by its strongest interacting feature, for one method over all the case's rows."""
    if case.modality != "tabular" or case.n_samples < 5:
        return None, ""
    runs = {m: result.run_of(case.name, m) for m in result.all_methods()}
    ok = {m: r for m, r in runs.items() if r is not None and r.status == "ok"
          and r.flat is not None and not r.reference}
    if not ok:
        return None, ""
    method = next((m for m in _DATASET_VIEW_METHODS if m in ok), next(iter(ok)))
    run = ok[method]
    assert run.flat is not None
    vals = np.asarray(run.flat[:, 0], dtype=np.float64)
    xs = case.inputs.detach().cpu().numpy() if hasattr(case.inputs, "detach") else case.inputs
    xs = np.asarray(xs, dtype=np.float64).reshape(case.n_samples, -1)
    if xs.shape[1] != vals.shape[1]:  # grouped players: no per-feature values to colour by
        xs = None
    names = list(case.feature_names) if case.feature_names else None
    fig = Figure(figsize=(11.5, 0.9 + 0.3 * min(case.n_players, 12)))
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1.0]})
    viz.beeswarm(vals, xs, names, max_display=12, title=f"{method}: summary", ax=ax1)
    top = int(np.argmax(np.abs(vals).mean(0)))
    if xs is not None:
        viz.dependence(vals, xs, top, names, title=f"{method}: dependence", ax=ax2)
    else:
        ax2.set_axis_off()
    fig.subplots_adjust(left=0.12, right=0.95, top=0.9, bottom=0.14, wspace=0.45)
    top_name = names[top] if names else f"feature {top}"
    caption = (f"{method} over all {case.n_samples} rows. Left: one point per row and feature "
               "(x = credit, colour = the feature's value, low to high). Right: "
               f"the credit of {top_name} (the largest mean |credit|) against its value, "
               "coloured by the feature that interacts most with it.")
    return _img(fig, f"data-set views for {case.name}", caption, cls="gallery"), method


def _case_data(result: BenchResult, case: Case) -> dict[str, Any]:
    skipped = "; ".join(f"{k}: {v}" for k, v in case.skip_metrics.items()
                        if k in result.metrics)
    gallery = _gallery(result, case)
    return {
        "name": case.name, "slug": _slug(case.name), "title": case.title,
        "description": case.description, "model_info": case.model_info,
        "n_samples": case.n_samples, "n_players": case.n_players,
        "shape": str(tuple(case.inputs.shape[1:])), "budget": case.budget,
        "grad_budget": case.grad_budget,
        "grad_note": case.grad_view.note if case.grad_view is not None else "",
        "notes": list(case.notes) + metric_settings(result, case.name), "skipped": skipped,
        "board": _leaderboard_table(result, case),
        "chart": _leaderboard_figure(result, case), "curves": _curve_figures(result, case),
        "gallery": gallery.get("figure"), "gallery_text": gallery.get("text"),
        "dataset_views": _dataset_views(result, case)[0],
        "costs": _cost_rows(result, case),
    }


def _costs(result: BenchResult) -> list[dict[str, Any]]:
    rows = []
    for meth in result.all_methods():
        cells: list[dict[str, Any]] = []
        for c in result.cases:
            r = result.run_of(c.name, meth)
            if r is None or r.status != "ok":
                cells.append({"na": True, "why": "" if r is None else f"{r.status}: {r.message}"})
                continue
            ev = "" if r.n_evals is None else f" / {r.n_evals}"
            cells.append({"na": False, "v": repr(r.seconds), "text": f"{r.seconds:.2f}s{ev}"})
        rows.append({"method": meth, "cells": cells})
    return rows


@lru_cache(maxsize=1)
def _environment() -> Any:
    """The Jinja2 environment (autoescape on) over the templates shipped with tribute."""
    try:
        import jinja2
    except ImportError as exc:  # pragma: no cover - jinja2 is a dependency
        raise ImportError("the HTML report needs jinja2: pip install jinja2") from exc
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tribute.bench", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _asset(name: str) -> Markup:
    """The report's own CSS or script, inlined verbatim (trusted: shipped with tribute)."""
    source = _environment().loader.get_source(_environment(), name)[0]
    return Markup(source)


def render_report(result: BenchResult, title: str | None = None) -> str:
    """The report as one HTML string (see the module docstring)."""
    summary = {
        "suite": result.suite, "seed": result.seed, "n_cases": len(result.cases),
        "n_methods": len(result.methods), "n_metrics": len(result.metrics),
        "seconds": result.seconds, "created": result.created,
        "versions": ", ".join(f"{k} {v}" for k, v in result.versions.items()),
    }
    template = _environment().get_template("report.html.j2")
    return str(template.render(
        title=title or f"tribute benchmark — suite {result.suite}", r=summary,
        css=_asset("report.css"), js=_asset("report.js"), summary=_summary(result),
        cases=[_case_data(result, c) for c in result.cases], costs=_costs(result),
        metric_rows=_metric_rows(result), method_rows=_method_rows(result)))


def write_report(result: BenchResult, path: str | Path, title: str | None = None) -> Path:
    """Write the self-contained HTML report to ``path`` (folders are created)."""
    return atomic_write_text(path, render_report(result, title))
