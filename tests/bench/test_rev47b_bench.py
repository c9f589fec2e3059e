"""rev47b: ``tribute evaluate --ground-truth`` scores ``relevance_mass`` on ``|credit|``.

Before: the positive part. A method with no positive credit on a row got NaN there (the row dropped
for that method only), so methods were averaged over different rows; on ``f(x) = -(x0 + x1 + x2)``
with ``x >= 0`` and the mask ``{0, 1, 2}`` the five exact methods (credits ``-x_i`` in the mask, 0
outside) were n/a, kernel_shap (float noise outside the mask) read 0.000, ranked below random (0.356),
and the sanity check said kernel_shap was worse than random.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from tribute.bench import generation_suite as gs
from tribute.cli import main
from tribute.errors import InputError

MODEL = """
import torch
def make(w):
    lin = torch.nn.Linear(len(w), 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([w], dtype=torch.float32))
    return lin.eval()
def neg():
    return make([-1.0, -1.0, -1.0, 0.0, 0.0, 0.0])
def mixed():
    return make([2.0, -1.0, 0.5, 0.3, -0.2, 0.0])
"""


def _run(tmp_path: Path, factory: str, methods: str) -> tuple[int, dict[str, list[float]]]:
    out = tmp_path / f"o_{factory}"
    rc = main(["evaluate", "--model", f"{tmp_path / 'm.py'}:{factory}", "--data", str(tmp_path / "x.npy"),
               "--ground-truth", str(tmp_path / "gt.npy"), "--methods", methods, "--metrics", "relevance_mass",
               "--out", str(out), "--no-progress"])
    rows = json.loads((out / "results.json").read_text(encoding="utf-8"))["scores"]
    return rc, {r["method"]: [np.nan if v is None else float(v) for v in r["scores"]] for r in rows
                if r["metric"] == "relevance_mass"}


def _setup(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    (tmp_path / "m.py").write_text(MODEL, encoding="utf-8")
    x = np.random.default_rng(0).uniform(0.1, 1.0, (6, 6)).astype(np.float32)  # x >= 0, as pixels
    gt = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "gt.npy", gt)
    return x.astype(np.float64), gt


def test_relevance_mass_of_negative_relevant_credits_is_scored_on_every_row(tmp_path: Path) -> None:
    x, _gt = _setup(tmp_path)
    rc, got = _run(tmp_path, "neg", "input_x_gradient,feature_ablation,saliency")
    assert rc == 0
    # truth by hand: every method here is exact on a linear model with baseline 0; credits -x_i in the
    # mask and 0 outside it, so all of |credit| is in the mask on every row (before: NaN on every row)
    for m in ("input_x_gradient", "feature_ablation", "saliency"):
        np.testing.assert_allclose(got[m], np.ones(len(x)), atol=1e-6, err_msg=m)


def test_relevance_mass_is_the_share_of_absolute_credit_in_the_mask(tmp_path: Path) -> None:
    x, gt = _setup(tmp_path)
    rc, got = _run(tmp_path, "mixed", "input_x_gradient,saliency")
    assert rc == 0
    w = np.array([2.0, -1.0, 0.5, 0.3, -0.2, 0.0])
    for m, credits in (("input_x_gradient", x * w), ("saliency", np.tile(w, (len(x), 1)))):
        a = np.abs(credits)  # numpy by hand: the exact credits of a linear model
        np.testing.assert_allclose(got[m], a[:, gt].sum(1) / a.sum(1), rtol=1e-5, err_msg=m)


def test_generation_method_that_raises_keeps_the_other_rows_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    # the fast twin of aud47b's CLI test (now @slow: it trains the copy model): a method that raises
    # is a {"method", "error"} row, the others are scored (truth: planted word credited 3, others 1)
    task = gs.CopyTask(model=torch.nn.Identity(), tokenizer=None, prompts=["p"] * 3, planted=[2] * 3, accuracy=1.0)
    monkeypatch.setattr(gs, "copy_task", lambda n_prompts, seed: task)
    monkeypatch.setattr(gs, "_word_spans", lambda prompt: None)

    def fake(model: Any, tok: Any, prompt: str, *, method: str, **kw: Any) -> Any:
        if method == "grad_cam":
            raise InputError("grad_cam needs a feature game")
        row = np.ones(gs.PROMPT_WORDS)
        row[2] = 3.0
        return SimpleNamespace(matrix=np.stack([row, row]), n_evals=4)

    monkeypatch.setattr(gs, "explain_generation", fake)
    res = gs.run_generation_suite(n_prompts=3, methods=["lime", "grad_cam", "feature_ablation"])
    rows = {r["method"]: r for r in res["results"]}
    assert "grad_cam needs a feature game" in rows["grad_cam"]["error"] and "top1" not in rows["grad_cam"]
    for m in ("lime", "feature_ablation"):
        assert (rows[m]["top1"], rows[m]["rank"], rows[m]["n_evals"]) == (1.0, 1.0, 4.0)
    assert "FAILED" in gs.format_generation_results(res).splitlines()[3]
