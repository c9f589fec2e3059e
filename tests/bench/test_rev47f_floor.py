"""benchmarks/bench_engine_floor.py: its bare figure is the bench's (rev47f), and its hand
feature ablation gives the values of an independent one-feature-at-a-time loop."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_engine_floor as F
import bench_engine_overhead as B


def _burn(seconds: float) -> None:
    c0 = time.process_time()
    while time.process_time() - c0 < seconds:
        pass


def test_floor_bare_figure_is_the_bench_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    # the bench's bare figure is measured inside the parameter freezing: whatever the
    # freezing costs must not enter the floor's denominator either (it did: +4-7% on mlp13)
    case = B.mlp_case(True)
    pool = case.bare_rows(256)
    orig = B._frozen

    @contextlib.contextmanager
    def slow_frozen(model: Any) -> Iterator[None]:
        _burn(0.05)  # 50 ms of CPU outside the bench's measurement
        with orig(model):
            yield

    monkeypatch.setattr(B, "_frozen", slow_frozen)
    got = F.bare_cpu(case, pool, 256, 0, 256, 256, loop=2)
    # the bench's own figure on the same work, with the slow freezing too
    want = sum(B.bare_same_work(case, pool, 256, 0, 256, 256).cpu for _ in range(2))
    assert got < 0.05, f"floor bare {got:.4f}s includes the 50 ms spent outside the bench's clock"
    assert want < 0.05


def test_floor_feature_ablation_matches_a_loop() -> None:
    case = B.mlp_case(True)
    fl = F.Floor(case, 4096, 2048, budget=16)
    x, m = fl.x, fl.model
    with torch.no_grad():
        fx = m(x)[:, 0]
        want = torch.stack([fx - m(x * (torch.arange(fl.d) != j).to(x.dtype))[:, 0]
                            for j in range(fl.d)], 1)
    got = fl.feature_ablation()
    assert got.shape == (fl.n, fl.d)
    assert float((got - want).abs().max()) <= 1e-6
    # two chunks (a forward size smaller than the rows) give the same values
    fl2 = F.Floor(case, 128, 2048, budget=16)
    assert float((fl2.feature_ablation() - want).abs().max()) <= 1e-6
