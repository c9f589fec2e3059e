"""The x >= 0 fast path of the z+/alpha-beta/gamma rules equals the general formulas.

After a ReLU every input is nonnegative, so the ``x-`` products vanish and the rules reuse the
layer's own forward output (``x W = z - b``, ``x W- = x W - x W+``); the speed benchmark relies
on it. Checked in float64 against the general two-sided formulas on Linear and Conv layers,
with and without bias, strided and grouped convolutions.
"""

from __future__ import annotations

import pytest
import torch

from tribute.methods.lrp import rules as R


def _layers() -> list[tuple[str, torch.nn.Module, tuple[int, ...]]]:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return [
            ("linear", torch.nn.Linear(7, 5).double(), (4, 7)),
            ("linear-nobias", torch.nn.Linear(7, 5, bias=False).double(), (4, 7)),
            # (batch, tokens, features) inputs: the bias sits on the last axis (aud31g: it was put
            # on axis 1, a crash, or silently wrong numbers when tokens == out_features)
            ("linear-3d", torch.nn.Linear(7, 5).double(), (2, 3, 7)),
            ("linear-3d-tokens-eq-outputs", torch.nn.Linear(7, 4).double(), (2, 4, 7)),
            ("conv", torch.nn.Conv2d(3, 4, 3, padding=1).double(), (2, 3, 6, 6)),
            ("conv-strided-grouped", torch.nn.Conv2d(4, 6, 3, stride=2, groups=2).double(),
             (2, 4, 7, 7)),
            ("conv1d", torch.nn.Conv1d(2, 3, 2, bias=False).double(), (3, 2, 9)),
        ]


@pytest.mark.parametrize("rule", [R.ZPlus(), R.AlphaBeta(2.0, 1.0), R.AlphaBeta(1.5, 0.5),
                                  R.Gamma(0.25), R.Gamma(1.0)], ids=repr)
@pytest.mark.parametrize("layer", _layers(), ids=lambda v: v[0] if isinstance(v, tuple) else "")
def test_fast_path_equals_general_rule(rule: R.Rule, layer: tuple[str, torch.nn.Module, tuple[int, ...]],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _, mod, shape = layer
    g = torch.Generator().manual_seed(1)
    x = torch.rand(*shape, generator=g, dtype=torch.float64)
    x[x < 0.3] = 0.0  # ReLU-like: many exact zeros
    with torch.no_grad():
        z = mod(x)
    r = torch.randn(z.shape, generator=g, dtype=torch.float64)
    assert R._nonnegative(x)
    fast = rule.relevance(mod, x, z, r)
    monkeypatch.setattr(R, "_nonnegative", lambda t: False)
    general = rule.relevance(mod, x, z, r)
    torch.testing.assert_close(fast, general, rtol=1e-10, atol=1e-12)


def test_signed_inputs_take_the_general_path() -> None:
    x = torch.tensor([[0.5, -0.2, 1.0]], dtype=torch.float64)
    assert not R._nonnegative(x) and R._nonnegative(x.clamp(min=0))
