"""Head players of attention modules that keep their head count only in a ``config`` (Hugging
Face Llama/Mistral/Qwen attention since transformers 4.48), grouped-query key projections, and
``num_heads=`` given on a module with an output projection."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

import tribute
from tribute.games.components import components


class ConfigAttention(nn.Module):
    """Like transformers 5's ``LlamaAttention``: ``config.num_attention_heads``, ``head_dim``, no
    ``num_heads`` attribute; grouped-query keys/values (``kv_heads`` heads); ``o_proj`` inside."""

    def __init__(self, d: int = 8, heads: int = 2, kv_heads: int = 1) -> None:
        super().__init__()
        self.config = SimpleNamespace(num_attention_heads=heads, num_key_value_heads=kv_heads, hidden_size=d)
        self.head_dim = d // heads
        self.q_proj = nn.Linear(d, heads * self.head_dim)
        self.k_proj = nn.Linear(d, kv_heads * self.head_dim)
        self.v_proj = nn.Linear(d, kv_heads * self.head_dim)
        self.o_proj = nn.Linear(heads * self.head_dim, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        h, kv, hd = self.config.num_attention_heads, self.config.num_key_value_heads, self.head_dim
        q = self.q_proj(x).view(b, n, h, hd).transpose(1, 2)
        k = self.k_proj(x).view(b, n, kv, hd).transpose(1, 2).repeat_interleave(h // kv, 1)
        v = self.v_proj(x).view(b, n, kv, hd).transpose(1, 2).repeat_interleave(h // kv, 1)
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), -1)
        return self.o_proj((w @ v).transpose(1, 2).reshape(b, n, h * hd))


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self_attn = ConfigAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.self_attn(x)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([Layer(), Layer()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for lay in self.layers:
            x = lay(x)
        return x[:, 0, :3]


def _net() -> tuple[Net, torch.Tensor]:
    torch.manual_seed(3)
    return Net().double().eval(), torch.randn(3, 4, 8, dtype=torch.float64)


def _zero_head_truth(model: Net, x: torch.Tensor, target: int) -> torch.Tensor:
    """Leave-one-out of each head: zero its slice of o_proj's input columns, by hand."""
    out = torch.zeros(3, 4, dtype=torch.float64)
    with torch.no_grad():
        full = model(x)[:, target]
        for li in range(2):
            lay = model.layers[li]
            assert isinstance(lay, Layer)
            w = lay.self_attn.o_proj.weight
            for h in range(2):
                saved = w[:, h * 4 : (h + 1) * 4].clone()
                w[:, h * 4 : (h + 1) * 4] = 0.0
                out[:, li * 2 + h] = full - model(x)[:, target]
                w[:, h * 4 : (h + 1) * 4] = saved
    return out


def test_heads_counted_from_the_config() -> None:
    model, x = _net()
    heads = components(model, ["layers.0.self_attn", "layers.1"], unit="head")
    assert [s.path for s in heads.sites] == ["layers.0.self_attn.o_proj", "layers.1.self_attn.o_proj"]
    attr = tribute.explain(model, x, method="feature_ablation", players=heads, target=1)
    np.testing.assert_allclose(attr.values.numpy(), _zero_head_truth(model, x, 1).numpy(), atol=1e-12)


def test_num_heads_given_reads_the_projection_input() -> None:
    # chunks of o_proj's *output* mix every head; num_heads= must not switch to them
    model, x = _net()
    heads = components(model, ["layers.0.self_attn", "layers.1.self_attn"], unit="head", num_heads=2)
    assert [s.kind for s in heads.sites] == ["input", "input"]
    attr = tribute.explain(model, x, method="feature_ablation", players=heads, target=2)
    np.testing.assert_allclose(attr.values.numpy(), _zero_head_truth(model, x, 2).numpy(), atol=1e-12)


def test_grouped_query_key_heads() -> None:
    # k_proj holds one key-value head (4 features), not two halves of it
    model, x = _net()
    keys = components(model, "layers.0.self_attn.k_proj", unit="head")
    attr = tribute.explain(model, x, method="feature_ablation", players=keys, target=0)
    assert attr.player_names == ["layers.0.self_attn.k_proj head 0"]
    with torch.no_grad():
        full = model(x)[:, 0]
        lay = model.layers[0]
        assert isinstance(lay, Layer)
        k = lay.self_attn.k_proj
        w, b = k.weight.clone(), k.bias.clone()
        k.weight.zero_()
        k.bias.zero_()
        truth = full - model(x)[:, 0]
        k.weight.copy_(w)
        k.bias.copy_(b)
    np.testing.assert_allclose(attr.values.numpy()[:, 0], truth.numpy(), atol=1e-12)
    # AtP*'s QK fix maps a head onto its attention's context head; a grouped key head serves
    # several query heads and gets the fix summed over them (aud38c; was plain GradDrop)
    both = components(model, ["layers.0.self_attn.q_proj", "layers.0.self_attn.k_proj"], unit="head",
                      num_heads=None)
    star = tribute.explain(model, x, method="atp_star", players=both, target=0)
    assert star.extra["qk_fixed_players"] == [0, 1, 2]
    assert star.values.shape == (3, 3)
