"""Issue #9 (eng51): a component game's coalition-value blocks hold up to 4 MiB of composed rows.

A block of a component game holds only the inputs repeated per coalition and the rows' sample
ids; each forward pass reads its own slice and the hooks edit that pass's own activations. At
the engine's default 512 KiB a 13-feature MLP's neuron patching at 2,048 rows per pass ran
~3 passes per block (mlp13, 17,800 inputs: 186 blocks for 566 passes), paying the per-block
steps (composing, selecting, the finiteness check, storing) every ~3 passes: 323.5 -> 286.4 ms
CPU (median of 9 interleaved rounds) with 4 MiB blocks, values bit-identical.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import tribute
from tribute.engine import BLOCK_BYTES, Engine
from tribute.games import components as comp_mod
from tribute.games.components import ComponentGame
from tribute.models import as_model


class _Passes(nn.Module):
    """A 13-feature MLP (8 hidden neurons) that records the rows of every forward pass."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(13, 8), nn.ReLU(), nn.Linear(8, 3))
        self.passes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.passes.append(int(x.shape[0]))
        return self.net(x)


def _count_composed(monkeypatch: Any) -> list[int]:
    """The rows each block of a component game composes (filled as the game runs)."""
    composed: list[int] = []
    rows = ComponentGame._rows

    def counted(self: Any, *a: Any) -> Any:
        out = rows(self, *a)
        composed.append(int(out.inputs[0].shape[0]))
        return out

    monkeypatch.setattr(ComponentGame, "_rows", counted)
    return composed


def _patching(monkeypatch: Any, m: _Passes, x: torch.Tensor) -> tuple[Any, list[int], list[int]]:
    rows = ComponentGame._rows
    composed = _count_composed(monkeypatch)
    m.passes.clear()
    players = tribute.components(m, "net.1", unit="neuron")
    attr = tribute.explain(m, x, method="feature_ablation", players=players, target=0,
                           batch_size=2048, progress=False)
    monkeypatch.setattr(ComponentGame, "_rows", rows)
    return attr, composed, list(m.passes)


def test_component_value_blocks_exceed_the_default_block_bytes(monkeypatch):
    """1,000 inputs x 8 coalitions (each neuron left out; v(N) is the reference pass) = 8,000
    rows of 13 floats (68 composed bytes a row with the sample id): at 512 KiB a block held
    6,144 rows (3 passes of 2,048; 2 blocks), now one block holds them all; the model sees the
    same passes and the values are the same bits as with 512 KiB blocks and per-chunk blocks."""
    m = _Passes().eval()
    x = torch.randn(1000, 13)
    a, built, passes = _patching(monkeypatch, m, x)
    assert built == [8_000]
    assert passes[-4:] == [2048] * 3 + [8_000 - 3 * 2048]

    monkeypatch.setattr(comp_mod, "_BLOCK_CAP", BLOCK_BYTES)  # the engine's default blocks
    b, built_b, passes_b = _patching(monkeypatch, m, x)
    assert built_b == [6_144, 1_856]
    monkeypatch.setattr(Engine, "block_rows", lambda self, size, row_bytes, block_cap=None: size)
    c, built_c, passes_c = _patching(monkeypatch, m, x)
    assert built_c == [2048] * 3 + [1_856]
    assert passes == passes_b == passes_c
    assert a.n_rows == b.n_rows == c.n_rows and a.n_evals == b.n_evals == c.n_evals
    assert torch.equal(torch.as_tensor(a.values), torch.as_tensor(b.values))
    assert torch.equal(torch.as_tensor(a.values), torch.as_tensor(c.values))


def test_block_cap_bounds_rows_and_keeps_the_memory_share():
    e = Engine(as_model(_Passes(), "torch"), batch_size=64, max_memory=2**30)
    assert e.block_rows(64, 100) == (BLOCK_BYTES // 100) // 64 * 64
    assert e.block_rows(64, 100, 4 * 1024**2) == (4 * 1024**2 // 100) // 64 * 64
    assert e.block_rows(64, 10**7, 4 * 1024**2) == 64  # at least one chunk
    small = Engine(as_model(_Passes(), "torch"), batch_size=64, max_memory=16 * 6400)
    assert small.block_rows(64, 100, 4 * 1024**2) == 64  # the memory share still caps a block


class _WideOut(nn.Module):
    """13 features in, a ``(rows, 64, 32)`` output (8 KiB a row): outputs far bigger than rows."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.net = nn.Sequential(nn.Linear(13, 8), nn.ReLU(), nn.Linear(8, 64 * 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).reshape(-1, 64, 32)


def test_component_blocks_count_the_raw_outputs_they_keep(monkeypatch):
    """A block keeps its passes' raw outputs until it selects the values: 13-float rows with an
    8 KiB output each are 8,260 bytes a row, so a 4 MiB block holds 448 rows (7 passes of 64),
    not 61,680 (the inputs alone: all 800 rows, 6.6 MB of outputs, in one block). Values equal a
    per-chunk run's."""
    m = _WideOut().eval()
    x = torch.randn(100, 13)
    composed = _count_composed(monkeypatch)

    def run() -> Any:
        composed.clear()
        players = tribute.components(m, "net.1", unit="neuron")
        return tribute.explain(m, x, method="feature_ablation", players=players,
                               target=lambda out: out[:, 0, :2], batch_size=64, progress=False)

    a = run()
    assert max(composed) == (4 * 1024**2 // (13 * 4 + 16 + 64 * 32 * 4)) // 64 * 64 == 448
    assert composed == [448, 352]
    monkeypatch.setattr(Engine, "block_rows", lambda self, size, row_bytes, block_cap=None: size)
    b = run()
    assert max(composed) == 64
    assert torch.equal(torch.as_tensor(a.values), torch.as_tensor(b.values))
