"""Audit aud40x: the explorer's csv uploads are read by --data's reader (one set of rules, its
warnings in the reply and the page), and the numbers it shows for a classifier whose classes
are not 0..k-1 equal a brute-force Shapley computation outside tribute."""

from __future__ import annotations

import itertools
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")
from starlette.testclient import TestClient  # noqa: E402

from tribute.explorer import ExplorerConfig, create_app  # noqa: E402
from tribute.explorer.subjects import file_spec  # noqa: E402
from tribute.jobs.data import load_dataset  # noqa: E402

_FACTORY = '''
import numpy as np
from sklearn.linear_model import LogisticRegression


def _xy():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(80, 4))
    W = np.array([[1.0, -2.0, 0.5, 0.0], [-1.0, 1.0, 0.0, 2.0], [0.5, 0.5, -1.5, -1.0]])
    return X, (X @ W.T).argmax(1)


def ints():
    X, y = _xy()
    return LogisticRegression(max_iter=5000).fit(X, np.array([0, 2, 5])[y])


def strs():
    X, y = _xy()
    return LogisticRegression(max_iter=5000).fit(X, np.array(["cat", "dog", "eel"])[y])
'''

ROWS = np.random.default_rng(9).normal(size=(7, 4))


def _wait(client: TestClient, job: dict[str, Any]) -> dict[str, Any]:
    t0 = time.time()
    while job["status"] in ("queued", "running"):
        assert time.time() - t0 < 60, job
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['id']}").json()
    assert job["status"] == "done", job
    return job


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "aud40x_factory.py").write_text(_FACTORY, encoding="utf-8")
    pd.DataFrame(ROWS, columns=["t", "a", "b", "c"]).to_csv(tmp_path / "named.csv", index=False)
    # numeric column names (years) and a labelled index: read by --data as a header with index
    years = pd.DataFrame(ROWS, columns=["2019", "2020", "2021", "2022"],
                         index=[f"r{i}" for i in range(len(ROWS))])
    years.to_csv(tmp_path / "years.csv")
    return tmp_path


def _client(folder: Path, factory: str = "ints", data: str = "named.csv") -> Any:
    spec = file_spec(f"{folder}/aud40x_factory.py:{factory}", data=str(folder / data), name="m")
    return TestClient(create_app(ExplorerConfig(subjects=[spec])), base_url="http://127.0.0.1")


def _upload(client: TestClient, name: str, text: str) -> Any:
    return client.post(f"/api/subjects/m/inputs?filename={name}", content=text.encode(),
                       headers={"Content-Type": "application/octet-stream"})


def _row(client: TestClient, index: int) -> list[float]:
    feats = client.get(f"/api/subjects/m/inputs/{index}").json()["features"]
    return [f["value"] for f in feats]


# ------------------------------------------------------------------ uploads: one reader


def test_upload_with_a_row_counter_column_gives_the_data_readers_warning(folder: Path) -> None:
    # 't' holds 0..n-1: --data warns that it is explained as a feature; the upload said nothing
    text = "t,a,b,c\n0,1.5,2,3\n1,4,5,6\n2,7,8,9\n"
    (folder / "up.csv").write_text(text, encoding="utf-8")
    with pytest.warns(UserWarning, match=r"holds exactly the row numbers 0\.\.2"):
        load_dataset(folder / "up.csv")
    with _client(folder) as c:
        r = _upload(c, "up.csv", text)
        assert r.status_code == 200, r.text
        notes = r.json()["warnings"]
        assert len(notes) == 1 and "holds exactly the row numbers 0..2" in notes[0], notes
        assert notes[0].startswith("upload: the first column 't' of 'up.csv'"), notes
        assert _row(c, r.json()["indices"][0]) == [0.0, 1.5, 2.0, 3.0]


