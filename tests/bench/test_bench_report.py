"""The HTML report: self-contained, escaped, and rendered by a real browser without errors.

The browser test runs headless Chromium (Debian package ``chromium``) on the report and reads
back the DOM after the page's own script has marked every ``<img>`` as rendered
(``naturalWidth > 0``) and counted broken ones; console messages (errors, uncaught exceptions)
are read from Chromium's log on stderr. It skips only when the chromium binary is absent, and
first checks that the detector itself catches a broken image and a script error.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from markupsafe import escape

from tribute import bench
from tribute.metrics import metrics as metric_infos

CASES = ["symbolic", "difull", "planted_text"]  # one gallery of each kind
EVIL = 'Evil <script>alert("x")</script> & co'


@pytest.fixture(scope="module")
def result() -> bench.BenchResult:
    suite = bench.build_suite("tiny", seed=0, cases=CASES)
    suite.cases[0].title = EVIL
    suite.cases[0].notes.append("note with <b>markup</b>")
    return bench.run(suite, methods=["saliency", "feature_ablation"], log=None)


@pytest.fixture(scope="module")
def report(result: bench.BenchResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bench.write_report(result, tmp_path_factory.mktemp("report") / "r" / "report.html")


def test_report_is_self_contained_and_escaped(report: Path) -> None:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    assert report.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    html = report.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>")
    assert "<script>alert" not in html and "<b>markup</b>" not in html
    assert str(escape(EVIL)) in html  # Evil &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; ...
    assert "note with &lt;b&gt;markup&lt;/b&gt;" in html
    assert html.count("<script>") == 1  # only the report's own inline script
    srcs = re.findall(r'src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'<link|href="https?:|src="https?:|@import|url\(', html)


def test_names_from_data_are_escaped_everywhere(result: bench.BenchResult) -> None:
    """A method or suite name with markup is shown as text, in the page and in attributes."""
    import copy

    evil = copy.deepcopy(result)
    evil.suite = '<script>alert("suite")</script>'
    old = "feature_ablation"
    bad = '<script>alert("method")</script>'
    evil.methods = [bad if m == old else m for m in evil.methods]
    evil.method_info[bad] = evil.method_info.pop(old)
    for run in evil.runs:
        if run.method == old:
            run.method = bad
    for score in evil.scores:
        if score.method == old:
            score.method = bad
    html = bench.render_report(evil)
    assert html.count("<script>") == 1  # only the report's own script
    assert "alert(" not in html.replace("alert(&#34;", "")
    assert str(escape(evil.suite)) in html and str(escape(bad)) in html
    # the escaped method still has its row, with numbers
    assert f'data-v="{escape(bad)}"' in html


def test_report_has_every_part(result: bench.BenchResult, report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    for section in ("summary", "costs", "metrics", "methods", *(f"case-{c.replace('_', '-')}"
                                                                  for c in CASES)):
        assert f'id="{section}"' in html, section
    # one leaderboard table per case, with ± standard errors and ranks
    assert html.count('class="sortable lb"') == len(CASES)
    assert "±" in html and "<sup>1</sup>" in html
    # per case: leaderboard chart + deletion/insertion curves (+ gallery image where drawn)
    for case in CASES:
        assert f'alt="leaderboard chart for {case}"' in html
        assert f'alt="deletion and insertion curves for {case}"' in html
    assert 'alt="feature importance for symbolic"' in html
    # tabular cases also get the data-set views (summary + dependence) of one method
    assert 'alt="data-set views for symbolic"' in html and "Data-set views" in html
    assert 'alt="data-set views for difull"' not in html
    assert 'alt="attribution maps for difull"' in html
    assert html.count("TRIGGER") >= 3  # text highlighting for the text case
    # what each metric means: registry summary and direction
    infos = metric_infos()
    for name in ("deletion", "auroc"):
        assert str(escape(infos[name].summary[:30])) in html
    assert "lower is better" in html and "higher is better" in html
    # runtime and evaluations per method
    assert "evals / input" in html and "Runtime and evaluations per method" in html
    assert "Sanity checks of the benchmark itself" in html


# --------------------------------------------------------------------------- browser
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000"]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _render(binary: str, page: Path) -> tuple[str, list[str]]:
    """(DOM after load, console lines) of ``page`` in headless Chromium."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [binary, *_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120, check=False)
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, console


def _body_attrs(dom: str) -> dict[str, str]:
    m = re.search(r"<body([^>]*)>", dom)
    assert m, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(1)))


def test_report_renders_in_chromium(report: Path, tmp_path: Path) -> None:
    binary = _chromium()
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    html = report.read_text(encoding="utf-8")
    # the detector catches what it must: a broken image and an uncaught script error
    broken = tmp_path / "broken.html"
    first = re.search(r'src="data:image/png;base64,[^"]*"', html)
    assert first
    broken.write_text(html.replace(first.group(0), 'src="data:image/png;base64,AAAA"', 1)
                      .replace("<script>", "<script>undefinedFunction();</script><script>", 1),
                      encoding="utf-8")
    dom, console = _render(binary, broken)
    attrs = _body_attrs(dom)
    assert attrs.get("data-broken") == "1" and 'data-rendered="broken"' in dom
    assert any("undefinedFunction" in line for line in console), console

    # the real report: every figure decoded with a size, no console output at all
    dom, console = _render(binary, report)
    attrs = _body_attrs(dom)
    n_img = len(re.findall(r"<img ", html))
    assert attrs.get("data-ready") == "1", attrs
    assert attrs.get("data-images") == str(n_img) and n_img >= 3 * len(CASES) - 1
    assert attrs.get("data-broken") == "0", attrs
    assert "data-errors" not in attrs
    assert dom.count('data-rendered="ok"') == n_img
    assert not console, console
    # the leaderboard tables are in the rendered DOM with their numbers
    assert dom.count('class="sortable lb"') == len(CASES)
    assert re.search(r"\d\.\d{3} ± \d", dom)


def test_numeric_cells_of_sortable_tables_carry_their_number(report: Path) -> None:
    # report.js sorts by data-v and falls back to the cell *text* without it: the overall table's
    # wins / evals and each case's cost table sorted "10" before "9" and "100.000" before "12.000"
    from html.parser import HTMLParser

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.depth = 0
            self.missing: list[str] = []
            self.numeric = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if tag == "table" and "sortable" in (a.get("class") or ""):
                self.depth += 1
            if tag == "td" and self.depth and "num" in (a.get("class") or "").split():
                self.numeric += 1
                if "data-v" not in a:
                    self.missing.append(str(a))

        def handle_endtag(self, tag: str) -> None:
            if tag == "table" and self.depth:
                self.depth -= 1

    p = Cells()
    p.feed(report.read_text(encoding="utf-8"))
    assert p.numeric > 20 and not p.missing, p.missing[:5]
