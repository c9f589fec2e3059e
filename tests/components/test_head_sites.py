"""Head players resolved on attention modules named like T5/MPNet (``o``), DistilBERT
(``out_lin``), GPT-NeoX (fused ``query_key_value`` and a ``config``), GPT-2's ``Conv1D``
``c_proj``, and decoder layers that carry a head count themselves (Falcon, Bloom).

Truth without hooks: removing head ``h`` (zero ablation) equals zeroing the input columns
``h`` of the attention's output projection (audit aud33s, stop 33)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from component_models import hf_last, hook_count
from torch import nn

import tribute
from tribute.errors import InputError, UnsupportedModelError
from tribute.games.components import components

H, D = 4, 16
DH = D // H


class Hand(nn.Module):
    """Self-attention with ``num_heads`` and q/k/v Linear children; the output projection's name is given."""

    def __init__(self, out_name: str) -> None:
        super().__init__()
        self.num_heads = H
        self.q, self.k, self.v = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)
        setattr(self, out_name, nn.Linear(D, D))
        self.out_name = out_name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (f(x).view(b, t, H, DH).transpose(1, 2) for f in (self.q, self.k, self.v))
        ctx = torch.softmax(q @ k.transpose(-1, -2) / DH**0.5, -1) @ v
        out: torch.Tensor = getattr(self, self.out_name)(ctx.transpose(1, 2).reshape(b, t, D))
        return out


class HandNet(nn.Module):
    def __init__(self, out_name: str) -> None:
        super().__init__()
        self.attn = Hand(out_name)
        self.head = nn.Linear(D, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.attn(x)).mean(1)
        return out


def _zeroed_truth(model: nn.Module, x: torch.Tensor, weight: torch.Tensor, rows: bool) -> np.ndarray:
    """``v(all) - v(all but h)`` for every head, by zeroing head ``h``'s input slice of ``weight``
    (its columns; rows for GPT-2's ``Conv1D``, whose weight is ``in x out``); target 0."""
    with torch.no_grad():
        full = model(x)[:, 0]
    out = []
    for h in range(H):
        saved = weight.data.clone()
        sl = slice(h * DH, (h + 1) * DH)
        if rows:
            weight.data[sl, :] = 0.0
        else:
            weight.data[:, sl] = 0.0
        with torch.no_grad():
            out.append(full - model(x)[:, 0])
        weight.data.copy_(saved)
    return torch.stack(out, -1).numpy()


def _heads(model: nn.Module, path: str, x: torch.Tensor) -> tuple[np.ndarray, str]:
    players = components(model, path, unit="head")
    attr = tribute.explain(model, x, method="feature_ablation", players=players, target=0)
    assert hook_count(model) == 0
    return np.asarray(attr.values), players.sites[0].path


@pytest.mark.parametrize("out_name", ["o", "out_lin", "o_proj"])
def test_heads_are_split_before_an_o_or_out_lin_projection(out_name: str) -> None:
    torch.manual_seed(0)
    model = HandNet(out_name).double().eval()
    x = torch.randn(3, 5, D, dtype=torch.float64)
    got, path = _heads(model, "attn", x)
    assert path == f"attn.{out_name}"
    truth = _zeroed_truth(model, x, getattr(model.attn, out_name).weight, rows=False)
    np.testing.assert_allclose(got, truth, atol=1e-12)


def test_an_unknown_output_projection_is_refused_not_split_after_mixing() -> None:
    model = HandNet("out_linear")
    with pytest.raises(UnsupportedModelError, match="'out_linear' looks like an output projection"):
        components(model, "attn", unit="head")


transformers = pytest.importorskip("transformers")


