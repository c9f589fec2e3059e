"""Units of the explorer: the engine's progress hook, cancellation, the LRU cache, the
registry-generated parameter forms and the agreement matrix."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import tribute
from tribute.engine import observe_progress
from tribute.errors import InputError
from tribute.explorer import Cancelled, JobManager, LRUCache
from tribute.explorer.compute import method_form, parse_params, spearman_matrix
from tribute_testing import pair_subject


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).eval()


def test_observe_progress_sees_every_chunk_and_can_stop_a_call() -> None:
    model, x = _model(), torch.randn(2, 6)
    seen: list[tuple[int, int]] = []
    with observe_progress(lambda d, t: seen.append((d, t))):
        attr = tribute.explain(model, x, method="kernel_shap", budget=64, batch_size=16)
    assert seen and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1][0] == attr.n_rows  # every model row reported, chunk by chunk
    assert len(seen) >= attr.n_rows // 16
    # outside the scope nothing is reported
    n = len(seen)
    tribute.explain(model, x, method="kernel_shap", budget=64)
    assert len(seen) == n

    class Stop(Exception):
        pass

    def stop(done: int, total: int) -> None:
        if done >= 32:
            raise Stop

    with pytest.raises(Stop), observe_progress(stop):
        tribute.explain(model, x, method="kernel_shap", budget=512, batch_size=16)
    assert model.training is False
    assert all(not m._forward_hooks for m in model.modules())


def test_observe_progress_is_per_thread() -> None:
    model, x = _model(), torch.randn(1, 6)
    seen: list[int] = []
    with observe_progress(lambda d, t: seen.append(d)):
        th = threading.Thread(target=lambda: tribute.explain(model, x, method="kernel_shap",
                                                             budget=32))
        th.start()
        th.join()
    assert seen == []  # another thread's calls are not this scope's


def test_job_manager_cancels_between_chunks_and_caches_results() -> None:
    manager = JobManager(workers=1, cache_items=4)
    model, x = _model(), torch.randn(1, 6)
    started = threading.Event()

    def slow(job: object) -> object:
        def hold(d: int, t: int) -> None:
            started.set()
            threading.Event().wait(0.01)

        with observe_progress(hold):
            return tribute.explain(model, x, method="kernel_shap", budget=20000, batch_size=8)

    job = manager.submit("explain", "k1", slow)
    assert started.wait(30)
    manager.cancel(job.id)
    for _ in range(600):
        if job.terminal:
            break
        threading.Event().wait(0.05)
    assert job.status == "cancelled" and job.done < 20000
    assert "k1" not in manager.cache
    ok = manager.submit("explain", "k2", lambda job: {"answer": 42})
    for _ in range(200):
        if ok.terminal:
            break
        threading.Event().wait(0.01)
    assert ok.result == {"answer": 42}
    again = manager.submit("explain", "k2", lambda job: pytest.fail("recomputed"))
    assert again.cached and again.result == {"answer": 42}
    boom = manager.submit("explain", "k3", lambda job: 1 / 0)
    for _ in range(200):
        if boom.terminal:
            break
        threading.Event().wait(0.01)
    assert boom.status == "error" and "ZeroDivisionError" in (boom.error or "")
    manager.shutdown()


def test_job_check_raises_once_cancelled() -> None:
    from tribute.explorer.jobs import Job

    job = Job(id="1", kind="x", key="k")
    job.check()
    job.cancel_flag.set()
    with pytest.raises(Cancelled):
        job.begin_step("next")


def test_lru_cache_evicts_the_least_recently_used() -> None:
    c = LRUCache(2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # a is now the most recent
    c.put("c", 3)
    assert "b" not in c and c.get("a") == 1 and c.get("c") == 3 and len(c) == 2
    assert c.get("zzz") is None and c.misses == 1
    with pytest.raises(ValueError):
        LRUCache(0)


def test_forms_follow_the_registry_declarations() -> None:
    for name, info in tribute.methods().items():
        if info.alias_of is not None:
            continue
        form = {f["name"]: f for f in method_form(name)}
        scalars = {k for k, v in info.defaults.items()
                   if isinstance(v, (bool, int, float, str, type(None)))}
        assert set(form) == scalars, name
        for k, f in form.items():
            assert f["default"] == info.defaults[k]
            if k in info.constraints:
                assert f["allowed"] == info.constraints[k]
    rise = {f["name"]: f for f in method_form("rise")}
    assert rise["p"]["type"] == "float" and (rise["p"]["min"], rise["p"]["max"]) == (0.0, 1.0)
    assert rise["s"]["type"] == "int" and rise["center"]["type"] == "bool"
    # None as one alternative makes a field nullable, not a choice without choices
    ks = {f["name"]: f for f in method_form("kernel_shap")}
    assert ks["target_precision"]["type"] == "float" and ks["target_precision"]["nullable"]
    assert ks["target_precision"]["min"] == 0.0
    cam = {f["name"]: f for f in method_form("grad_cam")}
    assert cam["layer"]["type"] == "text" and cam["layer"]["nullable"]


def test_parse_params_types_and_errors() -> None:
    assert parse_params("rise", {"s": 4.0, "p": "0.25", "center": True}) == \
        {"s": 4, "p": 0.25, "center": True}
    assert parse_params("kernel_shap", {"target_precision": "0.01"}) == {"target_precision": 0.01}
    assert parse_params("kernel_shap", {"target_precision": ""}) == {"target_precision": None}
    for bad, words in [({"s": 2.5}, "rise.s=2.5"), ({"center": "yes"}, "rise.center='yes'"),
                       ({"nope": 1}, "no parameter 'nope'")]:
        with pytest.raises(InputError, match=words.replace(".", r"\.").replace("(", r"\(")):
            parse_params("rise", bad)
    with pytest.raises(InputError, match="object"):
        parse_params("rise", [1])


def test_spearman_matrix_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=30)
    b = np.round(a + rng.normal(size=30), 0)  # ties
    c = -a
    m = np.asarray(spearman_matrix([a, b, c]), dtype=float)
    assert m[0, 1] == pytest.approx(spearmanr(a, b)[0], abs=1e-12)
    assert m[0, 2] == pytest.approx(-1.0)
    assert spearman_matrix([np.zeros(4), a[:4]])[0][1] is None  # constant credits: undefined


# ------------------------------------------------------------------ text subjects on words
def _text_subject() -> object:
    return pair_subject()


def test_text_subject_explains_words_with_removal_and_pair_map() -> None:
    from tribute.explorer.compute import check_removal, compare, explain_one, preview
    from tribute.explorer.jobs import Job

    s = _text_subject()
    p = preview(s, 0)  # type: ignore[arg-type]
    assert p["tokens"] == ["a", "cat", "sleeps", "the", "kitten", "naps"] and p["split"] == 3
    job = Job(id="1", kind="x", key="k")
    direct = tribute.explain(s.text_model, [s.texts[0]], "exact_shapley",  # type: ignore[attr-defined]
                             tokenizer=s.tokenizer, pair="cosine", removal="pad")  # type: ignore[attr-defined]
    out = explain_one(job, s, 0, "exact_shapley", {}, None, 0, "pad")  # type: ignore[arg-type]
    np.testing.assert_allclose(out["values"], np.asarray(direct.values)[0], atol=1e-8)
    assert out["removal"] == "pad" and "pair" not in out
    inter = explain_one(job, s, 0, "shapley_interactions", {}, None, 0, None)  # type: ignore[arg-type]
    assert inter["removal"] == "mask" and inter["pair"]["rows"] == ["a", "cat", "sleeps"]
    assert np.asarray(inter["pair"]["values"]).shape == (3, 3)
    grads = explain_one(job, s, 1, "integrated_gradients", {}, None, 0, "mask")  # type: ignore[arg-type]
    assert len(grads["values"]) == 4 and grads["gap"] is not None and abs(grads["gap"]) < 1e-3
    cmp = compare(job, s, 0, ["feature_ablation", "exact_shapley"], None, 0, removal="delete")  # type: ignore[arg-type]
    assert cmp["panels"][0]["deletion"]["auc"] is not None and len(cmp["spearman"]) == 2
    with pytest.raises(InputError, match="not offered"):
        check_removal(s, "zero")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="text subjects"):
        from tribute.explorer.subjects import Subject

        check_removal(Subject(name="t", title="t", kind="tabular", model=None,
                              inputs=torch.zeros(1, 2)), "mask")


def test_leaderboard_ranks_follow_the_bench_rule(tmp_path: Any) -> None:
    """Means 1e-3 and 1e-3 + 5e-10 are tied by the bench (its leaderboard.csv ranks them 1, 1);
    the page's own tolerance (abs 1e-12 at this scale) ranked them 1, 2."""
    import json

    from tribute.explorer.leaderboard import load_leaderboard

    def score(method: str, mean: float) -> dict[str, Any]:
        return {"case": "c", "method": method, "metric": "infidelity", "status": "ok",
                "mean": mean, "stderr": 1e-4, "n": 8, "higher_is_better": False}

    run = tmp_path / "run"
    run.mkdir()
    scores = [score("a", 1e-3), score("b", 1e-3 + 5e-10), score("c", 2e-3), score("d", 5e-4)]
    (run / "results.json").write_text(json.dumps({"suite": "s", "scores": scores}))
    rows = load_leaderboard(tmp_path)["runs"][0]["rows"]
    assert {r["method"]: r["rank"] for r in rows} == {"d": 1, "a": 2, "b": 2, "c": 4}


