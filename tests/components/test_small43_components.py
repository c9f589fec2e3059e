"""small43: units of an LSTM / GRU read through its final state ``h_n``.

Component players of a recurrent module are the units of its output sequence; the last layer's
``h_n`` holds the same numbers as that sequence's last step (first step backwards). A model
reading ``h_n`` got all-zero credits from ablation and a crash from AtP. Truth: a hand forward
hook that ablates the unit in the output sequence and in the last layer's ``h_n``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute import components


class _Rnn(nn.Module):
    def __init__(self, kind: str, bidirectional: bool, layers: int, read: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        cls = {"lstm": nn.LSTM, "gru": nn.GRU}[kind]
        self.lstm = kind == "lstm"
        self.read = read
        self.rnn = cls(4, 5, batch_first=True, bidirectional=bidirectional, num_layers=layers)
        self.dirs = 2 if bidirectional else 1
        self.fc = nn.Linear(5 * self.dirs, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, state = self.rnn(x)
        h = state[0] if self.lstm else state
        last = torch.cat(list(h[-self.dirs:]), -1)  # (batch, dirs x 5)
        if self.read == "h_n":
            return self.fc(torch.tanh(last))
        return self.fc(torch.tanh(last) + seq.mean(1))  # both outputs


def _hand_ablation(model: _Rnn, x: torch.Tensor, target: int) -> np.ndarray:
    """v(all) - v(all without unit j), zero ablation, by a hand hook on both outputs."""

    def run(unit: int | None) -> torch.Tensor:
        def hook(_m: nn.Module, _a: Any, out: Any) -> Any:
            if unit is None:
                return out
            seq, state = out
            seq = seq.clone()
            seq[..., unit] = 0.0
            width = 5
            d = unit // width  # direction of the unit
            lstm = isinstance(state, tuple)
            h = (state[0] if lstm else state).clone()
            h[h.shape[0] - model.dirs + d, :, unit % width] = 0.0
            return seq, ((h, state[1]) if lstm else h)

        handle = model.rnn.register_forward_hook(hook)
        try:
            with torch.no_grad():
                return model(x)[:, target]
        finally:
            handle.remove()

    full = run(None)
    return torch.stack([full - run(j) for j in range(5 * model.dirs)], 1).numpy()


def _hand_atp(model: _Rnn, x: torch.Tensor, target: int) -> np.ndarray:
    """Zero-ablation AtP by hand: d v / d m at m = 1 for a multiplicative unit mask ``m`` on
    the output sequence and on the last layer's h_n, one mask per input."""
    m = torch.ones(x.shape[0], 5 * model.dirs, dtype=x.dtype, requires_grad=True)

    def hook(_m: nn.Module, _a: Any, out: Any) -> Any:
        seq, state = out
        lstm = isinstance(state, tuple)
        h = state[0] if lstm else state
        last = h[-model.dirs:] * m.reshape(x.shape[0], model.dirs, 5).transpose(0, 1)
        h = torch.cat([h[:-model.dirs], last], 0)
        return seq * m[:, None, :], ((h, state[1]) if lstm else h)

    handle = model.rnn.register_forward_hook(hook)
    try:
        (grad,) = torch.autograd.grad(model(x)[:, target].sum(), m)
    finally:
        handle.remove()
    return grad.numpy()


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional,layers,read", [(False, 1, "h_n"), (True, 2, "h_n"), (False, 2, "both")])
def test_units_read_through_h_n_get_the_hand_hooked_credits(kind: str, bidirectional: bool, layers: int,
                                                            read: str) -> None:
    model = _Rnn(kind, bidirectional, layers, read).double().eval()
    x = torch.randn(3, 6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    want = _hand_ablation(model, x, target=1)
    assert np.abs(want).max() > 1e-2
    players = components(model, "rnn")
    got = tribute.explain(model, x, method="feature_ablation", players=players, target=1).values
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-12)
    # AtP: the gradient reaches the units through h_n too (crashed: no grad_fn)
    atp = tribute.explain(model, x, method="atp", players=players, target=1).values
    np.testing.assert_allclose(np.asarray(atp), _hand_atp(model, x, target=1), atol=1e-12)
    assert not model.rnn._forward_hooks
