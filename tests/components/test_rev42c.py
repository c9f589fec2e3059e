"""rev42c: sequence-first torch modules (``batch_first=False``) with as many tokens as inputs.

Their activations are (tokens, batch, features): with tokens == inputs that has the shape of a
batch-first activation, and atp / layer_grad_cam read token t as input t (atp 0.07 to 0.32 off,
without a word). Sites owned by such a module are refused up front (read from torch's own
``batch_first``); head players of a seq-first ``nn.MultiheadAttention`` are read batch-first and
kept. Truth outside tribute: ``sum over tokens of act * dv/dact`` read by hand, and the
batch-first twin of the same weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute import components
from tribute.errors import UnsupportedModelError

T = B = 4  # as many tokens as inputs: the shapes cannot tell the layouts apart


class _Enc(nn.Module):
    """(batch, tokens, 8) inputs, one encoder layer (seq-first ones get transposed inputs), a head
    on the tokens' mean."""

    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.bf = batch_first
        self.enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=batch_first)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.enc(x if self.bf else x.transpose(0, 1))
        h = h if self.bf else h.transpose(0, 1)
        out: torch.Tensor = self.head(h.mean(1))
        return out


class _Lstm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lstm = nn.LSTM(8, 5)  # batch_first=False
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lstm(x.transpose(0, 1))[0].transpose(0, 1)  # back to (batch, tokens, 5)
        out: torch.Tensor = self.fc(h).mean(1)
        return out


def _x() -> torch.Tensor:
    return torch.randn(B, T, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def _hand_atp(model: nn.Module, x: torch.Tensor, path: str, target: torch.Tensor, seq_first: bool) -> np.ndarray:
    """Zero-ablation AtP by hand: ``sum over tokens of act * d out[target] / d act``, per input."""
    seen: dict[str, torch.Tensor] = {}

    def keep(_m: nn.Module, _a: Any, o: Any) -> None:
        o = o[0] if isinstance(o, tuple) else o
        o.retain_grad()
        seen["a"] = o

    h = model.get_submodule(path).register_forward_hook(keep)
    try:
        model(x)[torch.arange(len(x)), target].sum().backward()
    finally:
        h.remove()
    a = seen["a"]
    assert a.grad is not None
    g = a.grad
    if seq_first:
        a, g = a.transpose(0, 1), g.transpose(0, 1)
    return (a * g).sum(1).detach().numpy()


@pytest.mark.parametrize("path", ["enc.linear1", "enc.norm1", "enc", "enc.self_attn"])
@pytest.mark.parametrize("method", ["atp", "layer_grad_cam"])
def test_sites_of_a_sequence_first_encoder_are_refused_not_misread(path: str, method: str) -> None:
    # rev42c: atp on enc.linear1 gave credits 0.073 off the hand value (enc: 0.32) without a word
    model = _Enc(batch_first=False).double().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UnsupportedModelError, match=r"sequence-first \(batch_first=False\).*batch_first=True"):
        tribute.explain(model, _x(), method=method, players=components(model, path), target=0)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_sequence_first_lstm_is_refused_and_the_batch_first_layer_after_it_kept() -> None:
    model = _Lstm().double().eval()
    x, tgt = _x(), torch.tensor([0, 1, 2, 0])
    with pytest.raises(UnsupportedModelError, match=r"'lstm' \(LSTM\) is sequence-first"):
        components(model, "lstm")
    got = tribute.explain(model, x, method="atp", players=components(model, "fc"), target=tgt).values
    np.testing.assert_allclose(np.asarray(got), _hand_atp(model, x, "fc", tgt, seq_first=False), atol=1e-12)


def test_the_batch_first_twin_keeps_its_hand_credits() -> None:
    model = _Enc(batch_first=True).double().eval()
    x, tgt = _x(), torch.tensor([2, 0, 1, 1])
    for path in ("enc.linear1", "enc"):
        got = tribute.explain(model, x, method="atp", players=components(model, path), target=tgt).values
        np.testing.assert_allclose(np.asarray(got), _hand_atp(model, x, path, tgt, seq_first=False), atol=1e-12)


@pytest.mark.parametrize("method", ["atp", "feature_ablation"])
def test_head_players_of_a_sequence_first_attention_equal_its_batch_first_twin(method: str) -> None:
    # the heads of a seq-first nn.MultiheadAttention are read batch-first (not refused); the twin
    # with batch_first=True and the same weights is the truth
    seq, bf = _Enc(batch_first=False).double().eval(), _Enc(batch_first=True).double().eval()
    bf.load_state_dict(seq.state_dict())
    x, tgt = _x(), torch.tensor([1, 0, 2, 1])
    a = tribute.explain(seq, x, method=method, players=components(seq, "enc.self_attn", unit="head"), target=tgt)
    b = tribute.explain(bf, x, method=method, players=components(bf, "enc.self_attn", unit="head"), target=tgt)
    assert np.abs(np.asarray(b.values)).max() > 1e-3
    np.testing.assert_allclose(np.asarray(a.values), np.asarray(b.values), atol=1e-10)


def test_an_sae_at_a_sequence_first_module_is_refused() -> None:
    model = _Enc(batch_first=False).double().eval()
    enc, dec = nn.Linear(16, 6).double(), nn.Linear(6, 16).double()
    with pytest.raises(UnsupportedModelError, match=r"'enc.linear1' sits in module 'enc'.*sequence-first"):
        components(model, sae=tribute.SAE(enc, dec, at="enc.linear1"))
    components(_Enc(batch_first=True).double(), sae=tribute.SAE(enc, dec, at="enc.linear1"))  # the twin is kept
