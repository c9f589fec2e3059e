"""Issue #9 (eng52): gradient runs composed per block of passes (``Engine.run(grad=True,
blocks=True)``): the same passes, values and gradients as one build per pass, each pass stored
once (also when a pass fails and its rows are sent again), and integrated gradients using it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import tribute
from tribute.engine import Engine, Rows
from tribute.games.features import FeatureGame
from tribute.models import as_model


class _Net(nn.Module):
    """A small MLP that records the rows of every pass; ``oom_at`` (pass numbers) raise the
    allocator's out-of-memory error once each before the model runs; ``scale`` (per row,
    optional) multiplies the output."""

    def __init__(self, oom_at: tuple[int, ...] = ()) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))
        self.passes: list[int] = []
        self.oom_at = set(oom_at)

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        self.passes.append(int(x.shape[0]))
        if len(self.passes) in self.oom_at:
            self.oom_at.discard(len(self.passes))
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: out of memory")
        out = self.net(x)
        return out if scale is None else out * scale[:, None]


def _grad_run(engine: Engine, n: int, blocks: bool, x: torch.Tensor,
              ) -> tuple[list[tuple[int, int]], list[tuple[int, int]], torch.Tensor, torch.Tensor]:
    """Rows ``x[i % len(x)] * (1 + i % 7)``; the leaves are the rows themselves (per pass in a
    plain run, as a feature game's direct path makes them). Returns the ranges built, the
    ranges sunk, and per row the values and gradients (float64)."""
    vals = torch.zeros(n, 2, dtype=torch.float64)
    grads = torch.zeros(n, 2, 5, dtype=torch.float64)
    built: list[tuple[int, int]] = []
    sunk: list[tuple[int, int]] = []

    def build(a: int, b: int) -> Rows:
        built.append((a, b))
        i = torch.arange(a, b)
        with torch.no_grad():
            rows = x[i % x.shape[0]] * (1 + i[:, None] % 7)
        if blocks:
            return Rows(inputs=(rows,), sample=i % x.shape[0])
        leaf = rows.requires_grad_(True)
        return Rows(inputs=(leaf.clone(),), sample=i % x.shape[0], leaves=[leaf])

    def sink(a: int, b: int, v: torch.Tensor, g: Any) -> None:
        sunk.append((a, b))
        vals[a:b] += v.double()
        grads[a:b] += g[0].double()

    engine.run(n, build, sink, row_bytes=5 * 4, grad=True, blocks=blocks,
               select=lambda o, r: o[:, :2])
    return built, sunk, vals, grads


def test_grad_blocks_compose_once_and_keep_every_pass():
    x = torch.randn(4, 5)
    m = _Net().eval()
    e1 = Engine(as_model(m, "torch"), batch_size=7)
    built1, sunk1, v1, g1 = _grad_run(e1, 100, False, x)
    p1, m.passes = list(m.passes), []
    e2 = Engine(as_model(m, "torch"), batch_size=7)
    built2, sunk2, v2, g2 = _grad_run(e2, 100, True, x)
    assert m.passes == p1 == [7] * 14 + [2]  # the model sees the same passes
    assert len(built1) == 15 and built2 == [(0, 100)]  # one block, composed once
    assert sunk2 == sunk1 == built1  # the sink still gets every pass on its own, in order
    assert torch.equal(v1, v2) and torch.equal(g1, g2)  # the same values and gradients
    assert e1.n_rows == e2.n_rows == 100 and e1.n_passes == e2.n_passes == 15


def test_grad_block_pass_out_of_memory_stores_each_pass_once():
    """A pass that runs out of memory inside a block of several passes: the passes before it
    are stored already, so the loop sends only the rows from the failed pass on (smaller);
    sending the block again would add its first passes' gradients twice."""
    x = torch.randn(4, 5)
    clean = _Net().eval()
    e0 = Engine(as_model(clean, "torch"), batch_size=None)
    e0.tuner(20, True).best = 8  # tuned already: blocks of several passes of 8 rows
    _, sunk0, v0, g0 = _grad_run(e0, 100, True, x)
    m = _Net(oom_at=(3,)).eval()  # the third pass, the third of the first block
    e = Engine(as_model(m, "torch"), batch_size=None)
    e.tuner(20, True).best = 8
    _, sunk, v, g = _grad_run(e, 100, True, x)
    assert m.passes[:4] == [8, 8, 8, 4]  # the failed pass's rows sent again, smaller
    covered = sorted(r for a, b in sunk for r in range(a, b))
    assert covered == list(range(100))  # every row stored exactly once
    assert sunk[:2] == [(0, 8), (8, 16)] and sunk[2] == (16, 20)
    assert e.n_rows == 100 + 8  # the failed pass's rows were counted too
    torch.testing.assert_close(v, v0, rtol=1e-6, atol=1e-7)  # not twice for the first passes
    torch.testing.assert_close(g, g0, rtol=1e-6, atol=1e-7)
    assert sunk0 == [(a, min(a + 8, 100)) for a in range(0, 100, 8)]


def test_integrated_gradients_compose_per_block_and_match_per_pass_rows(monkeypatch):
    """Integrated gradients on a feature game without forward arguments composes rows per
    block; with a per-row forward argument (here a scale of exactly 1, which changes no bit of
    the outputs or gradients) it builds every pass on its own: the same passes, the same bits."""
    calls = {"shared": 0, "tiled": 0}
    shared, tiled = FeatureGame._compose_shared, FeatureGame._compose_tiled

    def count_shared(self: FeatureGame, *a: Any, **k: Any) -> Any:
        calls["shared"] += 1
        return shared(self, *a, **k)

    def count_tiled(self: FeatureGame, *a: Any, **k: Any) -> Any:
        calls["tiled"] += 1
        return tiled(self, *a, **k)

    monkeypatch.setattr(FeatureGame, "_compose_shared", count_shared)
    monkeypatch.setattr(FeatureGame, "_compose_tiled", count_tiled)
    x = torch.randn(37, 5)
    m = _Net().eval()
    a = tribute.explain(m, x, method="integrated_gradients", steps=20, target=1, batch_size=64,
                        progress=False)
    blocked = (calls["shared"], calls["tiled"])
    passes_a, m.passes = list(m.passes), []
    calls.update(shared=0, tiled=0)
    b = tribute.explain(m, x, method="integrated_gradients", steps=20, target=1, batch_size=64,
                        progress=False, forward_kwargs={"scale": torch.ones(37)})
    assert blocked == (1, 0)  # 740 rows, 12 passes: one block, composed once
    assert calls["tiled"] == 12  # per pass (v(empty) takes the value path there: shared 1)
    assert m.passes == passes_a and passes_a.count(64) == 11
    assert torch.equal(torch.as_tensor(a.values), torch.as_tensor(b.values))
    assert a.n_evals == b.n_evals and a.n_rows == b.n_rows