T = transformers
CASES = {
    # name: (model builder, path given, output projection of the heads, rows?)
    "t5": (lambda: T.T5EncoderModel(T.T5Config(d_model=D, d_kv=DH, num_heads=H, d_ff=32, num_layers=1,
                                                vocab_size=50)),
           "m.encoder.block.0.layer.0.SelfAttention", "m.encoder.block.0.layer.0.SelfAttention.o", False),
    "distilbert": (lambda: T.DistilBertModel(T.DistilBertConfig(dim=D, n_heads=H, hidden_dim=32, n_layers=1,
                                                                vocab_size=50)),
                   "m.transformer.layer.0.attention", "m.transformer.layer.0.attention.out_lin", False),
    "falcon layer": (lambda: T.FalconModel(T.FalconConfig(hidden_size=D, num_attention_heads=H, num_hidden_layers=1,
                                                          vocab_size=50)),
                     "m.h.0", "m.h.0.self_attention.dense", False),
    "bloom block": (lambda: T.BloomModel(T.BloomConfig(hidden_size=D, n_head=H, n_layer=1, vocab_size=50)),
                    "m.h.0", "m.h.0.self_attention.dense", False),
    "gpt-neox": (lambda: T.GPTNeoXModel(T.GPTNeoXConfig(hidden_size=D, num_attention_heads=H, intermediate_size=32,
                                                        num_hidden_layers=1, vocab_size=50)),
                 "m.layers.0.attention", "m.layers.0.attention.dense", False),
    "gpt2 c_proj": (lambda: T.GPT2Model(T.GPT2Config(n_embd=D, n_head=H, n_layer=1, vocab_size=50)),
                    "m.h.0.attn.c_proj", "m.h.0.attn.c_proj", True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hf_heads_match_zeroing_the_output_projection_columns(case: str) -> None:
    build, path, proj, rows = CASES[case]
    model = hf_last(build)
    x = torch.randint(0, 50, (2, 5), generator=torch.Generator().manual_seed(1))
    got, site = _heads(model, path, x)
    assert site == proj
    weight = model.get_submodule(proj).weight
    assert isinstance(weight, torch.Tensor)
    truth = _zeroed_truth(model, x, weight, rows=rows)
    np.testing.assert_allclose(got, truth, atol=1e-10)


def _qk_fixed_truth(model: nn.Module, x: torch.Tensor, qk: nn.Module, proj: nn.Module) -> np.ndarray:
    """AtP*'s QK fix by hand: ``<z - z', dv/dz>`` per head, ``z`` the input of the output
    projection (the heads' context), ``z'`` that input with every head of ``qk`` zeroed."""
    seen: dict[str, torch.Tensor] = {}

    def probe(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
        seen["z"] = args[0].detach().requires_grad_(True)
        return (seen["z"],)

    handle = proj.register_forward_pre_hook(probe)
    model(x)[:, 0].sum().backward()
    handle.remove()
    z, grad = seen["z"].detach(), seen["z"].grad
    assert grad is not None
    handles = [qk.register_forward_hook(lambda _m, _a, out: torch.zeros_like(out)),
               proj.register_forward_pre_hook(lambda _m, args: seen.__setitem__("zp", args[0].detach()))]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    model.zero_grad()
    return ((z - seen["zp"]) * grad).reshape(*z.shape[:2], H, DH).sum((1, 3)).numpy()


QK_CASES = {
    "t5": (lambda: T.T5EncoderModel(T.T5Config(d_model=D, d_kv=DH, num_heads=H, d_ff=32, num_layers=2,
                                                vocab_size=50)),
           "m.encoder.block.1.layer.0.SelfAttention.q", "m.encoder.block.1.layer.0.SelfAttention.o"),
    "distilbert": (lambda: T.DistilBertModel(T.DistilBertConfig(dim=D, n_heads=H, hidden_dim=32, n_layers=2,
                                                                vocab_size=50)),
                   "m.transformer.layer.0.attention.q_lin", "m.transformer.layer.0.attention.out_lin"),
}


@pytest.mark.parametrize("case", sorted(QK_CASES))
def test_qk_fix_reads_the_heads_context_before_the_o_or_out_lin_projection(case: str) -> None:
    build, qk, proj = QK_CASES[case]
    model = hf_last(build)
    x = torch.randint(0, 50, (2, 5), generator=torch.Generator().manual_seed(2))
    attr = tribute.explain(model, x, method="atp_star", players=components(model, qk, unit="head"), target=0)
    assert attr.extra["qk_fixed_players"] == [0, 1, 2, 3]
    truth = _qk_fixed_truth(model, x, model.get_submodule(qk), model.get_submodule(proj))
    np.testing.assert_allclose(np.asarray(attr.extra["atp"])[:, 0], truth, atol=1e-12)  # target axis


@pytest.mark.parametrize("path", ["m.h.0.attn.c_attn", "m.h.0.self_attention.query_key_value"])
def test_a_fused_qkv_projection_is_refused_for_head_players(path: str) -> None:
    model = hf_last(CASES["gpt2 c_proj"][0] if "c_attn" in path else CASES["bloom block"][0])
    with pytest.raises(UnsupportedModelError, match="fused query-key-value"):
        components(model, path, unit="head")


def test_num_heads_given_on_an_output_projection_still_splits_its_input() -> None:
    torch.manual_seed(3)
    model = HandNet("o_proj").double().eval()
    x = torch.randn(3, 5, D, dtype=torch.float64)
    players = components(model, "attn.o_proj", unit="head", num_heads=H)
    assert (players.sites[0].kind, players.sites[0].num_heads) == ("input", H)
    attr = tribute.explain(model, x, method="feature_ablation", players=players, target=0)
    proj = model.get_submodule("attn.o_proj")
    assert isinstance(proj, nn.Linear)
    np.testing.assert_allclose(np.asarray(attr.values), _zeroed_truth(model, x, proj.weight, rows=False), atol=1e-12)


def test_num_heads_contradicting_the_attention_modules_count_is_refused() -> None:
    model = nn.Sequential(nn.Linear(D, D))
    model.add_module("attn", nn.MultiheadAttention(D, H, batch_first=True))
    assert components(model, "attn", unit="head", num_heads=H).sites[0].num_heads == H
    with pytest.raises(InputError, match="num_heads=2 but the attention module 'attn' has 4 heads"):
        components(model, "attn", unit="head", num_heads=2)
    with pytest.raises(InputError, match="num_heads=2 but the attention module 'attn' has 4 heads"):
        components(HandNet("o_proj"), "attn", unit="head", num_heads=2)
    with pytest.raises(InputError, match="num_heads=2 but the attention module 'attn' has 4 heads"):
        components(HandNet("o_proj"), "attn.o_proj", unit="head", num_heads=2)


class _Block(nn.Module):
    """A user's block wrapping an nn.MultiheadAttention (H heads) and a feed-forward layer."""

    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(D, H, batch_first=True)
        self.ff = nn.Linear(D, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, _ = self.mha(x, x, x, need_weights=False)
        return self.ff(x + a)


class _BlockNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blk = _Block()
        self.head = nn.Linear(D, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blk(x).mean(1))


def test_num_heads_given_on_a_block_around_an_attention_module_splits_its_heads() -> None:
    # rev33b: components(net, "blk", unit="head", num_heads=4) split the block's output (0.165 off);
    # num_heads=2 was accepted silently
    torch.manual_seed(0)
    model = _BlockNet().double().eval()
    x = torch.randn(3, 5, D, dtype=torch.float64)
    attr = tribute.explain(model, x, method="feature_ablation", target=0,
                           players=components(model, "blk", unit="head", num_heads=H))
    proj = model.blk.mha.out_proj
    np.testing.assert_allclose(np.asarray(attr.values), _zeroed_truth(model, x, proj.weight, rows=False),
                               atol=1e-12)
    with pytest.raises(InputError, match="num_heads=2"):
        components(model, "blk", unit="head", num_heads=2)
