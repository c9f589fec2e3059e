"""Review rev48x of aud48x: the page drew unsigned scores as signed credits.

``sobol`` (total Sobol indices), ``smoothgrad_sq`` (mean squared gradients), ``vargrad`` (a
variance) and ``extremal_perturbation`` (sums of masks in [0, 1]) give importances without a
direction, but the page coloured them red/blue under "-x lowers ... +x raises the output" and
summed "positive / negative credits". Methods now declare ``Tags.signed``; the explorer's
results carry ``signed`` and the page reads unsigned maps from 0.

Truth: the values themselves (numpy): every method declared unsigned gives no negative score
on three random models, and every other gradient method tried gives negative credits.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

import tribute

pytest.importorskip("starlette")
from _explorer_live import wait_for_job
from starlette.testclient import TestClient

from tribute.explorer import ExplorerConfig, create_app
from tribute.explorer.subjects import Subject, SubjectSpec
from tribute.methods.base import get_method

UNSIGNED = ("sobol", "smoothgrad_sq", "vargrad", "extremal_perturbation")
SIGNED = ("integrated_gradients", "saliency", "smoothgrad", "kernel_shap", "occlusion")


class _Net(torch.nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = torch.nn.Conv2d(1, 3, 3, padding=1)
        self.fc = torch.nn.Linear(3 * 4 * 4, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


def _values(model: torch.nn.Module, x: torch.Tensor, method: str, **kw: Any) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = tribute.explain(model, x, method, progress=False, seed=0, **kw)
    return np.asarray(a.values.detach().cpu() if isinstance(a.values, torch.Tensor) else a.values)


@pytest.mark.slow  # ~18 s: 9 methods x 3 models
def test_methods_declared_unsigned_give_no_negative_score_and_the_others_do() -> None:
    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    for name in UNSIGNED:
        assert get_method(name).tags.signed is False, name
    for name in SIGNED:
        assert get_method(name).tags.signed is True, name
    for seed in (0, 1, 2):
        model = _Net(seed).eval()
        for name in UNSIGNED:
            kw: dict[str, Any] = {"budget": 48} if get_method(name).tags.budgeted else {}
            if name == "extremal_perturbation":
                kw = {"steps": 4, "areas": (0.25,)}
            # sobol's estimator may dip below 0 by noise for a player without effect: none here
            assert _values(model, x, name, **kw).min() >= -1e-12, (seed, name)
        for name in SIGNED:
            kw = {"budget": 48} if get_method(name).tags.budgeted else {}
            assert _values(model, x, name, **kw).min() < 0, (seed, name)


def _image() -> Subject:
    return Subject(name="img", title="img", kind="image", model=_Net(0).eval(),
                   inputs=torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(4)),
                   class_names=["a", "b", "c"], labels=["0", "1", "2"])


def test_explorer_results_say_whether_the_scores_are_signed() -> None:
    """explain and compare answers carry ``signed`` (False exactly for unsigned scores, whose
    values are then all >= 0); saliency with ``absolute=True`` gives magnitudes too."""
    cfg = ExplorerConfig(subjects=[SubjectSpec("img", "img", "image", _image)])
    cases: list[tuple[str, dict[str, Any], bool]] = [
        *[(m, {}, False) for m in ("sobol", "smoothgrad_sq", "vargrad")],
        *[(m, {}, True) for m in ("integrated_gradients", "saliency", "smoothgrad", "kernel_shap")],
        ("saliency", {"absolute": True}, False), ("saliency", {"absolute": False}, True)]
    with TestClient(create_app(cfg), base_url="http://127.0.0.1") as c:
        for method, params, signed in cases:
            r = c.post("/api/jobs", json={"kind": "explain", "subject": "img", "index": 1,
                                          "method": method, "params": params, "budget": 48})
            assert r.status_code in (200, 202), r.json()
            job = wait_for_job(c, r.json())
            assert job["status"] == "done", job
            res = c.get(f"/api/jobs/{job['id']}").json()["result"]
            assert res["signed"] is signed, (method, params)
            if not signed:
                assert np.nanmin(np.asarray(res["values"], dtype=float)) >= 0, (method, params)
        r = c.post("/api/jobs", json={"kind": "compare", "subject": "img", "index": 0, "budget": 48,
                                      "methods": ["sobol", "integrated_gradients", "vargrad"]})
        job = wait_for_job(c, r.json(), timeout=120)
        assert job["status"] == "done", job
        panels = c.get(f"/api/jobs/{job['id']}").json()["result"]["panels"]
        assert [p["signed"] for p in panels] == [False, True, False]


@pytest.mark.slow
def test_the_page_reads_an_unsigned_map_from_zero() -> None:
    """sobol's legend said "-x lowers ... +x raises the output" and the page summed "positive /
    negative credits"; now it says the scores are unsigned (and IG keeps its signed legend)."""
    from _explorer_live import LiveServer, chromium_browser

    live = LiveServer(create_app(ExplorerConfig(
        subjects=[SubjectSpec("img", "img", "image", _image)]))).start()
    texts = {}
    try:
        with chromium_browser() as browser:
            page = browser.new_page()
            page.goto(live.url + "/")
            page.wait_for_selector("body[data-ready=yes]", timeout=60_000)
            for method in ("sobol", "integrated_gradients"):
                page.select_option("#explain-method", method)
                page.fill("#explain-budget", "48")
                page.click("#explain-run")
                page.wait_for_selector(f"#explain-result .cap:has-text('{method}')", timeout=60_000)
                texts[method] = page.locator("#explain-result").text_content() or ""
    finally:
        live.stop()
    assert "unsigned" in texts["sobol"] and "raises" not in texts["sobol"], texts["sobol"]
    assert "raises" in texts["integrated_gradients"] and "unsigned" not in texts["integrated_gradients"]
