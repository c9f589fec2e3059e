"""eng43b (issue #9): the per-pass and per-call work of component games, cut without a number changed.

* ``_edit`` on a site that spans every player column multiplies by the mask itself: no slice, no
  same-dtype ``.to``, no same-shape ``reshape`` per hooked pass (``test_..._no_view_per_pass``
  fails on integ: 3 such calls per pass).
* ``ComponentGame`` sizes rows with ``math.prod`` (integ: 3 ``np.prod`` calls per construction)
  and keeps a capture pass's single contiguous chunk instead of copying it with ``torch.cat``.

The parity tests compare with an edit written out by hand (``a + m (act - a)`` per unit, a
Linear's hidden layer computed with matmuls) and guard that these shortcuts do not change what
the hooks produce: other offsets, other dtypes, channel/head units and several chunks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from component_models import MLP, SmallCNN, hook_count, overridden_forwards
from torch import nn
from torch.overrides import TorchFunctionMode

import tribute
from tribute import components
from tribute.games import _hooks
from tribute.games._hooks import RowState, Site


class _Count(TorchFunctionMode):
    """Counts tensor functions by name (``__getitem__``, ``to``, ``reshape``, ``mul`` ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def _mask_state(mask: torch.Tensor) -> RowState:
    st = RowState(mode="mask", mask=mask)
    st.new_pass(1)
    return st


def test_a_whole_width_neuron_site_takes_no_view_per_pass() -> None:
    act = torch.randn(6, 4)
    mask = (torch.rand(6, 4, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    site = Site("fc", "fc", "neuron", "output", n_units=4, offset=0)
    with _Count() as c:
        out = _hooks._edit(0, site, act, _mask_state(mask))
    views = [n for n in c.names if n in ("__getitem__", "to", "reshape", "view", "narrow")]
    assert views == [], c.names  # integ: ['__getitem__', 'to', 'reshape']
    assert torch.equal(out, act * mask)


@pytest.mark.parametrize("mask_dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("offset", [0, 2])
def test_edit_equals_a_hand_edit(mask_dtype: torch.dtype, offset: int) -> None:
    g = torch.Generator().manual_seed(offset)
    act = torch.randn(5, 3, generator=g)
    width = offset + 3 + (1 if offset else 0)  # offset 0: the whole width; else a middle block
    mask = (torch.rand(5, width, generator=g) < 0.5).to(mask_dtype)
    abl = torch.randn(1, 3, generator=g)
    site = Site("fc", "fc", "neuron", "output", n_units=3, offset=offset)
    st = _mask_state(mask)
    out_zero = _hooks._edit(0, site, act, st)
    st.new_pass(1)
    st.ablate = lambda s, call, a, state: abl
    out_abl = _hooks._edit(0, site, act, st)
    m = mask[:, offset: offset + 3].to(torch.float32)
    assert out_zero.dtype == torch.float32
    assert torch.equal(out_zero, act * m)
    want = np.where(m.numpy() == 1, act.numpy(), np.broadcast_to(abl.numpy(), act.shape))
    np.testing.assert_array_equal(out_abl.numpy(), want)


def test_expand_keeps_channel_head_and_3d_neuron_shapes() -> None:
    m = torch.arange(6.0).reshape(2, 3)
    ch = Site("c", "c", "channel", "output", n_units=3)
    assert ch.expand(m, torch.zeros(2, 3, 4, 4)).shape == (2, 3, 1, 1)
    ne = Site("n", "n", "neuron", "output", n_units=3)
    assert torch.equal(ne.expand(m, torch.zeros(2, 5, 3)), m[:, None, :])
    assert ne.expand(m, torch.zeros(2, 3)) is m
    hd = Site("h", "h", "head", "output", num_heads=3, n_units=3)
    assert torch.equal(hd.expand(m, torch.zeros(2, 6)), m.repeat_interleave(2, dim=1))


def test_reduce_with_math_prod_sums_each_units_elements() -> None:
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float64).reshape(2, 3 * 4 * 5)
    ch = Site("c", "c", "channel", "output", n_units=3)
    np.testing.assert_array_equal(ch.reduce(x, (3, 4, 5)).numpy(), x.reshape(2, 3, 20).sum(-1).numpy())
    ne = Site("n", "n", "neuron", "output", n_units=5)
    np.testing.assert_array_equal(ne.reduce(x, (3, 4, 5)).numpy(), x.reshape(2, 12, 5).sum(1).numpy())


def test_no_np_prod_when_a_game_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = np.prod

    def counting(*a: Any, **k: Any) -> Any:
        calls.append(a)
        return real(*a, **k)

    net = MLP().eval()
    x = torch.randn(4, 6)
    monkeypatch.setattr(np, "prod", counting)
    tribute.explain(net, x, method="feature_ablation", players=components(net, "fc2"), target=0,
                    progress=False)
    assert calls == []  # integ: 3 per game (row_bytes of the capture pass, act_bytes, in_bytes)


def _hand_hidden_loo(net: MLP, x: torch.Tensor) -> np.ndarray:
    """Leave-one-out credits of fc2's units, by hand in float64: v(N) - v(N without unit j)."""
    with torch.no_grad():
        return _hand_hidden_loo_nograd(net, x)


def _hand_hidden_loo_nograd(net: MLP, x: torch.Tensor) -> np.ndarray:
    w1, b1 = net.fc1.weight.double(), net.fc1.bias.double()
    w2, b2 = net.fc2.weight.double(), net.fc2.bias.double()
    wo, bo = net.out.weight.double(), net.out.bias.double()
    h = torch.tanh(x.double() @ w1.T + b1) @ w2.T + b2
    full = (torch.relu(h) @ wo.T + bo)[:, 0]
    out = []
    for j in range(h.shape[1]):
        hj = h.clone()
        hj[:, j] = 0.0
        out.append((full - (torch.relu(hj) @ wo.T + bo)[:, 0]).numpy())
    return np.stack(out, 1)


@pytest.mark.parametrize("batch_size", [3, 64])
def test_leave_one_out_matches_hand_computation(batch_size: int) -> None:
    torch.manual_seed(0)
    net = MLP().double().eval()
    x = torch.randn(5, 6, dtype=torch.float64)
    attr = tribute.explain(net, x, method="feature_ablation", players=components(net, "fc2"), target=0,
                           batch_size=batch_size, progress=False)
    np.testing.assert_allclose(np.asarray(attr.values), _hand_hidden_loo(net, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch_size", [2, 64])
def test_mean_ablation_over_captured_chunks(batch_size: int) -> None:
    """Mean ablation reads the capture pass's activations (one chunk or several)."""
    torch.manual_seed(1)
    net = MLP().double().eval()
    x = torch.randn(5, 6, dtype=torch.float64)
    ref = torch.randn(7, 6, dtype=torch.float64)
    attr = tribute.explain(net, x, method="feature_ablation", target=0, batch_size=batch_size,
                           players=components(net, "fc2", ablation="mean", reference=ref), progress=False)
    w1, b1, w2, b2 = (t.detach().double() for t in (net.fc1.weight, net.fc1.bias, net.fc2.weight, net.fc2.bias))
    wo, bo = net.out.weight.detach().double(), net.out.bias.detach().double()
    hid = lambda z: torch.tanh(z @ w1.T + b1) @ w2.T + b2  # noqa: E731
    h, mean = hid(x), hid(ref).mean(0)
    full = (torch.relu(h) @ wo.T + bo)[:, 0]
    want = []
    for j in range(5):
        hj = h.clone()
        hj[:, j] = mean[j]
        want.append((full - (torch.relu(hj) @ wo.T + bo)[:, 0]).numpy())
    np.testing.assert_allclose(np.asarray(attr.values), np.stack(want, 1), rtol=1e-12, atol=1e-12)


class _FailsOnBigPasses(nn.Module):
    """A CNN that raises on a forward pass of more rows than its inputs (a coalition pass)."""

    def __init__(self, rows: int) -> None:
        super().__init__()
        self.net = SmallCNN()
        self.rows = rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.rows:
            raise RuntimeError("boom")
        out: torch.Tensor = self.net(x)
        return out


def test_the_model_is_left_as_it_was_after_an_exception_in_a_masked_pass() -> None:
    torch.manual_seed(2)
    model = _FailsOnBigPasses(3).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 1, 8, 8)
    with pytest.raises(RuntimeError, match="boom"):
        tribute.explain(model, x, method="feature_ablation", target=0, batch_size=64, progress=False,
                        players=components(model, "net.conv1", unit="channel"))
    assert hook_count(model) == 0 and overridden_forwards(model) == 0
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.backends.mha.get_fastpath_enabled()
