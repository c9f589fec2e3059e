"""Issue #9: rows composed per block of chunks, the tuner's tie rule and settling, lookups."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import tribute
from tribute.engine import BLOCK_BYTES, BatchTuner, Engine, Rows, clear_tuners
from tribute.errors import ModelOutputError
from tribute.models import as_model


class _Counting(nn.Module):
    """A small MLP that records the rows of every forward pass."""

    def __init__(self, hidden: int = 8, n_out: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(5, hidden), nn.ReLU(), nn.Linear(hidden, n_out))
        self.passes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.passes.append(int(x.shape[0]))
        return self.net(x)


def _run(engine: Engine, n: int, blocks: bool, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    out = torch.zeros(n, 1, dtype=torch.float64)
    built: list[tuple[int, int]] = []

    def build(a: int, b: int) -> Rows:
        built.append((a, b))
        i = torch.arange(a, b)
        return Rows(inputs=(x[i % x.shape[0]] * (1 + i[:, None] % 7),), sample=i % x.shape[0])

    def sink(a: int, b: int, vals: torch.Tensor, grads: Any) -> None:
        out[a:b] = vals.double()

    engine.run(n, build, sink, row_bytes=5 * 4, blocks=blocks,
               select=lambda o, r: o[:, :1])
    return out, built


def test_blocks_send_the_same_chunks_and_give_the_same_values():
    m = _Counting().eval()
    x = torch.randn(4, 5)
    e1 = Engine(as_model(m, "torch"), batch_size=7)
    v1, built1 = _run(e1, 100, False, x)
    p1 = list(m.passes)
    m.passes.clear()
    e2 = Engine(as_model(m, "torch"), batch_size=7)
    v2, built2 = _run(e2, 100, True, x)
    assert m.passes == p1 == [7] * 14 + [2]  # the model sees the same chunks
    assert torch.equal(v1, v2)
    assert len(built1) == 15 and built2 == [(0, 100)]  # one block: composed and stored once
    assert e1.n_rows == e2.n_rows == 100 and e1.n_passes == e2.n_passes == 15


def test_block_size_is_a_whole_number_of_chunks_under_the_byte_and_memory_caps():
    e = Engine(as_model(_Counting(), "torch"), batch_size=64, max_memory=2**30)
    assert e.block_rows(64, 100) == (BLOCK_BYTES // 100) // 64 * 64
    assert e.block_rows(64, 10**7) == 64  # rows bigger than a block: one chunk per block
    small = Engine(as_model(_Counting(), "torch"), batch_size=64, max_memory=16 * 6400)
    assert small.block_rows(64, 100) == 64  # 1/16 of the cap holds one chunk


def test_a_nan_in_a_later_chunk_of_a_block_names_its_row():
    class Bad(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.where(x[:, :1] == 33.0, torch.nan, x[:, :1])

    e = Engine(as_model(Bad(), "torch"), batch_size=8)

    def build(a: int, b: int) -> Rows:
        i = torch.arange(a, b, dtype=torch.float32)
        return Rows(inputs=(i[:, None].expand(-1, 2).clone(),), sample=torch.zeros(b - a, dtype=torch.long))

    with pytest.raises(ModelOutputError, match="at row 33"):
        e.run(64, build, lambda *a: None, row_bytes=8, blocks=True, select=lambda o, r: o)


def test_blocks_refuse_rows_with_extras():
    e = Engine(as_model(_Counting(), "torch"), batch_size=4)

    def build(a: int, b: int) -> Rows:
        return Rows(inputs=(torch.zeros(b - a, 5),), sample=torch.zeros(b - a, dtype=torch.long),
                    extra=(torch.zeros(b - a),))

    with pytest.raises(RuntimeError, match="blocks=True"):
        e.run(8, build, lambda *a: None, row_bytes=20, blocks=True, select=lambda o, r: o)


@pytest.mark.parametrize("method", ["feature_ablation", "kernel_shap", "lime", "occlusion"])
@pytest.mark.parametrize("baseline", ["zero", "background"])
def test_feature_values_do_not_depend_on_the_block_size(method, baseline, monkeypatch):
    m = _Counting().eval()
    x = torch.randn(6, 5)
    kw: dict[str, Any] = {"budget": 40} if method in ("kernel_shap", "lime") else {}
    if method == "occlusion":
        kw = {"window": (1,), "stride": (1,)}
    if baseline == "background":
        kw["baseline"] = torch.randn(3, 5)

    def run() -> Any:
        m.passes.clear()
        return tribute.explain(m, x, method=method, target=0, batch_size=7, progress=False, **kw)

    a = run()
    passes = list(m.passes)
    monkeypatch.setattr(Engine, "block_rows", lambda self, size, row_bytes, block_cap=None: size)  # per chunk
    b = run()
    assert m.passes == passes and a.n_rows == b.n_rows
    assert torch.equal(torch.as_tensor(a.values), torch.as_tensor(b.values))


def test_settle_ends_a_search_the_calls_cannot_continue_but_not_from_a_small_run():
    t = BatchTuner(cap=8192, skip=False)
    t.record(16, 16, 1.0)  # warm-up
    for s in (16, 32, 64):
        assert t.propose() == s
        t.record(s, s, s / (10.0 * s))  # growing throughput
    assert t.propose() == 128 and not t.done
    t.settle(20)  # a small run (e.g. the reference pass) could not time 64 either: no verdict
    assert not t.done
    t.settle(60)  # a run of 60 rows could time 64 but can never send half of 128
    assert t.done and t.best == 64
    t.resume(50)  # another small run: the settled size stands
    assert t.done and t.propose() == 64
    t.resume(64)  # a run that can send half of 128: the search goes on where it stopped
    assert not t.done and t.propose() == 128


def test_engine_tuner_lookups_follow_clear_tuners():
    m = _Counting().eval()
    e = Engine(as_model(m, "torch"))
    t1 = e.tuner(20, False)
    assert e.tuner(20, False) is t1 and t1.current
    clear_tuners()
    assert not t1.current
    t2 = e.tuner(20, False)
    assert t2 is not t1 and t2.current


def test_session_restores_flags_it_changed_only():
    m = _Counting()
    m.train()
    m.net[0].weight.requires_grad_(False)
    ad = as_model(m, "torch")
    with ad.session():
        assert not m.training and not m.net[0].training
        assert not any(p.requires_grad for p in m.parameters())
    assert m.training and m.net[2].training
    assert not m.net[0].weight.requires_grad and m.net[0].bias.requires_grad


def _times(per_pass: float, per_row: float, peak: int | None = None, past: float = 2.0):
    """Seconds of a pass of ``s`` rows: a cost per pass plus one per row (``past`` times
    more past ``peak``)."""
    return lambda s: per_pass + s * per_row * (past if peak is not None and s > peak else 1.0)


def test_sizes_dominated_by_the_cost_per_pass_are_skipped():
    # 60 us per pass, 0.17 us per row (a 13-feature MLP): 16 and 32 rows are nearly all cost per
    # pass; 9 c / r = 3,176 rows, so the search resumes at 2,048 (five doublings on from 64)
    t = BatchTuner(cap=8192)
    cost = _times(60e-6, 0.17e-6, peak=2048)
    sizes = []
    for _ in range(24):  # growth, then the duel (2,048 vs 4,096, then 1,024 vs 2,048)
        s = t.propose()
        sizes.append(s)
        t.record(s, s, cost(s))
    assert sizes[:5] == [16, 16, 32, 2048, 4096]
    assert t.best == 2048 and 64 not in t.rates


def test_a_skip_past_the_peak_times_the_skipped_sizes():
    t = BatchTuner(cap=8192, confirm_seconds=10.0)
    cost = _times(60e-6, 0.17e-6, peak=128, past=20.0)  # throughput collapses past 128 rows
    sizes = []
    for _ in range(30):
        s = t.propose()
        sizes.append(s)
        t.record(s, s, cost(s))
    assert sizes[3] == 2048 and 64 in t.rates and 128 in t.rates
    assert t.best == 128


def test_costly_rows_are_never_skipped():
    t = BatchTuner(cap=8192)
    cost = _times(1e-4, 1e-3)  # mostly cost per row (a big CNN): every size is timed
    sizes = [t.propose()]
    t.record(16, 16, cost(16))
    for _ in range(4):
        s = t.propose()
        sizes.append(s)
        t.record(s, s, cost(s))
    assert sizes == [16, 16, 32, 64, 128]


def test_noisy_first_sizes_are_timed_again_before_the_fit():
    t = BatchTuner(cap=8192)
    t.record(16, 16, 1.0)  # warm-up
    t.record(16, 16, 0.7e-3)
    t.record(32, 32, 0.5e-3)  # 32 rows faster per pass than 16: 16 slowed down, or all per pass
    assert t.propose() == 16  # 16 is timed once more
    t.record(16, 16, 0.25e-3)  # best of two: 0.25 ms and 0.5 ms, all cost per row: no skip
    assert t.propose() == 64 and t.rates[16] == 16 / 0.25e-3


def test_a_cost_per_pass_seen_twice_skips_as_far_as_allowed():
    # a numpy model: ~1.5 ms per call whatever the rows; 16 is timed twice, the fit finds no
    # cost per row, and the search goes on five doublings on (2,048), not at 64
    t = BatchTuner(cap=8192)
    t.record(16, 16, 1.0)  # warm-up
    for s, sec in ((16, 1.6e-3), (32, 1.5e-3), (16, 1.7e-3)):
        assert t.propose() == s
        t.record(s, s, sec)
    sizes = []
    for _ in range(9):
        s = t.propose()
        sizes.append(s)
        t.record(s, s, 1.5e-3 + s * 0.8e-6)
    # then 4,096 and 8,192 (faster still), and the duel of 8,192 with 4,096
    assert sizes[:3] == [2048, 4096, 8192] and sizes[3:7] == [4096, 8192, 4096, 8192]
    assert t.best == 8192


def test_costly_passes_that_look_flat_are_not_timed_again_nor_skipped():
    t = BatchTuner(cap=8192)
    t.record(16, 16, 1.0)  # warm-up
    t.record(16, 16, 0.20)
    t.record(32, 32, 0.19)  # 190 ms: timing again costs too much; no fit, no skip
    assert t.propose() == 64


def test_chunks_sliced_from_a_block_start_on_an_aligned_address():
    """MKL on AVX-512 rounds a chunk that starts off a 64-byte boundary differently (1 ulp): the
    block path copies such a chunk, so its values equal the rows composed on their own."""
    from tribute.engine.core import _ALIGN, _aligned

    buf = torch.randn(100, 5)
    for a in range(0, 100, 7):
        view = buf[a:a + 7]
        part = _aligned(view)
        assert part.data_ptr() % _ALIGN == 0 and torch.equal(part, view)
        assert (part is view) == (view.data_ptr() % _ALIGN == 0)
    net = _Counting().eval().net
    with torch.inference_mode():
        blocked = torch.cat([net(_aligned(buf[a:a + 7])) for a in range(0, 100, 7)])
        alone = torch.cat([net(buf[a:a + 7].clone()) for a in range(0, 100, 7)])
    assert torch.equal(blocked, alone)


class _CountingCNN(nn.Module):
    """A small CNN that records the rows of every forward pass (channel players)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(2, 5, 3, padding=1)
        self.head = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(5 * 4 * 4, 3))
        self.passes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.passes.append(int(x.shape[0]))
        return self.head(self.conv(x))


