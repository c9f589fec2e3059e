"""The benchmark report: ONE self-contained HTML file (no external assets, opens offline).

Figures are PNGs embedded as ``data:`` URIs (:func:`tribute.viz.to_data_uri`); the CSS and the
small script (sortable tables, a render check that marks every image ``data-rendered="ok"``)
are inline. Every string that comes from data (names, messages, summaries) is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .. import viz
from .leaderboard import case_ranks, fmt_cell, overall, sanity_checks, tied_with_best
from .runner import REFERENCES, BenchResult, MethodRun
from .suites import Case

__all__ = ["render_report", "write_report"]

#: Samples shown per case in the heat-map / text gallery.
GALLERY_SAMPLES = 3
_DPI = 80

CSS = """
:root{--fg:#1d1f23;--muted:#5b6270;--line:#d9dce1;--best:#fde9b5;--tie:#fbf5e2;--ok:#1a7f37;
--bad:#c62828;--bg2:#f6f7f9;--accent:#2457a6}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:var(--fg);margin:0;background:#fff}
header{background:#102a4c;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:2px 0;color:#c9d6ea}
nav{padding:8px 28px;background:var(--bg2);border-bottom:1px solid var(--line);
position:sticky;top:0;z-index:5;font-size:13px}
nav a{margin-right:14px;color:var(--accent);text-decoration:none;white-space:nowrap}
main{padding:8px 28px 40px;max-width:1500px}
section{border-bottom:1px solid var(--line);padding:10px 0 18px}
h2{font-size:19px;margin:18px 0 6px}
h3{font-size:15px;margin:16px 0 6px}
p.desc{max-width:1050px;margin:4px 0}
p.meta{color:var(--muted);margin:2px 0;font-size:13px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid var(--line);padding:4px 8px;vertical-align:top}
th{background:var(--bg2);text-align:left;cursor:pointer;user-select:none;white-space:nowrap}
th.metric{white-space:normal;min-width:90px;max-width:150px}
.scroll{overflow-x:auto;max-width:100%}
table.lb{font-size:12.5px}table.lb td{padding:3px 6px}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.best{background:var(--best);font-weight:600}
td.tie{background:var(--tie)}
tr.ref td:first-child{font-style:italic;color:var(--muted)}
td sup{color:var(--muted);font-weight:400;margin-left:3px}
td.na{color:#9aa0aa;text-align:center}
.pass{color:var(--ok);font-weight:600}.fail{color:var(--bad);font-weight:600}
figure{margin:10px 0;display:inline-block;vertical-align:top;max-width:100%}
figure img{max-width:100%;height:auto;border:1px solid var(--line)}
figcaption{color:var(--muted);font-size:12px;max-width:900px}
.gallery-text td{min-width:280px}
details{margin:8px 0}summary{cursor:pointer;color:var(--accent)}
code{background:var(--bg2);padding:0 3px;border-radius:3px}
.legend{font-size:12px;color:var(--muted)}
"""

JS = """
(function(){
  var errors=[];
  window.addEventListener('error',function(e){errors.push(String(e.message||e));
    document.body.setAttribute('data-errors',errors.join(' | '));});
  function markImages(){
    var imgs=document.images,bad=0;
    for(var i=0;i<imgs.length;i++){
      var ok=imgs[i].complete&&imgs[i].naturalWidth>0&&imgs[i].naturalHeight>0;
      imgs[i].setAttribute('data-rendered',ok?'ok':'broken'); if(!ok){bad++;}
    }
    document.body.setAttribute('data-images',String(imgs.length));
    document.body.setAttribute('data-broken',String(bad));
    document.body.setAttribute('data-ready','1');
  }
  function sortable(table){
    var heads=table.querySelectorAll('thead th');
    heads.forEach(function(th,col){
      th.addEventListener('click',function(){
        var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
        var dir=th.getAttribute('data-dir')==='asc'?-1:1; th.setAttribute('data-dir',dir>0?'asc':'desc');
        rows.sort(function(a,b){
          var x=a.cells[col],y=b.cells[col];
          var vx=x?x.getAttribute('data-v'):null,vy=y?y.getAttribute('data-v'):null;
          var nx=parseFloat(vx),ny=parseFloat(vy);
          if(isNaN(nx)&&isNaN(ny)){return dir*(x?x.textContent:'').localeCompare(y?y.textContent:'');}
          if(isNaN(nx)){return 1;} if(isNaN(ny)){return -1;}
          return dir*(nx-ny);
        });
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
  }
  document.querySelectorAll('table.sortable').forEach(sortable);
  if(document.readyState==='complete'){markImages();}else{window.addEventListener('load',markImages);}
})();
"""


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in s.lower())


def _img(fig: Figure, alt: str, caption: str = "", cls: str = "") -> str:
    uri = viz.to_data_uri(fig, dpi=_DPI)
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return (f'<figure class="{_e(cls)}"><img alt="{_e(alt)}" src="{uri}">{cap}</figure>')


def _arrow(higher: bool) -> str:
    return "↑" if higher else "↓"


# --------------------------------------------------------------------------- tables
def _leaderboard_table(result: BenchResult, case: Case) -> str:
    mets = result.metrics_of(case.name)
    heads = ['<th title="method">method</th>']
    for m in mets:
        info = result.metric_info[m]
        heads.append(f'<th class="metric" title="{_e(info["summary"])}">'
                     f'{_e(m).replace("_", "_<wbr>")}&nbsp;'
                     f'{_arrow(bool(info["higher_is_better"]))}</th>')
    heads += ['<th title="wall-clock seconds of the explain call">seconds</th>',
              '<th title="value-function evaluations per input">evals / input</th>']
    ranks = {m: case_ranks(result, case.name, m) for m in mets}
    ties = {m: tied_with_best(result, case.name, m) for m in mets}
    rows = []
    for meth in result.all_methods():
        run = result.run_of(case.name, meth)
        if run is None:
            continue
        cls = ' class="ref"' if run.reference else ""
        label = meth + (" †" if run.reference else "")
        cells = [f'<td data-v="{_e(meth)}" title="{_e(run.message)}">{_e(label)}</td>']
        if run.status != "ok":
            cells.append(f'<td class="na" colspan="{len(mets)}" title="{_e(run.message)}">'
                         f'{_e(run.status)}: {_e(run.message[:140])}</td>')
            cells += ['<td class="na">–</td>', '<td class="na">–</td>']
            rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
            continue
        for m in mets:
            s = result.score(case.name, meth, m)
            if s is None or s.status != "ok" or not math.isfinite(s.mean):
                why = "" if s is None else s.message
                cells.append(f'<td class="na" title="{_e(why)}">–</td>')
                continue
            r = ranks[m].get(meth)
            klass = "num best" if r == 1 else ("num tie" if ties[m].get(meth) else "num")
            cells.append(f'<td class="{klass}" data-v="{s.mean!r}" title="n = {s.n} samples">'
                         f'{_e(fmt_cell(s.mean, s.stderr))}<sup>{r}</sup></td>')
        cells.append(f'<td class="num" data-v="{run.seconds!r}">{run.seconds:.2f}</td>')
        ev = "–" if run.n_evals is None else str(run.n_evals)
        cells.append(f'<td class="num" data-v="{run.n_evals if run.n_evals is not None else ""}">'
                     f'{ev}</td>')
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return (f'<div class="scroll"><table class="sortable lb" data-case="{_e(case.name)}">'
            f"<thead><tr>{''.join(heads)}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
            '<p class="legend">mean ± standard error over samples; superscript = rank; '
            'highlighted = best; lightly shaded = within the 95% paired interval of the best; '
            '† = reference attribution (not a method); click a header to sort.</p>')


def _cost_table(result: BenchResult, case: Case) -> str:
    rows = []
    for meth in result.all_methods():
        run = result.run_of(case.name, meth)
        if run is None:
            continue
        status = (f'<span class="pass">{_e(run.status)}</span>' if run.status == "ok"
                  else f'<span class="fail">{_e(run.status)}</span>')
        rows.append(
            f"<tr><td>{_e(meth)}</td><td>{status}</td>"
            f'<td class="num">{run.seconds:.3f}</td>'
            f'<td class="num">{"–" if run.n_evals is None else run.n_evals}</td>'
            f'<td class="num">{"–" if run.n_rows is None else run.n_rows}</td>'
            f'<td class="num">{"default" if run.budget is None else run.budget}</td>'
            f"<td>{_e(run.message)}</td></tr>")
    return ("<table class=\"sortable\"><thead><tr><th>method</th><th>status</th><th>seconds</th>"
            "<th>evals / input</th><th>model rows</th><th>budget</th><th>note</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _summary(result: BenchResult) -> str:
    ov = overall(result)
    rows = []
    for r in ov:
        mr = f"{r['mean_rank']:.2f}" if math.isfinite(r["mean_rank"]) else "–"
        ev = f"{r['evals']:.0f}" if math.isfinite(r["evals"]) else "–"
        rows.append(f"<tr><td>{_e(r['method'])}</td><td class=\"num\" data-v=\"{mr}\">{mr}</td>"
                    f"<td class=\"num\">{r['wins']}</td><td class=\"num\">{r['scored']}/"
                    f"{r['pairs']}</td><td class=\"num\">{r['cases_ok']}/{len(result.cases)}</td>"
                    f"<td class=\"num\" data-v=\"{r['seconds']!r}\">{r['seconds']:.2f}</td>"
                    f"<td class=\"num\">{ev}</td></tr>")
    table = ("<table class=\"sortable\" id=\"overall\"><thead><tr><th>method</th>"
             "<th>mean rank ↓</th><th>wins</th><th>scored pairs</th><th>cases run</th>"
             "<th>total seconds</th><th>mean evals / input</th></tr></thead>"
             f"<tbody>{''.join(rows)}</tbody></table>")
    checks = sanity_checks(result)
    failed = [c for c in checks if not c.passed]
    by_kind: dict[str, list[int]] = {}
    for c in checks:
        k = by_kind.setdefault(c.check, [0, 0])
        k[0] += c.passed
        k[1] += 1
    kinds = "".join(
        f"<li><code>{_e(k)}</code>: <span class=\"{'pass' if v[0] == v[1] else 'fail'}\">"
        f"{v[0]}/{v[1]} passed</span></li>" for k, v in by_kind.items())
    fails = "".join(f"<li class=\"fail\">{_e(c.check)} on {_e(c.case)} / {_e(c.metric)}: "
                    f"{_e(c.detail)}</li>" for c in failed)
    notes = "".join(f"<li>{_e(n)}</li>" for n in result.notes)
    intro = (
        "<p class=\"desc\">Each case is a model, inputs to explain, a target, a baseline and "
        "players — with a ground truth where it is known by construction (symbolic tabular "
        "functions, planted image patterns, the DiFull grid, planted trigger tokens) and "
        "none on real scikit-learn data, where only faithfulness metrics apply. Every score "
        "is a mean over the explained samples ± its standard error; ties within the 95% "
        "paired interval are shaded. Reference attributions († oracle, random, wrong_class) "
        "calibrate each table and check the benchmark itself.</p>")
    return (
        '<section id="summary"><h2>Summary</h2>' + intro +
        "<p class=\"desc\">Mean rank of each method among the real methods over every "
        "(case, metric) pair it was scored on (1 = best). Coverage matters: a method that "
        "could not run on a case is not ranked there.</p>" + table +
        "<h3>Sanity checks of the benchmark itself</h3><p class=\"desc\">On every case with "
        "ground truth, the oracle (the truth used as the attribution) must rank first and "
        "seeded random credits last on the ground-truth metrics; on classification cases, "
        "credits for the wrong class must rank below every real method on faithfulness. A "
        "failed check flags either a broken metric or a method that does worse than chance "
        "or than explaining the wrong class — read its detail.</p>"
        f"<ul>{kinds}</ul>" + (f"<ul>{fails}</ul>" if fails else "")
        + (f"<h3>Notes</h3><ul>{notes}</ul>" if notes else "") + "</section>")


def _metric_glossary(result: BenchResult) -> str:
    rows = []
    for name in result.metrics:
        info = result.metric_info[name]
        direction = "higher is better" if info["higher_is_better"] else "lower is better"
        rows.append(f"<tr><td><code>{_e(name)}</code></td><td>{_e(info['category'])}</td>"
                    f"<td>{_e(direction)}</td><td>{_e(info['summary'])}</td>"
                    f"<td>{_e(info['paper'])}</td></tr>")
    return ('<section id="metrics"><h2>What the metrics mean</h2>'
            "<table><thead><tr><th>metric</th><th>category</th><th>direction</th>"
            "<th>summary</th><th>reference</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></section>")


def _method_glossary(result: BenchResult) -> str:
    rows = []
    for name in result.methods:
        info = result.method_info.get(name, {})
        rows.append(f"<tr><td><code>{_e(name)}</code></td><td>{_e(info.get('family', ''))}</td>"
                    f"<td>{_e(info.get('summary', ''))}</td><td>{_e(info.get('paper', ''))}</td>"
                    "</tr>")
    refs = {
        "oracle": "The ground truth used as the attribution: exact values where known, else "
                  "the relevance mask (for grouped players, the fraction of each group that "
                  "is relevant). Only on cases with ground truth.",
        "random": "I.i.d. standard-normal credits from a seeded local generator.",
        "wrong_class": "feature_ablation credits for another class ((target + 1) mod C), "
                       "scored against the true target. Classification cases only.",
    }
    for name in REFERENCES:
        rows.append(f"<tr class=\"ref\"><td><code>{_e(name)}</code> †</td><td>reference</td>"
                    f"<td>{_e(refs[name])}</td><td></td></tr>")
    return ('<section id="methods"><h2>Methods</h2>'
            "<table><thead><tr><th>method</th><th>family</th><th>summary</th>"
            "<th>reference</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></section>")


# --------------------------------------------------------------------------- figures
def _leaderboard_figure(result: BenchResult, case: Case) -> str:
    mets = result.metrics_of(case.name)
    if not mets:
        return ""
    scores: dict[str, dict[str, tuple[float, float | None]]] = {}
    for meth in result.all_methods():
        for m in mets:
            s = result.score(case.name, meth, m)
            if s is not None and s.status == "ok" and math.isfinite(s.mean):
                se = s.stderr if math.isfinite(s.stderr) else None
                scores.setdefault(meth, {})[m] = (s.mean, se)
    if not scores:
        return ""
    directions = {m: "higher" if result.metric_info[m]["higher_is_better"] else "lower"
                  for m in mets}
    fig = viz.leaderboard(scores, directions=directions, ncols=min(4, len(mets)))
    return _img(fig, f"leaderboard chart for {case.name}",
                "Mean ± standard error per metric; the best method is highlighted.")


def _curve_figures(result: BenchResult, case: Case) -> str:
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
        return ""
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


def _gallery(result: BenchResult, case: Case) -> str:
    runs: list[MethodRun] = []
    for meth in result.all_methods():
        run = result.run_of(case.name, meth)
        if run is not None and run.status == "ok" and run.flat is not None:
            runs.append(run)
    if not runs:
        return ""
    k = min(GALLERY_SAMPLES, case.n_samples)
    if case.modality == "image":
        maps = {}
        for r in runs:
            m = _element_maps(case, r.flat, k)  # type: ignore[arg-type]
            # each map on its own scale (methods' credits live on different scales: random
            # noise would otherwise wash out every other map of a shared colour bar)
            scale = np.percentile(np.abs(m.reshape(k, -1)), 99.5, axis=1)
            scale = np.where(scale > 0, scale, np.abs(m.reshape(k, -1)).max(axis=1))
            scale = np.where(scale > 0, scale, 1.0)
            maps[r.method] = np.clip(m / scale.reshape(k, *([1] * (m.ndim - 1))), -1.0, 1.0)
        images = np.asarray(case.inputs[:k].detach().cpu() if hasattr(case.inputs, "detach")
                            else case.inputs[:k])
        fig = viz.image_grid(maps, images=images, percentile=100.0)
        return _img(fig, f"attribution maps for {case.name}",
                    f"First {k} samples (rows). Red = positive credit (raises the explained "
                    "output), blue = negative. Each map is scaled to its own 99.5th percentile "
                    "of |credit| (compare where the credit goes, not how large it is).",
                    cls="gallery")
    if case.modality == "text" and case.tokens is not None:
        head = "".join(f"<th>sample {i}</th>" for i in range(k))
        body = []
        for r in runs:
            cells = "".join(
                f"<td>{viz.text(case.tokens[i], r.flat[i, 0])}</td>"  # type: ignore[index]
                for i in range(k))
            cls = ' class="ref"' if r.reference else ""
            body.append(f"<tr{cls}><td>{_e(r.method)}</td>{cells}</tr>")
        return ('<table class="gallery-text"><thead><tr><th>method</th>'
                f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
                '<p class="legend">Tokens highlighted by credit (red = raises the class-1 '
                "logit, blue = lowers it); TRIGGER tokens are the ground truth.</p>")
    # tabular: mean |credit| per feature, one panel per method
    long_names = max((len(n) for n in case.feature_names or []), default=0) > 14
    ncols = min(3 if long_names else 4, len(runs))
    nrows = -(-len(runs) // ncols)
    n = case.n_players
    fig = Figure(figsize=(3.9 * ncols, (0.9 + 0.24 * min(n, 13)) * nrows + 0.3))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, r in enumerate(runs):
        ax = axes[i // ncols][i % ncols]
        viz.bar(r.flat[:, 0], case.feature_names, max_display=12,  # type: ignore[index]
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
    return _img(fig, f"feature importance for {case.name}",
                f"Mean |credit| over the {case.n_samples} samples (± standard error).{truth}",
                cls="gallery")


def _case_section(result: BenchResult, case: Case) -> str:
    notes = "".join(f"<li>{_e(n)}</li>" for n in case.notes)
    parts = [
        f'<section id="case-{_slug(case.name)}" data-case="{_e(case.name)}">',
        f"<h2>{_e(case.title)}</h2>",
        f'<p class="desc">{_e(case.description)}</p>',
        f'<p class="meta">Model: {_e(case.model_info)}. {case.n_samples} samples, '
        f"{case.n_players} players, input shape {_e(tuple(case.inputs.shape[1:]))}; budget "
        f"{case.budget} evaluations per input for sampling methods, {case.grad_budget} "
        "gradient points for budgeted gradient methods.</p>",
    ]
    if case.grad_view is not None:
        parts.append(f'<p class="meta">{_e(case.grad_view.note)}.</p>')
    if notes:
        parts.append(f"<ul class=\"meta\">{notes}</ul>")
    if case.skip_metrics:
        skipped = "; ".join(f"{k}: {v}" for k, v in case.skip_metrics.items()
                            if k in result.metrics)
        if skipped:
            parts.append(f'<p class="meta">Not scored here — {_e(skipped)}.</p>')
    parts.append("<h3>Leaderboard</h3>")
    parts.append(_leaderboard_table(result, case))
    parts.append(_leaderboard_figure(result, case))
    curves = _curve_figures(result, case)
    if curves:
        parts.append("<h3>Deletion and insertion curves</h3>" + curves)
    parts.append("<h3>Gallery</h3>" + _gallery(result, case))
    parts.append("<details><summary>Runtime, evaluations and failures</summary>"
                 + _cost_table(result, case) + "</details>")
    parts.append("</section>")
    return "\n".join(parts)


def _costs(result: BenchResult) -> str:
    meths = result.all_methods()
    head = "".join(f"<th>{_e(c.name)}</th>" for c in result.cases)
    rows = []
    for meth in meths:
        cells = []
        for c in result.cases:
            r = result.run_of(c.name, meth)
            if r is None or r.status != "ok":
                why = "" if r is None else f"{r.status}: {r.message}"
                cells.append(f'<td class="na" title="{_e(why)}">–</td>')
                continue
            ev = "" if r.n_evals is None else f" / {r.n_evals}"
            cells.append(f'<td class="num" data-v="{r.seconds!r}">{r.seconds:.2f}s{ev}</td>')
        rows.append(f"<tr><td>{_e(meth)}</td>{''.join(cells)}</tr>")
    return ('<section id="costs"><h2>Runtime and evaluations per method</h2>'
            '<p class="desc">Seconds of the explain call / value-function evaluations per '
            "input, per case (on this machine; compare within a run only).</p>"
            f"<div class=\"scroll\"><table class=\"sortable\"><thead><tr><th>method</th>{head}"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>")


def render_report(result: BenchResult, title: str | None = None) -> str:
    """The report as one HTML string (see the module docstring)."""
    ttl = title or f"tribute benchmark — suite {result.suite}"
    nav = "".join(f'<a href="#case-{_slug(c.name)}">{_e(c.name)}</a>' for c in result.cases)
    versions = ", ".join(f"{k} {v}" for k, v in result.versions.items())
    body = [
        f"<header><h1>{_e(ttl)}</h1>"
        f"<p>suite <b>{_e(result.suite)}</b> · seed {result.seed} · {len(result.cases)} cases · "
        f"{len(result.methods)} methods + references · {len(result.metrics)} metrics · "
        f"methods and metrics ran in {result.seconds:.1f} s</p>"
        f"<p>{_e(result.created)} · {_e(versions)}</p></header>",
        f'<nav><a href="#summary">summary</a>{nav}<a href="#costs">costs</a>'
        '<a href="#metrics">metrics</a><a href="#methods">methods</a></nav>',
        "<main>", _summary(result),
        *(_case_section(result, c) for c in result.cases),
        _costs(result), _metric_glossary(result), _method_glossary(result), "</main>",
    ]
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(ttl)}</title><style>{CSS}</style></head>"
            f"<body data-report=\"tribute-bench\">{''.join(body)}<script>{JS}</script>"
            "</body></html>\n")


def write_report(result: BenchResult, path: str | Path, title: str | None = None) -> Path:
    """Write the self-contained HTML report to ``path`` (folders are created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_report(result, title), encoding="utf-8")
    return p