def test_upload_with_a_labelled_index_and_year_columns_is_read_as_data_reads_it(folder: Path) -> None:
    # ``,2019,...`` then ``r0,...``: --data reads a header and a row-label index; the upload
    # was refused ("could not convert string '' to float64")
    text = (folder / "years.csv").read_text(encoding="utf-8")
    with _client(folder, data="years.csv") as c:
        r = _upload(c, "years.csv", text)
        assert r.status_code == 200, r.text
        assert r.json()["warnings"] == []
        new = r.json()["indices"]
        assert len(new) == len(ROWS)
        for k in (0, 3, 6):
            np.testing.assert_allclose(_row(c, new[k]), ROWS[k], rtol=1e-15)
            assert _row(c, new[k]) == _row(c, k)  # the --data rows of the same file


def test_upload_whose_first_column_is_text_is_refused_as_data_refuses_it(folder: Path) -> None:
    # no header and a row label in the first column: the file cannot tell; --data says so,
    # the upload answered with numpy's "could not convert string 'r2' to float64"
    text = "r1,1.5,2,3\nr2,0.5,1,2\nr3,2,3,4\n"
    (folder / "labels.csv").write_text(text, encoding="utf-8")
    with pytest.raises(Exception, match="cannot tell whether it is a header") as want:
        load_dataset(folder / "labels.csv")
    with _client(folder) as c:
        r = _upload(c, "labels.csv", text)
    assert r.status_code == 400
    msg = r.json()["error"]
    assert msg == str(want.value).replace(f"data: the first line of {str(folder / 'labels.csv')!r}",
                                          "upload: the first line of 'labels.csv'"), msg


def test_upload_whose_unnamed_first_column_is_not_an_index_warns(folder: Path) -> None:
    # an empty first header cell: read as the index (as --data reads it); its values are not
    # whole numbers, so it may be a feature saved without a name: --data warns, so does the page
    text = ",t,a,b,c\n0.5,0,1,2,3\n1.5,1,4,5,6\n2.5,5,7,8,9\n"
    with _client(folder) as c:
        r = _upload(c, "frac.csv", text)
        assert r.status_code == 200, r.text
        notes = r.json()["warnings"]
        assert len(notes) == 1 and "has no name in the header" in notes[0], notes
        assert _row(c, r.json()["indices"][2]) == [5.0, 7.0, 8.0, 9.0]


@pytest.mark.parametrize("text,refusal", [
    ("0,1.5,2,3,4\n1,4,5,6,7\n2,7,8,9,1\n", "got an array of shape [3, 5]"),
    ("id,t,a,b,c\n1,1.5,2,3,4\n2,4,5,6,7\n3,7,8,9,1\n", "are not the subject's features"),
])
def test_upload_one_column_too_wide_names_the_row_counter(folder: Path, text: str, refusal: str) -> None:
    # a saved index makes the table one column too wide: the refusal said only the shape (or
    # the columns), not that the extra column holds the row numbers (--data warns so)
    with _client(folder) as c:
        r = _upload(c, "wide.csv", text)
    assert r.status_code == 400
    msg = r.json()["error"]
    assert refusal in msg and "holds exactly the row numbers" in msg, msg


