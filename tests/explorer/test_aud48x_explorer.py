"""Audit aud48x: the explorer offers only the methods the chosen settings can run.

* The method catalogue did not depend on the text removal (rev47t, measured on the minilm
  subject): with ``removal="delete"`` it listed ``sobol`` and every gradient method as usable,
  and each such job then raised. On a tiny sentence-pair subject (the same game as minilm's)
  18 of the 99 method x removal offers raised: 12 under ``delete`` (sobol, 8 gradient methods
  and the 3 image-region methods xrai, extremal_perturbation, submodular_regions) and the 3
  image-region methods under ``mask`` and ``pad`` each (declared ``images_only``). On a token-id subject ``sobol`` (fractional
  masks on integer ids) and ``submodular_regions`` were offered and raised.
* Now the catalogue derives each method's usability from its declared tags
  (``needs_gradients``, the new ``fractional_masks``, ``images_only``) and what the subject's
  game takes under each removal (``why_by_removal``); a job asking for a method the removal
  cannot run is a 400 naming ``removal``.

Truth: ``tribute.explain`` called directly with the same model, text, method and removal
(runs, or raises).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import tribute

pytest.importorskip("starlette")
from _explorer_live import wait_for_job
from starlette.testclient import TestClient

from tribute.explorer import ExplorerConfig, create_app
from tribute.explorer.compute import method_catalogue
from tribute.explorer.subjects import Subject, SubjectSpec
from tribute.methods.base import get_method
from tribute_testing import pair_subject


def _pairs() -> Subject:
    subject: Subject = pair_subject()
    return subject


class _Bag(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(10, 3)
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lin(self.emb(ids).mean(1))


def _token_ids() -> Subject:
    ids = torch.tensor([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]])
    return Subject(name="tok", title="tok", kind="text", model=_Bag().eval(), inputs=ids,
                   baseline=0, class_names=["0", "1"], tokens=[[str(int(t)) for t in r] for r in ids],
                   pad_id=0, labels=["a", "b"], gradients=False)


def _why(s: Subject, method: str, removal: str | None) -> str:
    m = {e["name"]: e for e in method_catalogue(s)}[method]
    w = m.get("why_by_removal")
    return str(w[removal]) if w is not None and removal is not None else str(m["why"])


def _runs_text(s: Subject, method: str, removal: str) -> bool:
    assert s.texts is not None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tribute.explain(s.text_model, [s.texts[0]], method, tokenizer=s.tokenizer,
                            pair=s.pair, removal=removal, progress=False, seed=0)
    except tribute.errors.TributeError:
        return False
    return True


@pytest.mark.parametrize("method", ["sobol", "integrated_gradients", "saliency", "smoothgrad"])
def test_delete_removal_offers_no_method_that_then_raises(method: str) -> None:
    s = _pairs()
    assert not _runs_text(s, method, "delete")  # the truth: the library refuses it
    why = _why(s, method, "delete")
    assert "removal='delete'" in why and "'mask' or 'pad'" in why
    # the blending removals run it, and the catalogue offers it there
    for removal in ("mask", "pad"):
        assert _runs_text(s, method, removal)
        assert _why(s, method, removal) == ""
    entry = {e["name"]: e for e in method_catalogue(s)}[method]
    assert entry["usable"] and entry["why"] == ""  # the default removal, 'mask'


def test_every_offer_on_a_text_pair_subject_runs() -> None:
    # 33 methods x 3 removals: an offered method runs (0 of 99 raise; 18 did before); a refused
    # one raises, except the model-specific methods the explorer keeps to image subjects
    s = _pairs()
    for removal in s.removals:
        for e in method_catalogue(s):
            why = e["why_by_removal"][removal]
            runs = _runs_text(s, e["name"], removal)
            if not why:
                assert runs, (removal, e["name"])
            elif not get_method(e["name"]).tags.model_specific:
                assert not runs, (removal, e["name"], why)


def test_a_token_id_subject_offers_neither_sobol_nor_image_regions() -> None:
    s = _token_ids()
    for method, words in (("sobol", "token ids"), ("submodular_regions", "images only")):
        with pytest.raises(tribute.errors.TributeError):
            tribute.explain(s.model, s.row(0), method, target="predicted", baseline=0,
                            progress=False)
        assert words in _why(s, method, None)
    for method in ("kernel_shap", "feature_ablation", "lime", "occlusion", "rise"):
        assert _why(s, method, None) == ""


def test_an_integer_table_offers_sobol_exactly_when_the_game_blends_it() -> None:
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0, 1, 2], [2, 1, 0], [1, 1, 1], [3, 0, 2]] * 3)
    clf = LogisticRegression().fit(X, np.array([0, 1, 0, 1] * 3))
    for base, offered in ((X.mean(0), True), (np.array([1.0, 1.0, 1.0]), False),
                          (np.zeros(3), False), (np.array([1.5, 0.0, 2.0]), True)):
        s = Subject(name="int", title="t", kind="tabular", model=clf, inputs=X, baseline=base,
                    class_names=["0", "1"], feature_names=["a", "b", "c"],
                    labels=[str(i) for i in range(len(X))], gradients=False)
        try:
            tribute.explain(clf, X[:1], "sobol", target="predicted", baseline=base, progress=False)
            runs = True
        except tribute.errors.InputError:
            runs = False
        assert runs == offered, base
        assert (_why(s, "sobol", None) == "") == offered, base


def _client(s: Subject) -> TestClient:
    cfg = ExplorerConfig(subjects=[SubjectSpec(s.name, s.name, s.kind, lambda: s)])
    return TestClient(create_app(cfg), base_url="http://127.0.0.1")


def test_a_job_the_removal_cannot_run_is_a_400_naming_removal() -> None:
    s = _pairs()
    with _client(s) as c:
        for body in ({"kind": "explain", "method": "sobol", "removal": "delete"},
                     {"kind": "explain", "method": "integrated_gradients", "removal": "delete"},
                     {"kind": "compare", "methods": ["kernel_shap", "saliency"],
                      "removal": "delete"}):
            r = c.post("/api/jobs", json={"subject": "pairs", "index": 0, **body})
            assert r.status_code == 400, r.json()
            assert "removal='delete'" in r.json()["error"]
        # the subject's answer says it per removal, for the page
        cat = {m["name"]: m for m in c.get("/api/subjects/pairs").json()["methods"]}
        assert cat["sobol"]["why_by_removal"]["delete"] and not cat["sobol"]["why_by_removal"]["pad"]
        # neighbours still run, and equal the library's numbers
        for method, removal in (("sobol", "mask"), ("integrated_gradients", "pad"),
                                ("kernel_shap", "delete"), ("feature_ablation", "delete")):
            r = c.post("/api/jobs", json={"subject": "pairs", "kind": "explain", "index": 0,
                                          "method": method, "removal": removal})
            assert r.status_code in (200, 202), r.json()
            job = wait_for_job(c, r.json())
            assert job["status"] == "done", job
            assert s.texts is not None
            direct = tribute.explain(s.text_model, [s.texts[0]], method, tokenizer=s.tokenizer,
                                     pair=s.pair, removal=removal, progress=False, seed=0,
                                     budget=128 if get_method(method).tags.budgeted else None)
            got = np.asarray(c.get(f"/api/jobs/{job['id']}").json()["result"]["values"])
            np.testing.assert_allclose(got, np.asarray(direct.values, dtype=np.float64)[0],
                                       rtol=1e-7, atol=1e-10)


def test_declared_fractional_masks_match_what_each_method_draws() -> None:
    """The tag the catalogue reads is the methods' own: every gradient-free feature method
    that evaluates a 5-player numpy game at a mask strictly between 0 and 1 declares
    ``fractional_masks`` (sobol), and none that declares it draws only 0/1 masks."""
    from tribute.api import methods

    checked = 0
    for name, info in methods().items():
        if info.alias_of is not None or "feature" not in info.tags.games or \
                info.tags.needs_gradients or info.tags.images_only or info.tags.model_specific:
            continue
        seen = {"frac": False}

        def model(x: np.ndarray, seen: dict[str, bool] = seen) -> np.ndarray:
            seen["frac"] = seen["frac"] or not bool(np.isin(x, (0.0, 1.0)).all())
            return np.asarray(x.sum(axis=1) + x[:, 0] * x[:, 1])

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tribute.explain(model, np.ones((1, 5)), name, baseline=0.0, progress=False)
        assert seen["frac"] == info.tags.fractional_masks, name
        checked += 1
    assert checked >= 12  # 14 when written


class _Ids(torch.nn.Module):
    """A stand-in model on the subject's id rows (the page's 'model says' only)."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return ids.double().mean(1, keepdim=True)