def test_csv_header_is_a_line_with_a_field_that_is_not_a_number() -> None:
    from tribute.explorer.security import csv_header, load_upload

    assert csv_header(b"age,bmi,bp\n1,2,3\n") == ["age", "bmi", "bp"]
    assert csv_header(b"1.5e-3,2E4,-3\n") is None
    # A first data row holding nan/inf is data (refused later as non-finite), not a header that
    # would be dropped without a word (it was: "nan" and "inf" hold letters other than e/E).
    assert csv_header(b"nan,1,2\n3,4,5\n") is None
    assert csv_header(b"1,-inf,2\n") is None
    # (since aud40x uploads are read by --data's reader, which names the row with the missing
    # value instead of returning it for a later "holds NaN" refusal)
    with pytest.raises(InputError, match=r"missing values \(rows \[0\]"):
        load_upload("x.csv", b"nan,1,2\n3,4,5\n", "tabular")
    # A UTF-8 byte-order mark (Excel's "CSV UTF-8") is not part of the first field.
    bom = "\ufeff1,2,3\n4,5,6\n".encode()
    assert csv_header(bom) is None and load_upload("x.csv", bom, "tabular").shape == (2, 3)
    assert csv_header("\ufeffage,bmi\n1,2\n".encode()) == ["age", "bmi"]