def test_upload_name_never_makes_a_path(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    # the bytes go to a private temporary file: a name with '..' writes nothing outside it
    probe = tmp_path_factory.mktemp("aud40x_probe")
    name = f"../../../../../../..{probe}/evil.csv"
    with _client(folder) as c:
        r = _upload(c, name, "t,a,b,c\n3,1,2,3\n")
    assert r.status_code == 200, r.text
    assert list(probe.iterdir()) == []


@pytest.mark.parametrize("text", [
    "a,b,c\n1,2,3\n4,5,6\n",
    ",a,b,c\n0,1,2,3\n1,4,5,6\n",
    "0,1,2\n1.5,2,3\n4,5,6\n",
    "1.5,2,3\n4,5,6\n",
    ",2019,2020\neast,1.5,2\nwest,3,4\n",
    "id,a,b\n1,1.5,2\n2,3,4\n3,5,6\n",
    "\ufeffa,b\n1,2\n3,4\n",
])
def test_read_table_is_load_datasets_reader(text: str, tmp_path: Path) -> None:
    from tribute.jobs.data import read_table

    p = tmp_path / "t.csv"
    p.write_text(text, encoding="utf-8")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ds = load_dataset(p)
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # notes instead of warnings
        same = read_table(p, name="t.csv", notes=notes)
    assert same.columns == ds.columns
    np.testing.assert_array_equal(same.arrays[0], ds.arrays[0])
    assert notes == [str(w.message).replace(repr(str(p)), "'t.csv'") for w in seen]


# ------------------------------------------------------------------ numbers shown


def _shapley(f: Any, x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Exact Shapley values of ``f`` at ``x`` (absent features at ``base``), by enumeration."""
    d = x.size
    phi = np.zeros(d)
    for j in range(d):
        others = [k for k in range(d) if k != j]
        for size in range(d):
            for s in itertools.combinations(others, size):
                w = math.factorial(size) * math.factorial(d - size - 1) / math.factorial(d)
                z = base.copy()
                z[list(s)] = x[list(s)]
                without = f(z)
                z[j] = x[j]
                phi[j] += w * (f(z) - without)
    return phi


@pytest.mark.parametrize("factory,labels", [("ints", ["0", "2", "5"]), ("strs", ["cat", "dog", "eel"])])
def test_classifier_with_labels_not_0_to_k_shows_the_right_class_and_credits(
        folder: Path, factory: str, labels: list[str]) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("aud40x_f", folder / "aud40x_factory.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = getattr(mod, factory)()
    base = ROWS.mean(0)  # the subject's baseline: the file's column means
    with _client(folder, factory) as c:
        assert c.get("/api/subjects/m").json()["class_names"] == labels
        for i in (0, 1, 4):
            x = ROWS[i]
            label = model.predict(x[None])[0]
            col = list(model.classes_).index(label)
            truth = _shapley(lambda z, col=col: float(model.predict_proba(z[None])[0, col]), x, base)
            pred = c.get(f"/api/subjects/m/inputs/{i}").json()["prediction"]
            assert pred["name"] == str(label) and pred["top"] == col
            np.testing.assert_allclose(pred["scores"], model.predict_proba(x[None])[0], rtol=1e-12)
            res = _wait(c, c.post("/api/jobs", json={"subject": "m", "kind": "explain", "index": i,
                                                     "method": "exact_shapley"}).json())["result"]
            assert res["target"] == f"class {label}"
            assert res["features"] == ["t", "a", "b", "c"]
            # 8 significant digits in the reply; the sign and the order of the credits kept
            np.testing.assert_allclose(res["values"], truth, rtol=1e-7, atol=1e-12)
            assert res["positive"] == pytest.approx(truth[truth > 0].sum(), rel=1e-9)
            assert res["negative"] == pytest.approx(truth[truth < 0].sum(), rel=1e-9)


# ------------------------------------------------------------------ in a real browser


def _js_fmt(v: float) -> str:
    """app.js's fmt(v): 3 decimals, or toExponential(2) (``1.23e-4``) when tiny or huge."""
    if v == 0 or 1e-3 <= abs(v) < 1e4:
        return f"{v:.3f}"
    mant, exp = f"{v:.2e}".split("e")
    return f"{mant}e{int(exp):+d}".replace("e+-", "e-")


def test_browser_shows_the_readers_warning_and_the_true_credits(folder: Path) -> None:
    """Debian's chromium driven by playwright (never downloads a browser): an upload's reader
    warning appears in the page, and the waterfall shows the brute-force Shapley credits of the
    predicted class (label 5 of classes [0, 2, 5]) in order of size, with their signs."""
    pytest.importorskip("uvicorn")
    import importlib.util

    from _explorer_live import LiveServer, chromium_browser

    spec = importlib.util.spec_from_file_location("aud40x_fb", folder / "aud40x_factory.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.ints()
    text = "t,a,b,c\n0,1.5,-2,0.25\n1,4,5,6\n2,7,8,9\n"
    x = np.array([0.0, 1.5, -2.0, 0.25])
    label = model.predict(x[None])[0]
    col = list(model.classes_).index(label)
    truth = _shapley(lambda z: float(model.predict_proba(z[None])[0, col]), x, ROWS.mean(0))

    fspec = file_spec(f"{folder}/aud40x_factory.py:ints", data=str(folder / "named.csv"), name="m")
    problems: list[str] = []
    with chromium_browser() as browser:
        live = LiveServer(create_app(ExplorerConfig(subjects=[fspec]))).start()
        try:
            page = browser.new_page()
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(live.url + "/?subject=m")
            page.wait_for_selector("body[data-ready=yes]", timeout=60_000)
            page.set_input_files("#upload-file", files=[{
                "name": "counted.csv", "mimeType": "text/csv", "buffer": text.encode()}])
            page.wait_for_selector("#inputs-msg:has-text('holds exactly the row numbers 0..2')",
                                   timeout=30_000)
            page.wait_for_selector("#explain-input:has-text('counted.csv [0]')")
            page.select_option("#explain-method", "exact_shapley")
            page.click("#explain-run")
            page.wait_for_selector("#explain-job .status[data-state=done], "
                                   "#explain-job .status[data-state=error]", timeout=60_000)
            assert page.locator("#explain-job .status").get_attribute("data-state") == "done"
            cap = page.locator("#explain-result .cap").text_content() or ""
            labels = page.locator("#explain-result svg.waterfall text").all_text_contents()
        finally:
            live.stop()
    assert label == 5 and f"target: class {label}" in cap, cap
    order = np.argsort(-np.abs(truth), kind="stable")
    names = ["t", "a", "b", "c"]
    expect = []
    for j in order:
        expect += [names[j], ("+" if truth[j] >= 0 else "") + _js_fmt(float(truth[j]))]
    assert labels[:-1] == expect, (labels, expect)
    assert problems == []


# ------------------------------------------------------------------ files of the served folders

_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        '<script xlink:href="/api/files/data/evil.js"/><text y="20">hi</text></svg>')
_JS = ('fetch("/api/info").then((r) => r.json()).then((j) => '
       'document.documentElement.setAttribute("data-pwned", j.version || "yes"));')


def test_served_data_files_are_sandboxed(tmp_path: Path) -> None:
    # an .svg in the data folder loaded a script of the same folder (script-src 'self') and ran
    # with the explorer's origin: files other than reports are served in a script-less sandbox
    from tribute.explorer import default_specs

    (tmp_path / "evil.svg").write_text(_SVG, encoding="utf-8")
    cfg = ExplorerConfig(subjects=default_specs(text=False), data_dir=tmp_path)
    with TestClient(create_app(cfg), base_url="http://127.0.0.1") as c:
        r = c.get("/api/files/data/evil.svg")
    assert r.status_code == 200
    csp = [d.strip() for d in r.headers["content-security-policy"].split(";")]
    assert "sandbox" in csp and not any(d.startswith("script-src") for d in csp), csp
    assert r.headers["x-content-type-options"] == "nosniff"


def test_browser_runs_no_script_of_a_served_svg(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    from _explorer_live import LiveServer, chromium_browser

    from tribute.explorer import default_specs

    (tmp_path / "evil.svg").write_text(_SVG, encoding="utf-8")
    (tmp_path / "evil.js").write_text(_JS, encoding="utf-8")
    cfg = ExplorerConfig(subjects=default_specs(text=False), data_dir=tmp_path, token="tok")
    with chromium_browser() as browser:
        live = LiveServer(create_app(cfg)).start()
        try:
            page = browser.new_page()
            page.goto(live.url + "/?token=tok")  # the token cookie is set
            page.goto(live.url + "/api/files/data/evil.svg")
            page.wait_for_timeout(1000)
            pwned = page.evaluate("document.documentElement.getAttribute('data-pwned')")
        finally:
            live.stop()
    assert pwned is None