@pytest.mark.slow
def test_the_page_offers_per_removal_what_runs() -> None:
    """The explain select and the compare checkboxes follow the removal picked: under 'delete'
    sobol and integrated_gradients are disabled (titled with why) and absent from compare; back
    on 'mask' they are offered again. A method picked under 'mask' that 'delete' cannot run is
    not left selected."""
    from _explorer_live import LiveServer, chromium_browser

    s = _pairs()
    s.model = _Ids()
    cfg = ExplorerConfig(subjects=[SubjectSpec("pairs", "pairs", "text", lambda: s)])
    live = LiveServer(create_app(cfg)).start()
    try:
        with chromium_browser() as browser:
            page = browser.new_page()
            page.goto(live.url + "/")
            page.wait_for_selector("body[data-ready=yes]", timeout=60_000)
            page.select_option("#explain-method", "sobol")
            page.select_option("#explain-removal", "delete")
            picked = page.locator("#explain-method").input_value()
            sobol_off = page.locator("#explain-method option[value=sobol]").is_disabled()
            title = page.locator("#explain-method option[value=integrated_gradients]").get_attribute("title")
            page.select_option("#explain-removal", "mask")
            sobol_back = page.locator("#explain-method option[value=sobol]").is_disabled()
            page.click("#tabs [data-view=compare]")
            page.select_option("#compare-removal", "delete")
            compare_delete = page.locator("input[name=compare-method]").evaluate_all(
                "els => els.map(e => e.value)")
            page.select_option("#compare-removal", "pad")
            compare_pad = page.locator("input[name=compare-method]").evaluate_all(
                "els => els.map(e => e.value)")
    finally:
        live.stop()
    assert picked == "kernel_shap" and sobol_off and not sobol_back
    assert title is not None and "removal='delete'" in title
    assert "sobol" not in compare_delete and "integrated_gradients" not in compare_delete
    assert "kernel_shap" in compare_delete and "feature_ablation" in compare_delete
    assert "sobol" in compare_pad and "integrated_gradients" in compare_pad


