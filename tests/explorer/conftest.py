"""Shared fixtures of the explorer tests: a bench-style results folder and small configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")


def _score(case: str, method: str, metric: str, mean: float, se: float, higher: bool) -> dict[str, Any]:
    return {"case": case, "method": method, "metric": metric, "status": "ok", "message": "",
            "mean": mean, "stderr": se, "n": 8, "higher_is_better": higher, "seconds": 0.5,
            "n_evals": 256}


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding one `tribute bench --out` style run (results.json + report.html)."""
    root = tmp_path_factory.mktemp("results")
    run = root / "quick-run"
    run.mkdir()
    scores = [
        _score("digits", "integrated_gradients", "deletion", 0.20, 0.01, False),
        _score("digits", "kernel_shap", "deletion", 0.10, 0.02, False),
        _score("digits", "saliency", "deletion", 0.30, 0.05, False),
        _score("digits", "integrated_gradients", "insertion", 0.70, 0.03, True),
        _score("digits", "kernel_shap", "insertion", 0.80, 0.01, True),
        _score("digits", "saliency", "insertion", 0.80, 0.02, True),
        {"case": "digits", "method": "lime", "metric": "deletion", "status": "error",
         "message": "boom", "mean": None, "stderr": None, "n": 0, "higher_is_better": False},
    ]
    data = {"suite": "quick", "seed": 0, "created": "2026-12-02T00:00:00", "scores": scores,
            "overall": [{"method": "kernel_shap", "mean_rank": 1.0, "wins": 2, "scored": 2}]}
    (run / "results.json").write_text(json.dumps(data), encoding="utf-8")
    (run / "report.html").write_text("<html><body>report</body></html>", encoding="utf-8")
    (root / "notes.txt").write_text("hello", encoding="utf-8")
    return root