@pytest.mark.parametrize("ablation", ["zero", "mean", "patch", "resample"])
@pytest.mark.parametrize("method", ["feature_ablation", "kernel_shap"])
@pytest.mark.parametrize("cnn", [False, True])
def test_component_values_do_not_depend_on_the_block_size(ablation, method, cnn, monkeypatch):
    from tribute.games.components import ComponentGame
    from tribute.games.sites import Ablation

    m: _Counting | _CountingCNN = _CountingCNN().eval() if cnn else _Counting().eval()
    x = torch.randn(6, 2, 4, 4) if cnn else torch.randn(6, 5)
    site, unit = ("conv", "channel") if cnn else ("net.1", "neuron")
    abl: Any = ablation
    if ablation == "patch":
        abl = Ablation("patch", counterfactual=torch.randn_like(x))
    elif ablation == "resample":
        abl = Ablation("resample", n_resample=3, reference=torch.randn(5, *x.shape[1:]))
    kw: dict[str, Any] = {"budget": 40} if method == "kernel_shap" else {}
    composed: list[int] = []
    rows = ComponentGame._rows

    def counted(self: Any, *a: Any) -> Any:
        out = rows(self, *a)
        composed.append(out.inputs[0].shape[0])
        return out

    monkeypatch.setattr(ComponentGame, "_rows", counted)

    def run() -> Any:
        m.passes.clear()
        composed.clear()
        players = tribute.components(m, site, unit=unit, ablation=abl)
        return tribute.explain(m, x, method=method, players=players, target=0, batch_size=7,
                               progress=False, **kw)

    a = run()
    passes, built = list(m.passes), list(composed)
    assert max(built) > 7  # block mode: rows of several chunks composed at once
    monkeypatch.setattr(Engine, "block_rows", lambda self, size, row_bytes, block_cap=None: size)  # per chunk
    b = run()
    assert max(composed) <= 7 and len(composed) > len(built)
    assert m.passes == passes and a.n_rows == b.n_rows and a.n_evals == b.n_evals
    assert torch.equal(torch.as_tensor(a.values), torch.as_tensor(b.values))


