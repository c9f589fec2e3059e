"""tribute evaluate --ground-truth takes per-pixel masks of channel images (rev34c)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tribute
from tribute.cli import main

MODEL = """
import torch
def make_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
"""


@pytest.mark.parametrize("shared", [False, True])
def test_a_pixel_mask_broadcasts_over_the_channels(tmp_path: Path, shared: bool) -> None:
    # (N, H, W) masks for (N, 3, H, W) images worked at e62f028 and were refused after e5c1128
    # ("give one mask of one sample's shape (3, 8, 8)"); the metrics take them broadcast
    (tmp_path / "m.py").write_text(MODEL, encoding="utf-8")
    x = np.random.default_rng(0).standard_normal((6, 3, 8, 8)).astype(np.float32)
    mask = np.zeros((6, 8, 8))
    mask[:, 2:5, 2:5] = 1
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "gt.npy", mask[0] if shared else mask)
    out = tmp_path / "o"
    assert main(["evaluate", "--model", f"{tmp_path / 'm.py'}:make_cnn", "--data", str(tmp_path / "x.npy"),
                 "--ground-truth", str(tmp_path / "gt.npy"), "--limit", "4", "--methods", "saliency",
                 "--metrics", "relevance_mass", "--target", "0", "--out", str(out), "--no-progress"]) == 0
    rows = json.loads((out / "results.json").read_text(encoding="utf-8"))["scores"]
    got = next(r["scores"] for r in rows if r["method"] == "saliency")
    ns: dict[str, object] = {}
    exec(MODEL, ns)
    net = ns["make_cnn"]()  # type: ignore[operator]
    xt = torch.from_numpy(x[:4])
    attr = tribute.explain(net, xt, method="saliency", target=0)
    # evaluate scores relevance_mass on |credit| (rev47b: the positive part dropped rows per method)
    want = tribute.evaluate(net, xt, attr, metric="relevance_mass", ground_truth=mask[:4], progress=False,
                            absolute=True)
    np.testing.assert_allclose(got, np.asarray(want.scores).ravel(), rtol=1e-6)
