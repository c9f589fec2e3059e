"""API tests of the explorer (Starlette TestClient): every endpoint, jobs, cache, cancellation,
and the security cases (token, host, path traversal, uploads, pickles, models from requests)."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tribute.explorer import ExplorerConfig, build_config, create_app
from tribute.explorer.subjects import Subject, SubjectSpec

pytest.importorskip("starlette")
from _explorer_live import wait_for_job
from starlette.testclient import TestClient

BASE = "http://127.0.0.1"


class Linear(torch.nn.Module):
    """A 3-class linear model on 2x4x4 images (credits have closed forms)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(32, 3, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w


def tiny_subject() -> Subject:
    g = torch.Generator().manual_seed(1)
    return Subject(name="tiny", title="tiny linear", kind="image", model=Linear().eval(),
                   inputs=torch.rand(6, 2, 4, 4, generator=g), class_names=["a", "b", "c"],
                   labels=[f"x{i}" for i in range(6)])


wait = wait_for_job  # the job-polling loop shared by the explorer tests (_explorer_live)


@pytest.fixture(scope="module")
def digits() -> Subject:
    """The built-in digits subject, built once for this module (8 inputs)."""
    from tribute.explorer.subjects import digits_subject

    return digits_subject(n_inputs=8)


@pytest.fixture(scope="module")
def client(results_dir: Path) -> Any:
    cfg = ExplorerConfig(subjects=[SubjectSpec("tiny", "tiny", "image", tiny_subject)],
                         results_dir=results_dir, data_dir=results_dir)
    with TestClient(create_app(cfg), base_url=BASE) as c:
        yield c


# ----------------------------------------------------------------------------- page & info
def test_page_and_static_assets_are_served_offline(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "tribute" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN: nothing fetched elsewhere
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    for name in ("app.js", "style.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and len(r.text) > 1000
        assert "https://" not in r.text
    assert client.get("/static/index.html").status_code == 404
    assert client.get("/static/..%2fapp.py").status_code == 404


def test_info_and_subject_catalogue(client: TestClient) -> None:
    info = client.get("/api/info").json()
    assert info["subjects"][0]["name"] == "tiny" and info["results"] is True
    s = client.get("/api/subjects/tiny").json()
    assert s["n_inputs"] == 6 and s["sample_shape"] == [2, 4, 4]
    names = {m["name"]: m for m in s["methods"]}
    assert {"integrated_gradients", "kernel_shap", "saliency"} <= set(names)
    # the form is generated from the registry's declared parameters
    import tribute

    for name in ("kernel_shap", "integrated_gradients", "lime"):
        declared = {k for k, v in tribute.methods()[name].defaults.items()
                    if isinstance(v, (bool, int, float, str, type(None)))}
        assert {f["name"] for f in names[name]["params"]} == declared
    # 32 players: exact enumeration is refused with its reason
    assert names["exact_shapley"]["usable"] is False and "2^n" in names["exact_shapley"]["why"]
    assert client.get("/api/subjects/nope").json()["error"].startswith("subject 'nope'")


def test_input_preview_and_prediction(client: TestClient) -> None:
    p = client.get("/api/subjects/tiny/inputs/2").json()
    assert np.asarray(p["image"]).shape == (4, 4)  # channels averaged for display
    x = tiny_subject().inputs[2:3]
    expect = int((x.flatten(1) @ Linear().w).argmax())
    assert p["prediction"]["top"] == expect
    bad = client.get("/api/subjects/tiny/inputs/99")
    assert bad.status_code == 400 and "out of range" in bad.json()["error"]
    assert client.get("/api/subjects/tiny/inputs/abc").status_code == 400


# ----------------------------------------------------------------------------- jobs
def test_explain_job_matches_tribute_explain_and_is_cached(client: TestClient) -> None:
    body = {"kind": "explain", "subject": "tiny", "index": 1, "method": "input_x_gradient"}
    job = wait(client, client.post("/api/jobs", json=body).json())
    assert job["status"] == "done", job
    r = job["result"]
    x = tiny_subject().inputs[1:2]
    w = Linear().w.detach()
    c = int((x.flatten(1) @ w).argmax())
    ref = (x.flatten(1) * w[:, c]).reshape(2, 4, 4).sum(0)  # closed form, channels summed
    np.testing.assert_allclose(np.asarray(r["values"]), ref.numpy(), rtol=1e-5, atol=1e-6)
    assert r["target"] == f"class {'abc'[c]}"
    assert r["scale"] == pytest.approx(float(ref.abs().max()), rel=1e-6)
    again = client.post("/api/jobs", json=body).json()
    assert again["status"] == "done" and again["cached"] is True
    assert again["result"]["values"] == r["values"]
    # another seed is another cache entry
    other = client.post("/api/jobs", json={**body, "seed": 3}).json()
    assert other["cached"] is False
    wait(client, other)


def test_explain_job_with_parameters_from_the_form(client: TestClient) -> None:
    body = {"kind": "explain", "subject": "tiny", "index": 0, "method": "kernel_shap",
            "budget": 64, "params": {}}
    job = wait(client, client.post("/api/jobs", json=body).json())
    assert job["status"] == "done" and job["result"]["n_evals"] == 64
    lime = wait(client, client.post("/api/jobs", json={
        "kind": "explain", "subject": "tiny", "index": 0, "method": "lime", "budget": 64,
        "params": {"kernel_width": 0.5}}).json())
    assert lime["status"] == "done" and lime["result"]["params"]["kernel_width"] == 0.5


def test_compare_job_agreement_and_live_curves(client: TestClient) -> None:
    body = {"kind": "compare", "subject": "tiny", "index": 0,
            "methods": ["input_x_gradient", "integrated_gradients", "saliency"]}
    job = wait(client, client.post("/api/jobs", json=body).json())
    assert job["status"] == "done", job
    r = job["result"]
    m = np.asarray(r["spearman"], dtype=float)
    assert m.shape == (3, 3)
    np.testing.assert_allclose(np.diag(m), 1.0)
    np.testing.assert_allclose(m, m.T)
    # a linear model: IG with a zero baseline equals input x gradient exactly -> rank corr 1
    assert m[0, 1] == pytest.approx(1.0, abs=1e-6)
    from scipy.stats import spearmanr

    import tribute

    s = tiny_subject()
    a, b = (tribute.explain(s.model, s.inputs[:1], method=name, target="predicted").values
            .numpy().ravel() for name in ("input_x_gradient", "saliency"))
    assert m[0, 2] == pytest.approx(spearmanr(a, b)[0], abs=1e-9)
    for p in r["panels"]:
        for metric in ("deletion", "insertion"):
            curve = p[metric]["curve"]
            assert len(curve) == len(p[metric]["fraction"]) == 17
            assert p[metric]["auc"] == pytest.approx(np.trapezoid(curve, p[metric]["fraction"]),
                                                     rel=1e-6)
    bad = client.post("/api/jobs", json={**body, "methods": ["saliency"]})
    assert bad.status_code == 400 and "2 to 6" in bad.json()["error"]


def test_a_count_set_in_the_form_sizes_the_run_when_the_budget_is_empty(digits: Subject) -> None:
    """lime's default (576 rows on 64 pixels) is over the page's 512 cap; n_samples=200 from the
    form met an invented budget=512 ("disagree ... give one of them") though no budget was given."""
    import tribute

    cfg = ExplorerConfig(subjects=[SubjectSpec("digits", "digits", "image", lambda: digits)])
    with TestClient(create_app(cfg), base_url=BASE) as c:
        job = wait(c, c.post("/api/jobs", json={"kind": "explain", "subject": "digits", "index": 2,
                                                 "method": "lime", "params": {"n_samples": 200},
                                                 "seed": 1}).json())
        assert job["status"] == "done", job
        truth = tribute.explain(digits.model, digits.row(2), "lime", target="predicted",
                                baseline=0.0, n_samples=200, seed=1, progress=False)
        assert job["result"]["n_evals"] == truth.n_evals
        # a float32 CNN: the self-tuned chunk sizes of the two runs may differ, and with them the
        # last bits of the model's outputs (1e-7 relative was seen in CI)
        assert np.asarray(job["result"]["values"]) == pytest.approx(
            truth.values.detach().numpy()[0, 0], rel=1e-5, abs=1e-6)
        # an untouched form (count at its default) still gets the capped budget
        capped = wait(c, c.post("/api/jobs", json={"kind": "explain", "subject": "digits",
                                                    "index": 2, "method": "lime",
                                                    "params": {"n_samples": None}}).json())
        assert capped["status"] == "done" and capped["result"]["n_evals"] == 512


def test_predictions_beside_a_job_that_hooks_the_model(digits: Subject) -> None:
    """The page asks for predictions while a job runs: on the job's module they went through its
    component-patching hooks and came back as errors ("saw a batch of 1 rows ...")."""
    with torch.no_grad():
        truth = [digits.model(digits.row(i))[0].tolist() for i in range(8)]
    cfg = ExplorerConfig(subjects=[SubjectSpec("digits", "digits", "image", lambda: digits)])
    with TestClient(create_app(cfg), base_url=BASE) as c:
        for index, body in enumerate([{"kind": "components", "method": "feature_ablation"},
                                      {"kind": "explain", "method": "deeplift"}] * 2):
            job = c.post("/api/jobs", json={"subject": "digits", "index": index, **body}).json()
            seen = 0
            while job["status"] in ("queued", "running") or seen < 8:
                r = c.get(f"/api/subjects/digits/inputs/{seen % 8}")
                assert r.status_code == 200, r.json()
                assert r.json()["prediction"]["scores"] == pytest.approx(truth[seen % 8], abs=1e-6)
                seen += 1
                job = c.get(f"/api/jobs/{job['id']}").json()
            assert job["status"] == "done", job


def test_components_job_grid_is_exact_leave_one_out(digits: Subject) -> None:
    cfg = ExplorerConfig(subjects=[SubjectSpec("digits", "digits", "image", lambda: digits)])
    with TestClient(create_app(cfg), base_url=BASE) as c:
        job = wait(c, c.post("/api/jobs", json={"kind": "components", "subject": "digits",
                                                 "index": 3}).json())
        assert job["status"] == "done", job
        r = job["result"]
        assert r["layers"] == ["features.0", "features.3"]
        assert [len(row) for row in r["grid"]] == [8, 16]
        # naive reference: zero channel 5 of features.3 and watch the shown class's probability
        s = cfg.subjects[0].get()
        x = s.inputs[3:4]
        k = int(r["shown_target"])
        with torch.no_grad():
            full = torch.softmax(s.model(x), -1)[0, k]
            hook = s.model.features[3].register_forward_hook(
                lambda m, i, o: o.index_fill(1, torch.tensor([5]), 0.0))
            try:
                ablated = torch.softmax(s.model(x), -1)[0, k]
            finally:
                hook.remove()
        assert r["grid"][1][5] == pytest.approx(float(full - ablated), abs=1e-5)
        assert r["per_unit"]["features.3 channel 5"][k] == pytest.approx(r["grid"][1][5])
        assert not s.model.features[3]._forward_hooks

        tr = wait(c, c.post("/api/jobs", json={"kind": "training", "subject": "digits",
                                                "index": 2, "method": "grad_dot"}).json())
        assert tr["status"] == "done", tr
        res = tr["result"]
        assert res["proponents"] and all(p["credit"] > 0 for p in res["proponents"])
        assert all(p["credit"] < 0 for p in res["opponents"])
        credits = [p["credit"] for p in res["proponents"]]
        assert credits == sorted(credits, reverse=True)
        assert np.asarray(res["proponents"][0]["image"]).shape == (8, 8)


def test_training_job_matches_attr_top(digits: Subject) -> None:
    import tribute

    s = digits
    case = s.training
    assert case is not None
    data = tribute.TrainingData(case.X_train, case.y_train, fit=case.fit)
    attr = tribute.explain(case.model, case.X_test[5:6], method="grad_dot",
                           target=case.y_test[5:6], players=data)
    top = attr.top(0, k=6)
    cfg = ExplorerConfig(subjects=[SubjectSpec("digits", "digits", "image", lambda: s)])
    with TestClient(create_app(cfg), base_url=BASE) as c:
        job = wait(c, c.post("/api/jobs", json={"kind": "training", "subject": "digits",
                                                 "index": 5, "method": "grad_dot"}).json())
    got = [p["index"] for p in job["result"]["proponents"]]
    assert got == [i for i, _, _ in top["proponents"]]


class Slow(Linear):
    """The linear model, 20 ms a call; ``calls`` records each call's batch size."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(x.shape[0]))
        time.sleep(0.02)
        return super().forward(x)


def slow_subject() -> Subject:
    s = tiny_subject()
    s.model = Slow().eval()
    return s


def test_cancel_stops_a_running_job_between_engine_chunks_and_server_keeps_working() -> None:
    cfg = ExplorerConfig(subjects=[SubjectSpec("tiny", "tiny", "image", slow_subject)])
    with TestClient(create_app(cfg), base_url=BASE) as c:
        model = cfg.subjects[0].get().model
        before = {k: v.clone() for k, v in model.state_dict().items()}
        job = c.post("/api/jobs", json={"kind": "explain", "subject": "tiny", "index": 0,
                                        "method": "kernel_shap", "budget": 100000,
                                        "params": {}}).json()
        t0 = time.time()
        while c.get(f"/api/jobs/{job['id']}").json()["rows_done"] == 0:
            assert time.time() - t0 < 30
            time.sleep(0.02)
        r = c.delete(f"/api/jobs/{job['id']}")
        assert r.status_code == 200
        end = wait(c, c.get(f"/api/jobs/{job['id']}").json())
        assert end["status"] == "cancelled"
        assert end["rows_done"] < 100000
        n = len(model.calls)
        time.sleep(0.3)
        assert len(model.calls) == n  # nothing runs after the cancel took effect
        assert model.training is False
        for k, v in model.state_dict().items():
            assert torch.equal(v, before[k])
        ok = wait(c, c.post("/api/jobs", json={"kind": "explain", "subject": "tiny", "index": 0,
                                               "method": "saliency"}).json())
        assert ok["status"] == "done"
        assert c.delete("/api/jobs/nope").status_code == 404


def test_event_stream_reports_progress_then_the_end(client: TestClient) -> None:
    job = client.post("/api/jobs", json={"kind": "explain", "subject": "tiny", "index": 4,
                                         "method": "kernel_shap", "budget": 200}).json()
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events: list[str] = []
        end: dict[str, Any] = {}
        lines = []
        for line in resp.iter_lines():
            lines.append(line)
            if line.startswith("event:"):
                events.append(line.split(":", 1)[1].strip())
            if line.startswith("data:") and events and events[-1] == "end":
                end = json.loads(line[5:])
                break
    # the whole stream in the message: it failed once in a loaded parallel run (not reproduced)
    assert events[-1:] == ["end"] and end.get("status") == "done" and end.get("progress") == 1.0, \
        lines[-6:]


def test_a_failing_method_gives_a_json_error_and_the_server_keeps_working(client: TestClient) -> None:
    class Boom(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("model exploded on purpose")

    def build() -> Subject:
        s = tiny_subject()
        s.model = Boom()
        return s

    cfg = ExplorerConfig(subjects=[SubjectSpec("boom", "boom", "image", build)])
    with TestClient(create_app(cfg), base_url=BASE, raise_server_exceptions=False) as c:
        job = wait(c, c.post("/api/jobs", json={"kind": "explain", "subject": "boom",
                                                 "index": 0, "method": "saliency"}).json())
        assert job["status"] == "error" and "exploded on purpose" in job["error"]
        assert "Traceback" not in job["error"]
        pred = c.get("/api/subjects/boom/inputs/0")
        assert pred.status_code == 500 and "Traceback" not in pred.text
        assert "internal error" in pred.json()["error"]
        assert c.get("/api/info").status_code == 200
    # a broken subject factory is an error message, not a crash
    bad = ExplorerConfig(subjects=[SubjectSpec("bad", "bad", "image",
                                               lambda: (_ for _ in ()).throw(OSError("no disk")))])
    with TestClient(create_app(bad), base_url=BASE) as c:
        r = c.get("/api/subjects/bad")
        assert r.status_code == 400 and "no disk" in r.json()["error"]


@pytest.mark.parametrize("body, words", [
    ({"kind": "explain", "subject": "tiny", "method": "nope"}, "not a feature method"),
    ({"kind": "explain", "subject": "tiny", "method": "exact_shapley"}, "2^n"),
    ({"kind": "explain", "subject": "tiny", "method": "kernel_shap", "budget": -3}, "budget=-3"),
    ({"kind": "explain", "subject": "tiny", "method": "kernel_shap", "budget": True}, "budget=True"),
    ({"kind": "explain", "subject": "tiny", "method": "kernel_shap", "params": {"bogus": 1}},
     "no parameter 'bogus'"),
    ({"kind": "explain", "subject": "tiny", "method": "lime", "params": {"kernel_width": "x"}},
     "lime.kernel_width='x'"),
    # a count sizes the run like the budget: steps=1e9 asked the server for 7.45 GiB, then more
    ({"kind": "explain", "subject": "tiny", "method": "integrated_gradients",
      "params": {"steps": 1e9}}, "integrated_gradients.steps=1000000000.0 asks for more than 100000"),
    ({"kind": "explain", "subject": "tiny", "method": "smoothgrad",
      "params": {"n_samples": 10**7}}, "give n_samples <= 100000"),
    ({"kind": "explain", "subject": "tiny", "method": "saliency", "index": 77}, "out of range"),
    ({"kind": "explain", "subject": "tiny", "method": "saliency", "index": "1; rm"}, "index="),
    ({"kind": "explain", "subject": "tiny", "method": "saliency", "model": "os:system"},
     "never by a request"),
    ({"kind": "train", "subject": "tiny"}, "kind='train'"),
    ({"kind": "components", "subject": "tiny"}, "declares no component layers"),
    ({"kind": "training", "subject": "tiny"}, "no training-data case"),
    ({"kind": "explain", "subject": "tiny", "method": "saliency", "removal": "mask"},
     "removal applies to text subjects"),
])
def test_bad_job_requests_get_json_errors(client: TestClient, body: dict[str, Any], words: str) -> None:
    r = client.post("/api/jobs", json=body)
    if r.status_code == 200 or r.status_code == 202:  # refused inside the job
        job = wait(client, r.json())
        assert job["status"] == "error" and words in job["error"], job
    else:
        assert r.status_code == 400 and words in r.json()["error"], r.json()


def test_malformed_bodies(client: TestClient) -> None:
    r = client.post("/api/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    r = client.post("/api/jobs", json=[1, 2])
    assert r.status_code == 400 and "JSON object" in r.json()["error"]
    r = client.post("/api/jobs", content=b"x" * (70 * 1024), headers={"content-type": "application/json"})
    assert r.status_code == 400 and "limit" in r.json()["error"]
    assert client.get("/api/nothing").status_code == 404
    assert client.put("/api/jobs").status_code == 405


# ----------------------------------------------------------------------------- leaderboard
def test_leaderboard_rows_ranks_and_intervals(client: TestClient) -> None:
    lb = client.get("/api/leaderboard").json()
    (run,) = lb["runs"]
    assert run["name"] == "quick-run" and run["suite"] == "quick"
    assert run["report"] == "quick-run/report.html"
    rows = {(r["metric"], r["method"]): r for r in run["rows"]}
    assert ("deletion", "lime") not in rows  # failed runs are not ranked
    assert rows[("deletion", "kernel_shap")]["rank"] == 1  # lower is better
    assert rows[("deletion", "saliency")]["rank"] == 3
    assert rows[("insertion", "kernel_shap")]["rank"] == rows[("insertion", "saliency")]["rank"] == 1
    assert rows[("insertion", "integrated_gradients")]["rank"] == 3
    r = rows[("deletion", "integrated_gradients")]
    q = 2.3646  # Student's t, 95%, 7 degrees of freedom (n = 8 samples); 1.96 undercovers
    assert (r["lo"], r["hi"]) == pytest.approx((0.20 - q * 0.01, 0.20 + q * 0.01), abs=1e-6)


def test_leaderboard_without_results_folder_says_how() -> None:
    cfg = ExplorerConfig(subjects=[SubjectSpec("tiny", "tiny", "image", tiny_subject)])
    with TestClient(create_app(cfg), base_url=BASE) as c:
        r = c.get("/api/leaderboard").json()
        assert r["runs"] == [] and "--results" in r["hint"]
        assert c.get("/api/files/results/x.json").status_code == 404


# ----------------------------------------------------------------------------- files
def test_files_are_served_only_from_the_configured_folders(client: TestClient, results_dir: Path,
                                                           tmp_path: Path) -> None:
    ok = client.get("/api/files/results/quick-run/report.html")
    assert ok.status_code == 200 and "report" in ok.text
    assert client.get("/api/files/data/notes.txt").text == "hello"
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    link = results_dir / "link.txt"
    if not link.exists():
        os.symlink(secret, link)
    dlink = results_dir / "outside"
    if not dlink.exists():
        os.symlink(tmp_path, dlink, target_is_directory=True)
    bad = ["../secret.txt", "..%2Fsecret.txt", "%2e%2e/secret.txt", "quick-run/../../x",
           "%2Fetc%2Fpasswd", "link.txt", "outside/secret.txt", ".hidden", "quick-run/%00x",
           "..%5csecret.txt", "%252e%252e/secret.txt"]
    for path in bad:
        r = client.get(f"/api/files/results/{path}")
        assert r.status_code in (400, 404), (path, r.status_code)
        assert "top secret" not in r.text and "root:" not in r.text
        assert "error" in r.json()
    assert client.get("/api/files/etc/passwd").status_code == 404
    assert client.get("/api/files/results//etc/passwd").status_code in (400, 404)


def test_resolve_under_refuses_escapes(tmp_path: Path) -> None:
    from tribute.errors import InputError
    from tribute.explorer.security import resolve_under

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.txt").write_text("x")
    assert resolve_under(tmp_path, "a/f.txt") == (tmp_path / "a" / "f.txt").resolve()
    for bad in ["../a", "/etc/passwd", "a/../../x", "", "a\\f.txt", "~/x", ".git/config"]:
        with pytest.raises(InputError):
            resolve_under(tmp_path, bad)
    with pytest.raises(FileNotFoundError):
        resolve_under(tmp_path, "a/missing.txt")


# ----------------------------------------------------------------------------- uploads
def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def test_uploads_add_inputs_and_refuse_bad_files() -> None:
    cfg = ExplorerConfig(subjects=[SubjectSpec("tiny", "tiny", "image", tiny_subject)])
    with TestClient(create_app(cfg), base_url=BASE) as c:
        arr = np.random.default_rng(0).random((2, 2, 4, 4)).astype(np.float32)
        r = c.post("/api/subjects/tiny/inputs?filename=x.npy", content=_npy(arr))
        assert r.status_code == 200 and r.json()["indices"] == [6, 7]
        p = c.get("/api/subjects/tiny/inputs/7").json()
        assert p["label"] == "x.npy [1]"
        # pickled object arrays are never loaded
        evil = _npy(np.array([{"a": 1}, None], dtype=object))
        r = c.post("/api/subjects/tiny/inputs?filename=evil.npy", content=evil)
        assert r.status_code == 400 and "pickled" in r.json()["error"]
        cases = [("x.pkl", b"\x80\x04K\x01.", "accepted"),
                 ("x.npy", _npy(np.zeros((3, 3), np.float32)), "shape"),
                 ("x.npy", b"garbage", "not a valid .npy"),
                 ("x.csv", b"1,2\n3,4\n", "tabular"),
                 ("x.png", b"not a png", "not a readable image"),
                 ("x.npy", b"", "empty"),
                 ("x.npy", _npy(np.full((1, 2, 4, 4), np.nan, np.float32)), "NaN"),
                 # no rows: answered {"indices": []} and the page selected input undefined
                 ("e.npy", _npy(np.zeros((0, 2, 4, 4), np.float32)), "holds no inputs")]
        for name, data, words in cases:
            r = c.post(f"/api/subjects/tiny/inputs?filename={name}", content=data)
            assert r.status_code == 400 and words in r.json()["error"], (name, r.json())
            assert r.headers["x-content-type-options"] == "nosniff"
        big = b"\x00" * (2 * 1024 * 1024 + 1)
        r = c.post("/api/subjects/tiny/inputs?filename=x.npy", content=big)
        assert r.status_code == 400 and "limit" in r.json()["error"]
        assert c.post("/api/subjects/tiny/inputs", json={"text_a": "a", "text_b": "b"}).json()[
            "error"].startswith("subject 'tiny' does not take typed text")


def test_png_upload_is_resized_and_inverted_for_digits(digits: Subject) -> None:
    from PIL import Image

    img = np.full((32, 32), 255, np.uint8)
    img[4:28, 12:20] = 0  # a dark "1" on white paper
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    s = digits
    cfg = ExplorerConfig(subjects=[SubjectSpec("digits", "digits", "image", lambda: s)])
    with TestClient(create_app(cfg), base_url=BASE) as c:
        r = c.post("/api/subjects/digits/inputs?filename=one.png", content=buf.getvalue())
        assert r.status_code == 200, r.json()
    x = s.inputs[r.json()["indices"][0]]
    assert tuple(x.shape) == (1, 8, 8)
    assert float(x[0, 1:7, 3:5].mean()) > 0.9 and float(x[0, :, 0].max()) < 0.05  # light ink, dark paper


# ----------------------------------------------------------------------------- token & host
def test_token_is_required_on_every_request_when_set(results_dir: Path) -> None:
    token = "s3cret-token-0123456789"
    cfg = ExplorerConfig(subjects=[SubjectSpec("tiny", "tiny", "image", tiny_subject)],
                         token=token, results_dir=results_dir)
    with TestClient(create_app(cfg), base_url=BASE) as c:
        for path in ("/", "/static/app.js", "/api/info", "/api/leaderboard",
                     "/api/files/results/quick-run/report.html", "/api/jobs/x/events"):
            r = c.get(path)
            assert r.status_code == 401 and "token" in r.json()["error"], path
            assert c.get(path, headers={"X-Tribute-Token": token[:-1] + "X"}).status_code == 401
        assert c.get("/api/info", headers={"X-Tribute-Token": token}).status_code == 200
        assert c.get("/api/info", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert c.get(f"/api/info?token={token}").status_code == 200
        assert c.post("/api/jobs", json={}).status_code == 401
        page = c.get(f"/?token={token}")  # sets the cookie the page's later requests carry
        assert page.status_code == 200 and "tribute_token" in page.headers["set-cookie"]
        assert "httponly" in page.headers["set-cookie"].lower()
        assert c.get("/static/app.js").status_code == 200  # the cookie is sent from now on


def test_binding_beyond_loopback_generates_a_token_and_loopback_checks_hosts() -> None:
    from tribute.errors import InputError

    cfg = build_config(host="0.0.0.0", text=False)
    assert cfg.token is not None and len(cfg.token) >= 16
    assert build_config(host="127.0.0.1", text=False).token is None
    with pytest.raises(InputError, match="too short"):
        build_config(host="0.0.0.0", token="abc", text=False)
    with pytest.raises(InputError, match="--data needs --model"):
        build_config(data="x.npy", text=False)
    local = ExplorerConfig(subjects=[SubjectSpec("tiny", "tiny", "image", tiny_subject)])
    with TestClient(create_app(local), base_url="http://evil.example.com") as c:
        r = c.get("/api/info")
        assert r.status_code == 400 and "not served" in r.json()["error"]
    with TestClient(create_app(local), base_url="http://localhost:8765") as c:
        assert c.get("/api/info").status_code == 200
    with TestClient(create_app(cfg), base_url="http://evil.example.com") as c:
        assert c.get("/api/info").status_code == 401  # any host, but the token is needed
        assert c.get(f"/api/info?token={cfg.token}").status_code == 200


# ----------------------------------------------------------------------------- --model files
FACTORY = '''
import torch

def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
'''


def test_model_factory_weights_and_csv_data_from_the_command_line(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    (tmp_path / "factory.py").write_text(FACTORY)
    torch.manual_seed(5)
    trained = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()},
              str(tmp_path / "w.safetensors"))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 4)).astype(np.float32)
    csv = "a,b,c,d\n" + "\n".join(",".join(f"{v:.6f}" for v in row) for row in X)
    (tmp_path / "X.csv").write_text(csv)
    pytest.importorskip("pandas")
    cfg = build_config(model=f"{tmp_path / 'factory.py'}:make",
                       weights=str(tmp_path / "w.safetensors"), data=str(tmp_path / "X.csv"))
    assert cfg.data_dir == tmp_path.resolve()
    with TestClient(create_app(cfg), base_url=BASE) as c:
        s = c.get("/api/subjects/model").json()
        assert s["kind"] == "tabular" and s["feature_names"] == ["a", "b", "c", "d"]
        job = wait(c, c.post("/api/jobs", json={"kind": "explain", "subject": "model",
                                                 "index": 2, "method": "exact_shapley"}).json())
        assert job["status"] == "done", job
        r = job["result"]
        assert r["features"] == ["a", "b", "c", "d"]
        # the weights were loaded: credits are those of the trained model (efficiency)
        x = torch.from_numpy(X[2:3])
        base = torch.from_numpy(X.mean(0, keepdims=True))
        with torch.no_grad():
            k = int(trained(x).argmax())
            gap = float(trained(x)[0, k] - trained(base)[0, k])
        assert sum(r["values"]) == pytest.approx(gap, rel=1e-4, abs=1e-5)
        assert c.get("/api/files/data/X.csv").text.startswith("a,b,c,d")
        up = c.post("/api/subjects/model/inputs?filename=more.csv", content=b"1,2,3,4\n5,6,7,8\n")
        assert up.json()["indices"] == [10, 11]
        # a header in another order is matched by name, not position (feature a got d's value)
        up = c.post("/api/subjects/model/inputs?filename=named.csv",
                    content=b"d,c,b,a\n4,3,2,1\n")
        assert up.json()["indices"] == [12], up.json()
        feats = c.get("/api/subjects/model/inputs/12").json()["features"]
        assert [(f["name"], f["value"]) for f in feats] == [("a", 1), ("b", 2), ("c", 3), ("d", 4)]
        wrong = c.post("/api/subjects/model/inputs?filename=w.csv", content=b"a,b,c,z\n1,2,3,4\n")
        assert wrong.status_code == 400 and "['a', 'b', 'c', 'z']" in wrong.json()["error"]
        assert c.get("/api/subjects/model").json()["n_inputs"] == 13  # nothing half-added


def test_pickle_weights_are_refused(tmp_path: Path) -> None:
    from tribute.errors import TributeError

    (tmp_path / "factory.py").write_text(FACTORY)
    import pickle

    (tmp_path / "w.pt").write_bytes(pickle.dumps({"evil": 1}))
    np.save(tmp_path / "X.npy", np.zeros((3, 4), np.float32))
    cfg = build_config(model=f"{tmp_path / 'factory.py'}:make", weights=str(tmp_path / "w.pt"),
                       data=str(tmp_path / "X.npy"))
    with pytest.raises(TributeError):
        cfg.subjects[0].get()


def test_job_progress_reads_each_field_once() -> None:
    """The worker thread zeroes ``total`` when a step begins; a reader that checked ``total`` and
    then divided by it again raised ZeroDivisionError, which ended the event stream mid-job."""
    from tribute.explorer.jobs import Job

    class Racy(Job):
        reads = 0

        @property
        def total(self) -> int:  # nonzero on the first read, zero afterwards (begin_step ran)
            type(self).reads += 1
            return 10 if type(self).reads == 1 else 0

        @total.setter
        def total(self, value: int) -> None:
            pass

    job = Racy(id="j", kind="explain", key="k", done=5, steps_total=2)
    assert job.fraction == 0.25
    Racy.reads = 0
    assert job.public(with_result=False)["progress"] == 0.25


SK_FACTORY = '''
import numpy as np
from sklearn.linear_model import LogisticRegression


def make():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 3, size=(300, 2))
    return LogisticRegression(C=100, max_iter=5000).fit(X, 1 + np.digitize(X[:, 0], [1.0, 2.0]))
'''


def _factory_module(folder: Path, name: str, source: str) -> Any:
    """Write ``source`` to ``folder/name.py`` (the --model file) and import it for reference."""
    import importlib.util

    (folder / f"{name}.py").write_text(source)
    spec = importlib.util.spec_from_file_location(f"{name}_ref", folder / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sklearn_classes_name_the_classes(tmp_path: Path) -> None:
    """classes_ = [1, 2, 3]: the page names column j by classes_[j] (the model's own predict)."""
    pytest.importorskip("sklearn")
    clf = _factory_module(tmp_path, "skfactory", SK_FACTORY).make()
    X = np.array([[0.5, 1.0], [1.5, 2.0], [2.5, 0.3]])
    (tmp_path / "X.csv").write_text("a,b\n" + "\n".join(f"{r[0]},{r[1]}" for r in X))
    pytest.importorskip("pandas")
    cfg = build_config(model=f"{tmp_path / 'skfactory.py'}:make", data=str(tmp_path / "X.csv"))
    with TestClient(create_app(cfg), base_url=BASE) as c:
        assert c.get("/api/subjects/model").json()["class_names"] == ["1", "2", "3"]
        for i in range(3):
            truth = str(clf.predict(X[i : i + 1])[0])
            assert c.get(f"/api/subjects/model/inputs/{i}").json()["prediction"]["name"] == truth
            job = wait(c, c.post("/api/jobs", json={"kind": "explain", "subject": "model", "index": i,
                                                     "method": "exact_shapley"}).json())
            assert job["status"] == "done", job
            assert job["result"]["target"] == f"class {truth}"


def test_small_credits_are_sent_to_their_significant_digits() -> None:
    """Credits of a model whose outputs are ~1e-9 (a regression in large units, a rare class's
    probability) were rounded to 8 decimals: every value 0.0 beside a legend scale of 3e-9."""
    import tribute

    class Tiny(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x.double() @ torch.tensor([3e-9, -2e-10, 7e-12, 1.5e-9],
                                              dtype=torch.float64))[:, None]

    X = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.0, 0.25]], dtype=torch.float64)

    def build() -> Subject:
        return Subject(name="small", title="small", kind="tabular", model=Tiny(), inputs=X,
                       target=None, feature_names=["a", "b", "c", "d"])

    cfg = ExplorerConfig(subjects=[SubjectSpec("small", "small", "tabular", build)])
    with TestClient(create_app(cfg), base_url=BASE) as c:
        job = wait(c, c.post("/api/jobs", json={"kind": "explain", "subject": "small",
                                                 "index": 1, "method": "exact_shapley"}).json())
        assert job["status"] == "done", job
        truth = tribute.explain(Tiny(), X[1:2], "exact_shapley", baseline=0.0, progress=False)
        expect = truth.values.detach().numpy().reshape(-1)
        assert np.asarray(job["result"]["values"]) == pytest.approx(expect, rel=1e-7, abs=0)
        assert job["result"]["scale"] == pytest.approx(float(np.abs(expect).max()), rel=1e-7)


def test_jobs_on_one_subject_with_several_workers_do_not_meet(digits: Subject) -> None:
    """ExplorerConfig(workers=3): jobs on one model ran at once and read each other's hooks;
    guided backprop beside a components job came back 1.23 off, DeepLIFT and components
    refused each other's batches. They now take turns, and give what they give alone."""
    import tribute

    bodies: list[dict[str, Any]] = [
        {"kind": "components", "index": 2, "method": "feature_ablation"},
        {"kind": "explain", "index": 1, "method": "deeplift"},
        {"kind": "explain", "index": 5, "method": "guided_backprop"}]
    cfg = ExplorerConfig(subjects=[SubjectSpec("digits", "digits", "image", lambda: digits)],
                         workers=3)
    with TestClient(create_app(cfg), base_url=BASE) as c:
        jobs = [c.post("/api/jobs", json={"subject": "digits", **b}).json() for b in bodies]
        assert all("status" in j for j in jobs), jobs
        done = [wait(c, j, timeout=300) for j in jobs]
    assert [j["status"] for j in done] == ["done"] * 3, [j.get("error") for j in done]
    for body, job in zip(bodies[1:], done[1:]):
        truth = tribute.explain(digits.model, digits.row(body["index"]), body["method"],
                                target="predicted", baseline=0.0, progress=False)
        assert np.asarray(job["result"]["values"]) == pytest.approx(
            truth.values.detach().numpy()[0, 0], rel=1e-5, abs=1e-6)
    assert not any(m._forward_hooks or m._backward_hooks for m in digits.model.modules())


REGISTRY_RACE = r'''
import sys, time
sys.path.insert(0, sys.argv[1])
from starlette.testclient import TestClient
from test_explorer_api import tiny_subject
from tribute.explorer import ExplorerConfig, SubjectSpec, create_app
from tribute.methods.base import METHODS
from tribute.metrics.base import METRICS

assert not METHODS._loaded, "precondition: a fresh interpreter has not read the registry"
cfg = ExplorerConfig(subjects=[SubjectSpec("tiny", "tiny", "image", tiny_subject)], workers=2)
with TestClient(create_app(cfg), base_url="http://127.0.0.1") as c:
    print("loaded at start", METHODS._loaded, METRICS._loaded)
    first = c.post("/api/jobs", json={"kind": "explain", "subject": "tiny", "method": "saliency"})
    second = c.post("/api/jobs", json={"kind": "explain", "subject": "tiny", "method": "deeplift"})
    print("second", second.status_code, "not a feature method" in str(second.json().get("error")))
'''


def test_the_registries_are_loaded_before_the_first_request(tmp_path: Path) -> None:
    """A job's thread that read the method registry first flagged it loaded while it was still
    importing the methods: a request checking a name at that moment saw 12 of them."""
    import subprocess
    import sys

    script = tmp_path / "race.py"
    script.write_text(REGISTRY_RACE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]
                                                             / "src"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(script), str(Path(__file__).resolve().parent)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "loaded at start True True" in out.stdout, out.stdout
    # accepted (202), or already finished (200: deeplift then refuses this subject's own
    # parametrised module, a job error that depends on timing), never the registry's 400
    assert "second 202 False" in out.stdout or "second 200 False" in out.stdout, out.stdout


def test_a_job_waiting_for_its_subject_says_so_and_can_be_cancelled() -> None:
    cfg = ExplorerConfig(subjects=[SubjectSpec("tiny", "tiny", "image", slow_subject)],
                         workers=2)
    with TestClient(create_app(cfg), base_url=BASE) as c:
        long = c.post("/api/jobs", json={"kind": "explain", "subject": "tiny", "index": 0,
                                         "method": "kernel_shap", "budget": 100000}).json()
        t0 = time.time()
        while c.get(f"/api/jobs/{long['id']}").json()["rows_done"] == 0:
            assert time.time() - t0 < 30
            time.sleep(0.02)
        second = c.post("/api/jobs", json={"kind": "explain", "subject": "tiny", "index": 1,
                                           "method": "saliency"}).json()
        while (second := c.get(f"/api/jobs/{second['id']}").json())["status"] == "queued":
            time.sleep(0.02)
        assert second["status"] == "running" and "waiting" in second["step"], second
        c.delete(f"/api/jobs/{second['id']}")
        assert wait(c, second, timeout=10)["status"] == "cancelled"
        assert c.get(f"/api/jobs/{long['id']}").json()["status"] == "running"
        c.delete(f"/api/jobs/{long['id']}")
        assert wait(c, long)["status"] == "cancelled"
        again = wait(c, c.post("/api/jobs", json={"kind": "explain", "subject": "tiny",
                                                  "index": 1, "method": "saliency"}).json())
        assert again["status"] == "done" and again["cached"] is False


SVC_FACTORY = '''
import numpy as np
from sklearn.svm import LinearSVC


def make(classes=("no", "yes")):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = np.asarray(classes)[np.digitize(X[:, 0] - X[:, 1], [0.0] if len(classes) == 2 else [-0.7, 0.7])]
    return LinearSVC().fit(X, y)


def three():
    return make(("low", "mid", "high"))
'''


@pytest.mark.parametrize("factory", ["make", "three"])
def test_prediction_of_a_classifier_without_predict_proba_is_what_explain_explains(
        tmp_path: Path, factory: str) -> None:
    """A LinearSVC has decision_function, not predict_proba: explain explains the decision
    function, while the page showed predict's labels (a 500 for string labels, and no class
    names, hence no 'predicted' target, with three classes)."""
    pytest.importorskip("sklearn")
    pytest.importorskip("pandas")
    import tribute

    clf = getattr(_factory_module(tmp_path, "svc", SVC_FACTORY), factory)()
    X = np.array([[0.9, -0.4, 0.1], [-1.2, 0.3, 2.0], [0.1, 0.2, -0.3]])
    (tmp_path / "X.csv").write_text("a,b,c\n" + "\n".join(",".join(map(str, r)) for r in X))
    cfg = build_config(model=f"{tmp_path / 'svc.py'}:{factory}", data=str(tmp_path / "X.csv"))
    with TestClient(create_app(cfg), base_url=BASE) as c:
        for i in range(3):
            r = c.get(f"/api/subjects/model/inputs/{i}")
            assert r.status_code == 200, r.json()
            pred = r.json()["prediction"]
            score = np.atleast_1d(clf.decision_function(X[i:i + 1])[0])
            assert pred["scores"] == pytest.approx(score.tolist(), rel=1e-9)
            job = wait(c, c.post("/api/jobs", json={"kind": "explain", "subject": "model",
                                                     "index": i, "method": "exact_shapley"}).json())
            assert job["status"] == "done", job
            truth = tribute.explain(clf, X[i:i + 1], "exact_shapley", baseline=X.mean(0),
                                    target="predicted" if factory == "three" else None,
                                    progress=False)
            assert job["result"]["values"] == pytest.approx(
                np.asarray(truth.values).reshape(-1).tolist(), rel=1e-7)
            if factory == "three":  # named classes, the one predict returns
                assert pred["name"] == str(clf.predict(X[i:i + 1])[0])
                assert job["result"]["target"] == f"class {pred['name']}"


def test_requests_from_another_site_cannot_start_jobs_or_add_inputs() -> None:
    """A page on any site could POST to the explorer on 127.0.0.1 (a text/plain body needs no
    CORS preflight): it started jobs (up to 100000 rows each) and added inputs."""
    cfg = ExplorerConfig(subjects=[SubjectSpec("tiny", "tiny", "image", tiny_subject)])
    body = json.dumps({"kind": "explain", "subject": "tiny", "method": "saliency"})
    with TestClient(create_app(cfg), base_url="http://127.0.0.1:8765") as c:
        evil = {"origin": "http://evil.example"}
        for headers in ({**evil, "content-type": "application/json"},
                        {"origin": "null", "content-type": "application/json"},
                        {"sec-fetch-site": "cross-site", "content-type": "application/json"}):
            r = c.post("/api/jobs", content=body, headers=headers)
            assert r.status_code == 403 and "refused" in r.json()["error"], (headers, r.json())
        r = c.post("/api/subjects/tiny/inputs?filename=x.npy", headers=evil,
                   content=_npy(np.zeros((1, 2, 4, 4), np.float32)))
        assert r.status_code == 403
        # no Origin, but a form's content type: refused by the handlers
        r = c.post("/api/jobs", content=body, headers={"content-type": "text/plain"})
        assert r.status_code == 400 and "Content-Type: application/json" in r.json()["error"]
        r = c.post("/api/subjects/tiny/inputs?filename=x.npy", headers={
            "content-type": "multipart/form-data; boundary=x"},
            content=_npy(np.zeros((1, 2, 4, 4), np.float32)))
        assert r.status_code == 400 and "application/octet-stream" in r.json()["error"]
        assert c.get("/api/subjects/tiny").json()["n_inputs"] == 6
        # the page itself (same origin) and scripts without Origin are served
        same = {"origin": "http://127.0.0.1:8765", "content-type": "application/json"}
        assert c.post("/api/jobs", content=body, headers=same).status_code in (200, 202)
        assert c.post("/api/jobs", json=json.loads(body)).status_code in (200, 202)
        assert c.get("/api/info", headers=evil).status_code == 200  # reads: CORS keeps them


def test_a_colour_picture_upload_is_an_rgb_input() -> None:
    """A subject of 3 x H x W images refused every .png ("got an array of shape [1, 1, 16,
    16]"; pictures were decoded gray) though the page offers pictures for image subjects."""
    from PIL import Image

    def build() -> Subject:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(),
                                    torch.nn.Linear(2 * 14 * 14, 2)).eval()
        return Subject(name="rgb", title="rgb", kind="image", model=model,
                       inputs=torch.rand(2, 3, 16, 16), class_names=["a", "b"])

    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 255  # red everywhere, a green square in the top-left quarter
    rgb[:16, :16] = (0, 255, 0)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    cfg = ExplorerConfig(subjects=[SubjectSpec("rgb", "rgb", "image", build)])
    with TestClient(create_app(cfg), base_url=BASE) as c:
        r = c.post("/api/subjects/rgb/inputs?filename=square.png", content=buf.getvalue())
        assert r.status_code == 200, r.json()
        x = cfg.subjects[0].get().inputs[r.json()["indices"][0]]
    expect = np.zeros((3, 16, 16), np.float32)
    expect[0] = 1.0
    expect[:, :8, :8] = np.array([0.0, 1.0, 0.0])[:, None, None]
    np.testing.assert_allclose(x.numpy(), expect, atol=1e-6)  # colours kept, never inverted