@pytest.mark.parametrize("blocks", [False, True])
def test_chunk_callback_sees_the_rows_of_every_forward_pass(blocks):
    m = _Counting().eval()
    seen: list[tuple[int, int]] = []
    passes: list[tuple[int, int, int]] = []
    m.register_forward_pre_hook(lambda mod, a: passes.append(seen[-1] + (int(a[0].shape[0]),)))

    def build(a: int, b: int) -> Rows:
        return Rows(inputs=(torch.randn(b - a, 5),), sample=torch.zeros(b - a, dtype=torch.long))

    e = Engine(as_model(m, "torch"), batch_size=7)
    e.run(30, build, lambda *a: None, row_bytes=20, blocks=blocks, select=lambda o, r: o,
          chunk=lambda a, b: seen.append((a, b)))
    assert seen == [(a, min(a + 7, 30)) for a in range(0, 30, 7)]
    assert [(a, b) for a, b, _ in passes] == seen and all(n == b - a for a, b, n in passes)


def _wide() -> _Counting:
    """5 inputs, 600 hidden neurons: activations far bigger than the rows (component games count
    them in ``row_bytes``)."""
    return _Counting(hidden=600, n_out=2, seed=2)


def test_component_blocks_hold_several_passes_when_activations_are_big(monkeypatch):
    """A component game's blocks are sized by the rows it composes (inputs, sample ids), not
    by its ``row_bytes`` (which counts the hooked activations: 600 neurons here, ~9.6 KB per
    row, one 64-row pass per 512 KiB block): the per-block work is paid once for several
    passes, and the masks the hooks read are a view per pass of a tile that covers one pass
    (plus a period), not a block. Values equal a per-chunk run's."""
    from tribute.games import _rows
    from tribute.games.components import ComponentGame

    m = _wide().eval()
    x = torch.randn(40, 5)
    composed: list[int] = []
    tiles: list[int] = []
    rows, periodic = ComponentGame._rows, _rows.PeriodicRows.__call__

    def counted(self: Any, *a: Any) -> Any:
        out = rows(self, *a)
        composed.append(out.inputs[0].shape[0])
        return out

    def tile(self: Any, start: int, stop: int) -> torch.Tensor:
        out = periodic(self, start, stop)
        assert self._tile is not None
        tiles.append(int(self._tile.shape[0]))
        return out

    monkeypatch.setattr(ComponentGame, "_rows", counted)
    monkeypatch.setattr(_rows.PeriodicRows, "__call__", tile)

    def run() -> Any:
        m.passes.clear()
        composed.clear()
        tiles.clear()
        players = tribute.components(m, "net.1", unit="neuron")
        return tribute.explain(m, x, method="feature_ablation", players=players, target=0,
                               batch_size=64, progress=False)

    a = run()
    k = 600  # coalitions of the value call: every neuron left out once
    assert max(composed) >= 4 * 64, composed  # several passes per block
    # the masks' tile: whole periods covering one pass at any phase (not a block)
    assert tiles and max(tiles) <= 2 * k + 64, max(tiles)
    passes = list(m.passes)
    monkeypatch.setattr(Engine, "block_rows", lambda self, size, row_bytes, block_cap=None: size)  # per chunk
    b = run()
    assert max(composed) <= 64
    assert m.passes == passes and a.n_rows == b.n_rows and a.n_evals == b.n_evals
    assert torch.equal(torch.as_tensor(a.values), torch.as_tensor(b.values))


def test_a_function_of_one_row_is_told_to_take_a_batch():
    """A model written for one row returns the wrong number of rows for a batch: the error
    says that tribute calls models on batches and how to wrap such a function."""
    import numpy as np

    def one_row(r):  # r[0] of a batch is its first row: 4 values for 3 rows
        return r[0] * 2.0 + r[1]

    with pytest.raises(ModelOutputError, match=r"shape \(4,\) for a batch of 3 rows.*"
                                              r"np.stack\(\[f\(row\) for row in X\]\)"):
        tribute.explain(one_row, np.ones((3, 4)), method="feature_ablation", baseline=0.0)
