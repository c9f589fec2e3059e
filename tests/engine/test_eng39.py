"""eng39 (issue #9): stages taken off the per-call path on cheap models.

- ``Game.empty()`` sends the empty coalition straight to ``_evaluate`` (counted as ``value``
  counts it) instead of through ``value``, whose ``_keep_empty`` found the empty coalition,
  cloned its values and was then overwritten;
- ``TorchModel.session`` reads each module's own buffer dict (not ``named_buffers``'
  generators) and names the modules only when a buffer changed.

Truths come from closed forms (a linear model's value at the baseline) and from the rows a
counting wrapper saw, not from tribute.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import tribute
from tribute.games.base import Game
from tribute.games.build import build_game
from tribute.models.adapters import TorchModel, as_model
from tribute_testing import RowCounter


def _counting(w: torch.Tensor, c: torch.Tensor) -> RowCounter:
    """A float64 affine map ``W x + c`` that counts the rows it sees."""
    lin = torch.nn.Linear(w.shape[1], w.shape[0], dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(c)
    return RowCounter(lin)


def _affine() -> tuple[RowCounter, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(39)
    w = torch.randn(3, 5, generator=g, dtype=torch.float64)
    c = torch.randn(3, generator=g, dtype=torch.float64)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)
    return _counting(w, c), w, c, x


@pytest.mark.parametrize("baseline", [0.0, 0.25, "per_sample", "background"])
def test_empty_is_one_counted_evaluation_with_the_closed_form_value(baseline: object) -> None:
    model, w, c, x = _affine()
    g = torch.Generator().manual_seed(5)
    if baseline == "per_sample":
        base: object = tribute.PerSample(torch.randn(7, 5, generator=g, dtype=torch.float64))
        want = base.data @ w.T + c  # type: ignore[attr-defined]
        m_bg = 1
    elif baseline == "background":
        bg = torch.randn(4, 5, generator=g, dtype=torch.float64)
        base, want, m_bg = tribute.Background(bg), (bg @ w.T + c).mean(0).expand(7, 3), 4
    else:
        base = baseline
        want = (torch.full((5,), float(baseline), dtype=torch.float64) @ w.T + c).expand(7, 3)  # type: ignore[arg-type]
        m_bg = 1
    adapter = as_model(model, "torch", None)
    with adapter.session():
        game = build_game(adapter, x, target=[0, 1, 2], baseline=base)
        evals, rows, seen = game.n_evals, game.engine.n_rows, model.rows
        kept: list[int] = []
        orig = Game._keep_empty

        def spy(self: Game, masks: torch.Tensor, vals: torch.Tensor) -> None:
            kept.append(int(masks.shape[-2]))
            orig(self, masks, vals)

        Game._keep_empty = spy  # type: ignore[method-assign]
        try:
            v0 = game.empty()
            again = game.empty()  # cached: no second evaluation
        finally:
            Game._keep_empty = orig  # type: ignore[method-assign]
    assert kept == []  # before eng39: [1] (value's _keep_empty cloned what empty() then replaced)
    assert again is v0
    assert game.n_evals == evals + 1
    assert game.engine.n_rows - rows == 7 * m_bg == model.rows - seen
    assert v0.dtype == torch.float64 and tuple(v0.shape) == (7, 3)
    torch.testing.assert_close(v0, want.double(), rtol=0, atol=1e-13)


def test_empty_equals_the_value_of_the_empty_coalition_bit_for_bit() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.GELU(), torch.nn.Flatten(),
                                torch.nn.Linear(3 * 4 * 4, 4))
    x = torch.randn(5, 2, 6, 6)
    adapter = as_model(model, "torch", None)
    with adapter.session():
        a = build_game(adapter, x, target=None, baseline=0.3, batch_size=4)
        b = build_game(adapter, x, target=None, baseline=0.3, batch_size=4)
        via_value = a.value(torch.zeros(1, a.n_players))[:, 0]
        direct = b.empty()
    assert via_value.numpy().tobytes() == direct.numpy().tobytes()
    assert a.n_evals == b.n_evals and a.engine.n_rows == b.engine.n_rows


def test_integrated_gradients_rows_and_base_values_on_an_affine_model() -> None:
    # IG's budget is steps + 2 (v(N) and v(empty)): the model sees exactly n_evals rows per input
    model, w, c, x = _affine()
    attr = tribute.explain(model, x, "integrated_gradients", target=1, baseline=0.5, steps=9,
                           progress=False)
    assert attr.n_evals == 11
    assert attr.n_rows == model.rows == 11 * 7
    assert attr.base_values is not None
    want = (torch.full((5,), 0.5, dtype=torch.float64) @ w[1] + c[1]).item()
    assert abs(attr.base_values - want).max() < 1e-13
    # completeness on an affine model: the credits are (x - b) * w exactly up to rounding
    phi = torch.as_tensor(attr.values)
    torch.testing.assert_close(phi, (x - 0.5) * w[1], rtol=0, atol=1e-13)


class _Buffers(torch.nn.Module):
    """A module whose forward writes a buffer registered under two names (one tensor)."""

    def __init__(self, write: bool) -> None:
        super().__init__()
        self.inner = torch.nn.Linear(3, 2)
        count = torch.zeros(())
        self.inner.register_buffer("calls", count)
        self.inner.register_buffer("alias", count)  # the same tensor again: listed once
        self.inner.register_buffer("nothing", None)
        self.register_buffer("scale", torch.ones(()))
        self.write = write

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.write:
            self.inner.get_buffer("calls").add_(1)
        return self.inner(x) * self.scale


def test_session_warns_for_a_written_buffer_once_by_its_first_name() -> None:
    m = _Buffers(write=True)
    adapter = TorchModel(m)
    with pytest.warns(UserWarning) as rec, adapter.session():
        m(torch.zeros(2, 3))
    msgs = [str(r.message) for r in rec if "changed its buffer" in str(r.message)]
    assert len(msgs) == 1
    assert "'inner.calls'" in msgs[0] and "alias" not in msgs[0] and "scale" not in msgs[0]


def test_session_names_modules_only_when_a_buffer_changed() -> None:
    m = _Buffers(write=False)
    calls: list[int] = []
    walk = m.named_modules

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return walk(*args, **kwargs)  # type: ignore[arg-type]

    m.named_modules = counting  # type: ignore[method-assign]
    adapter = TorchModel(m)
    calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with adapter.session():
            m(torch.zeros(2, 3))
    # one walk to open the session (modules()); before eng39 a second one at its close
    assert len(calls) == 1


def test_session_still_restores_the_model_after_an_exception() -> None:
    m = _Buffers(write=False)
    m.train()
    flags = {n: p.requires_grad for n, p in m.named_parameters()}
    adapter = TorchModel(m)
    with pytest.raises(RuntimeError, match="boom"), adapter.session():
        assert not m.training
        m.inner.register_forward_hook(lambda *a: None)
        raise RuntimeError("boom")
    assert m.training and m.inner.training
    assert {n: p.requires_grad for n, p in m.named_parameters()} == flags
    assert not m.inner._forward_hooks


class _Two(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(4, 2, dtype=torch.float64)
        self.b = torch.nn.Linear(6, 2, dtype=torch.float64)

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.a(u) + self.b(v.flatten(1)))


class _SignOfZero(torch.nn.Module):
    """Reads the sign of a zero: ``atan2(+0, -1) = pi``, ``atan2(-0, -1) = -pi``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.atan2(x, -torch.ones_like(x)).sum(1), x.sum(1)], 1)


