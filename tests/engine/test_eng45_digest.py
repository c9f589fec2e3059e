"""eng45 (issue #9): ``baseline_digest`` of a scalar baseline is hashed once per (mode, shape,
dtype, scalar) and reused, giving the digest the full hash gives: checked here against a hash
written out by hand from the documented format (sha256 of the background size, each table's
``(mode, shape, dtype)`` and its bytes with ``+ 0.0``, then the equal weights)."""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.games import features as F
from tribute.games.build import build_game
from tribute.models import as_model


def _by_hand(tables: list[tuple[str, np.ndarray]], n_background: int = 1) -> str:
    """The digest of baseline tables ``(mode, array in its own dtype)``, from the format."""
    h = hashlib.sha256(repr(n_background).encode())
    for mode, a in tables:
        dtype = {np.dtype(np.float32): "torch.float32", np.dtype(np.float64): "torch.float64"}[a.dtype]
        h.update(repr((mode, tuple(a.shape), dtype)).encode())
        h.update(np.ascontiguousarray(a + a.dtype.type(0.0)).tobytes())
    h.update(np.full(n_background, 1.0 / n_background).tobytes())
    return h.hexdigest()[:16]


def _fill(value: float, d: int, dtype: Any) -> np.ndarray:
    return np.full((1, d), value, dtype=dtype)


def _game(model: nn.Module, inputs: Any, **kw: Any) -> F.FeatureGame:
    game = build_game(as_model(model, "torch"), inputs, **kw)
    assert isinstance(game, F.FeatureGame)
    return game


def _model(d: int = 5, k: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, 4), nn.ReLU(), nn.Linear(4, k))


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many tables the full hash read (``_digest_bytes`` calls)."""
    calls = [0]
    real = F._digest_bytes

    def counting(mode: str, base: torch.Tensor) -> bytes:
        calls[0] += 1
        return real(mode, base)

    monkeypatch.setattr(F, "_digest_bytes", counting)
    return calls


def test_a_repeated_scalar_baseline_is_hashed_once_with_the_same_digest(counted: list[int]) -> None:
    m, x = _model(), torch.randn(6, 5)
    first = tribute.explain(m, x, method="feature_ablation", target=1, baseline=0.4375)
    read = counted[0]
    second = tribute.explain(m, x * 2, method="feature_ablation", target=0, baseline=0.4375)
    assert read == 1 and counted[0] == read  # the second call read no table
    truth = _by_hand([("single", _fill(0.4375, 5, np.float32))])
    assert first.params["baseline_digest"] == second.params["baseline_digest"] == truth


@pytest.mark.parametrize("value", [0.0, -0.0, 1.0, 0.1, -2.5, 3, 2**60, 1e-30,
                                   np.float32(0.1), np.float64(0.1), np.int64(2), np.float16(0.1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scalar_digests_equal_the_hash_by_hand(value: Any, dtype: Any) -> None:
    m = _model().to(torch.float64 if dtype is np.float64 else torch.float32)
    x = torch.randn(4, 5, dtype=torch.float64 if dtype is np.float64 else torch.float32)
    truth = _by_hand([("single", _fill(float(value), 5, dtype))])
    for _ in range(2):  # the full hash, then (a warm key) the remembered one
        game = _game(m, x, target=0, baseline=value)
        assert game.baseline_digest() == truth


def test_a_table_written_after_construction_is_hashed_again() -> None:
    m, x = _model(), torch.randn(4, 5)
    game = _game(m, x, target=0, baseline=0.75)
    assert game.baseline_digest() == _by_hand([("single", _fill(0.75, 5, np.float32))])
    game.inputs[0].base.add_(1.0)  # the same tensor, its version counter moved
    assert game.baseline_digest() == _by_hand([("single", _fill(1.75, 5, np.float32))])
    other = _game(m, x, target=0, baseline=0.75)
    other.inputs[0].base = torch.full((1, 5), -3.0)  # another tensor in its place
    assert other.baseline_digest() == _by_hand([("single", _fill(-3.0, 5, np.float32))])


def test_the_digest_follows_the_model_dtype_and_the_input_shape() -> None:
    m, x = _model(), torch.randn(4, 5)
    a = tribute.explain(m, x, method="feature_ablation", target=0, baseline=0.5)
    m.double()  # the user changes the model between calls: tables are float64 now
    b = tribute.explain(m, x, method="feature_ablation", target=0, baseline=0.5)
    m7 = _model(d=7)
    c = tribute.explain(m7, torch.randn(4, 7), method="feature_ablation", target=0, baseline=0.5)
    assert a.params["baseline_digest"] == _by_hand([("single", _fill(0.5, 5, np.float32))])
    assert b.params["baseline_digest"] == _by_hand([("single", _fill(0.5, 5, np.float64))])
    assert c.params["baseline_digest"] == _by_hand([("single", _fill(0.5, 7, np.float32))])
    assert len({a.params["baseline_digest"], b.params["baseline_digest"],
                c.params["baseline_digest"]}) == 3


def test_two_inputs_and_other_baselines_are_hashed_in_full(counted: list[int]) -> None:
    m = _model(d=5)

    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = m

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.inner(torch.cat([a, b], dim=1))

    two, xa, xb = Two(), torch.randn(4, 2), torch.randn(4, 3)
    for _ in range(2):
        g = _game(two, (xa, xb), target=0, baseline=(0.5, 1.5))
        assert g.baseline_digest() == _by_hand([("single", _fill(0.5, 2, np.float32)),
                                                ("single", _fill(1.5, 3, np.float32))])
    row = np.arange(5, dtype=np.float32)
    bg = np.arange(15, dtype=np.float32).reshape(3, 5)
    counted[0] = 0
    for _ in range(2):  # a row, a background set: their bytes are read every time
        g = _game(m, torch.randn(4, 5), target=0, baseline=torch.from_numpy(row))
        assert g.baseline_digest() == _by_hand([("single", row[None])])
        g = _game(m, torch.randn(4, 5), target=0,
                       baseline=tribute.Background(torch.from_numpy(bg)))
        assert g.baseline_digest() == _by_hand([("background", bg)], n_background=3)
    assert counted[0] == 4


def test_inference_mode_and_nan_baselines_still_hash() -> None:
    m, x = _model(), torch.randn(4, 5)
    truth = _by_hand([("single", _fill(0.25, 5, np.float32))])
    with torch.inference_mode():  # the table is an inference tensor (no version counter)
        attr = tribute.explain(m, x, method="feature_ablation", target=0, baseline=0.25)
    assert attr.params["baseline_digest"] == truth
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = _game(m, x, target=0, baseline=float("nan"), allow_missing=True)
    assert g.baseline_digest() == _by_hand([("single", _fill(float("nan"), 5, np.float32))])