class _Conv(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)
        self.fc = torch.nn.Linear(2 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


def _image_with_cases() -> Subject:
    from tribute.explorer.subjects import TrainingCase
    from tribute.games.data_fits import LogisticFit

    g = torch.Generator().manual_seed(0)

    def training() -> TrainingCase:
        X = torch.rand(30, 16, generator=g, dtype=torch.float64)
        y = (X[:, 0] > 0.5).long()
        fit = LogisticFit(2, l2=1.0)
        return TrainingCase(X_train=X[:24], y_train=y[:24], X_test=X[24:], y_test=y[24:],
                            fit=fit, model=fit(X[:24], y[:24], seed=0), image_shape=(4, 4))

    return Subject(name="img", title="img", kind="image", model=_Conv().eval(),
                   inputs=torch.rand(3, 1, 4, 4, generator=g), class_names=["a", "b", "c"],
                   labels=["0", "1", "2"], component_layers=["conv"], training_factory=training)


def test_components_and_training_requests_they_cannot_run_are_400s_before_any_job() -> None:
    """A components or training request with a bad method, a test point out of range, or on a
    subject without that view was accepted (202) and its job failed; now a 400 naming the
    field, and the legitimate neighbours still run (and equal the library's numbers)."""
    from tribute.games.data import TrainingData

    s = _image_with_cases()
    bare = Subject(name="bare", title="bare", kind="image", model=_Conv().eval(),
                   inputs=torch.rand(2, 1, 4, 4), class_names=["a", "b", "c"], labels=["0", "1"])
    cfg = ExplorerConfig(subjects=[SubjectSpec("img", "img", "image", lambda: s),
                                   SubjectSpec("bare", "bare", "image", lambda: bare)])
    with TestClient(create_app(cfg), base_url="http://127.0.0.1") as c:
        for body, words in (
                ({"kind": "components", "subject": "img", "method": "bogus"}, "method='bogus'"),
                ({"kind": "components", "subject": "img", "method": ["atp"]}, "method=['atp']"),
                ({"kind": "components", "subject": "bare"}, "no component layers"),
                ({"kind": "training", "subject": "img", "method": "bogus"}, "method='bogus'"),
                ({"kind": "training", "subject": "img", "index": 6}, "index=6 is out of range"),
                ({"kind": "training", "subject": "img", "index": -1}, "index=-1 is out of range"),
                ({"kind": "training", "subject": "bare"}, "no training-data case")):
            r = c.post("/api/jobs", json={"index": 0, **body})
            assert r.status_code == 400, (body, r.json())
            assert words in r.json()["error"], r.json()
        case = s.training
        assert case is not None
        for method in ("influence", "grad_dot"):
            for index in (0, 5):
                r = c.post("/api/jobs", json={"kind": "training", "subject": "img",
                                              "index": index, "method": method})
                job = wait_for_job(c, r.json())
                assert job["status"] == "done", job
                top = tribute.explain(case.model, case.X_test[index:index + 1], method,
                                      target=case.y_test[index:index + 1], progress=False,
                                      players=TrainingData(case.X_train, case.y_train,
                                                           fit=case.fit)).top(0, k=6)
                got = c.get(f"/api/jobs/{job['id']}").json()["result"]
                assert [p["index"] for p in got["proponents"]] == [i for i, _, _ in top["proponents"]]
        for method in ("feature_ablation", "atp"):
            r = c.post("/api/jobs", json={"kind": "components", "subject": "img", "index": 1,
                                          "method": method})
            assert wait_for_job(c, r.json())["status"] == "done"