def _settings() -> list[tuple[str, torch.nn.Module, object, dict[str, object], bool]]:
    torch.manual_seed(3)
    g = torch.Generator().manual_seed(3)
    mlp = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.GELU(), torch.nn.Linear(8, 3))
    x = torch.randn(9, 6, generator=g)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.GELU(), torch.nn.Flatten(),
                              torch.nn.Linear(3 * 4 * 4, 4))
    xi = torch.randn(5, 2, 6, 6, generator=g)
    u = torch.randn(6, 4, generator=g, dtype=torch.float64)
    v = torch.randn(6, 3, 2, generator=g, dtype=torch.float64)
    xs = torch.tensor([[0.5, -0.0, 0.0, 2.0], [-1.0, 0.0, -0.0, 0.25]], dtype=torch.float64)
    return [  # (name, model, inputs, build settings, takes the one-lerp route)
        ("float32 mlp, scalar", mlp, x, {"baseline": 0.7}, True),
        ("per sample", mlp, x, {"baseline": tribute.PerSample(torch.randn(9, 6, generator=g))}, True),
        ("column groups", mlp, x, {"baseline": -1.5, "groups": torch.tensor([0, 0, 1, 2, 2, 1])}, True),
        ("cnn patches", cnn, xi, {"baseline": 0.2, "groups": tribute.patches(3), "batch_size": 3}, True),
        ("two inputs", _Two(), (u, v), {"baseline": (0.1, -0.2)}, True),
        ("-0.0 baseline", _SignOfZero(), xs, {"baseline": -0.0}, True),
        ("-0.0 per sample", _SignOfZero(), xs, {"baseline": tribute.PerSample(-0.0 * xs)}, True),
        ("background", mlp, x, {"baseline": tribute.Background(torch.randn(3, 6, generator=g))}, False),
        ("forward kwargs", _Two(), u, {"baseline": 0.0, "forward_args": (v,)}, False),
    ]


@pytest.mark.parametrize("case", range(9))
def test_empty_rows_by_one_lerp_are_the_coalition_rows_bit_for_bit(case: int) -> None:
    name, model, x, settings, lean = _settings()[case]
    adapter = as_model(model, "torch", None)
    composed: list[int] = []
    from tribute.games.features import FeatureGame

    orig = FeatureGame._evaluate

    def spy(self: FeatureGame, masks: torch.Tensor, shared: bool) -> torch.Tensor:
        composed.append(int(masks.shape[-2]))
        return orig(self, masks, shared)

    settings = {"batch_size": 4, **settings}  # fixed chunks: the passes compare too
    with adapter.session():
        a = build_game(adapter, x, target=[0, 1], **settings)  # type: ignore[arg-type]
        b = build_game(adapter, x, target=[0, 1], **settings)  # type: ignore[arg-type]
        generic = a.value(torch.zeros(1, a.n_players))[:, 0]  # the coalition path
        FeatureGame._evaluate = spy  # type: ignore[method-assign]
        try:
            got = b.empty()
        finally:
            FeatureGame._evaluate = orig  # type: ignore[method-assign]
    assert composed == ([] if lean else [1]), name
    assert got.numpy().tobytes() == generic.numpy().tobytes(), name
    assert (a.n_evals, a.engine.n_rows, a.engine.n_passes) == \
        (b.n_evals, b.engine.n_rows, b.engine.n_passes), name