def test_prediction_shows_the_class_predict_returns() -> None:
    # explain's 'predicted' target is what predict returns; the page showed the arg-max of
    # predict_proba, another class under a decision threshold of 0.9.
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import FixedThresholdClassifier

    from tribute.explorer.compute import predict
    from tribute.explorer.subjects import Subject

    x, y = load_breast_cancer(return_X_y=True)
    x = x[:, :5]
    clf = FixedThresholdClassifier(LogisticRegression(max_iter=5000), threshold=0.9).fit(x, y)
    p1 = clf.predict_proba(x)[:, 1]
    row = int(np.flatnonzero((p1 > 0.5) & (p1 <= 0.9))[0])
    s = Subject(name="t", title="t", kind="tabular", model=clf, inputs=x[row : row + 1],
                class_names=["malignant", "benign"], output="prob")
    shown = predict(s, 0)
    assert shown["top"] == 0 and shown["name"] == "malignant"
    assert shown["scores"][1] > 0.5  # the arg-max would have said benign


def test_progress_never_goes_back_over_the_steps_of_a_compare_job(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What a reader sees after every change of a compare job only grows: a finished step's rows
    counted once more after ``end_step`` (50%, then 25% when the next step began), and the
    insertion curve's rows restarted the deletion curve's step (48%, then 37.5%)."""
    from starlette.testclient import TestClient

    import tribute.explorer.jobs as jobs_module
    from tribute.explorer import ExplorerConfig, SubjectSpec, create_app
    from tribute.explorer.subjects import Subject

    seen: list[float] = []
    raw: list[float] = []  # the fraction itself (not only public()'s high-water mark)

    class Recording(jobs_module.Job):
        def __setattr__(self, name: str, value: Any) -> None:
            object.__setattr__(self, name, value)
            if name == "seq":  # every change a reader (the event stream) can see
                raw.append(self.fraction)
                seen.append(self.public(with_result=False)["progress"])

    monkeypatch.setattr(jobs_module, "Job", Recording)
    model = _model()
    subject = Subject(name="t", title="t", kind="tabular", model=model,
                      inputs=torch.randn(3, 6, generator=torch.Generator().manual_seed(0)),
                      class_names=["a", "b"])
    cfg = ExplorerConfig(subjects=[SubjectSpec("t", "t", "tabular", lambda: subject)])
    with TestClient(create_app(cfg), base_url="http://127.0.0.1") as c:
        job = c.post("/api/jobs", json={"kind": "compare", "subject": "t", "index": 0,
                                        "methods": ["kernel_shap", "saliency"],
                                        "budget": 200}).json()
        for _ in range(1200):
            job = c.get(f"/api/jobs/{job['id']}").json()
            if job["status"] not in ("queued", "running"):
                break
            threading.Event().wait(0.05)
    assert job["status"] == "done", job
    assert len(seen) > 8 and seen[0] == 0.0 and seen[-1] == 1.0
    for series in (seen, raw):
        back = [(a, b) for a, b in itertools.pairwise(series) if b < a - 1e-12]
        assert back == [], (back, series)
