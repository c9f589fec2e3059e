"""Audit aud37c (stop 37): head players on Hugging Face decoders with fused or grouped-query
projections.

Truth outside tribute: removing head ``h`` (zero ablation) is a forward pre-hook, written here,
that zeroes features ``h * head_dim : (h + 1) * head_dim`` of the input of the attention's
output projection (or of the output of a query/key/value projection)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from component_models import Last, hf_last, hook_count
from torch import nn

import tribute
from tribute.errors import InputError, UnsupportedModelError
from tribute.games.components import components

transformers = pytest.importorskip("transformers")
T = transformers
H, D, DH, V = 4, 16, 4, 50


def _ids() -> torch.Tensor:
    return torch.randint(0, V, (2, 5), generator=torch.Generator().manual_seed(1))


def _zeroed(model: nn.Module, x: torch.Tensor, module: nn.Module, n: int, width: int, pre: bool) -> np.ndarray:
    """``v(all) - v(all but h)`` (target 0) for ``n`` heads of ``width`` features, zeroed in the
    input (``pre``) or output of ``module`` by a hook written here."""
    with torch.no_grad():
        full = model(x)[:, 0]
    out = []
    for h in range(n):
        def zero(t: torch.Tensor, h: int = h) -> torch.Tensor:
            t = t.clone()
            t[..., h * width:(h + 1) * width] = 0.0
            return t
        if pre:
            handle = module.register_forward_pre_hook(lambda _m, a: (zero(a[0]), *a[1:]))
        else:
            handle = module.register_forward_hook(lambda _m, _a, o: zero(o))
        try:
            with torch.no_grad():
                out.append((full - model(x)[:, 0]).numpy())
        finally:
            handle.remove()
    return np.stack(out, -1)


def _codegen() -> Last:
    return hf_last(lambda: T.CodeGenModel(T.CodeGenConfig(n_embd=D, n_head=H, n_layer=1, vocab_size=V, rotary_dim=2,
                                                      n_positions=32)))


def _phi3() -> Last:
    return hf_last(lambda: T.Phi3Model(T.Phi3Config(hidden_size=D, num_attention_heads=H, num_key_value_heads=2,
                                                intermediate_size=32, num_hidden_layers=1, vocab_size=V,
                                                pad_token_id=0)))


@pytest.mark.parametrize("build, path", [(_codegen, "m.h.0.attn.qkv_proj"),
                                         (_phi3, "m.layers.0.self_attn.qkv_proj")])
def test_a_fused_qkv_proj_is_refused_not_split_into_false_heads(build: Callable[[], Last], path: str) -> None:
    # aud37c: CodeGen's qkv_proj (48 features: queries, keys and values of 4 heads) gave 12
    # "heads" mixing queries, keys and values, with no warning
    model = build()
    with pytest.raises(UnsupportedModelError, match="fused query-key-value projection"):
        components(model, path, unit="head")


def test_phi3_attention_heads_are_its_o_proj_input_slices() -> None:
    # aud37c: Phi3Attention (config-only head count, fused qkv_proj) was refused: "cannot find its heads"
    model = _phi3()
    x = _ids()
    players = components(model, "m.layers.0.self_attn", unit="head")
    assert players.sites[0].path == "m.layers.0.self_attn.o_proj"
    got = tribute.explain(model, x, method="feature_ablation", players=players, target=0).values.numpy()
    truth = _zeroed(model, x, model.get_submodule("m.layers.0.self_attn.o_proj"), H, DH, pre=True)
    assert np.abs(truth).max() > 1e-3
    np.testing.assert_allclose(got, truth, atol=1e-12)
    assert hook_count(model) == 0


class Fused(nn.Module):
    """Attention with a head count, ``head_dim`` and a fused projection named like nothing tribute knows."""

    def __init__(self) -> None:
        super().__init__()
        self.num_heads, self.head_dim = H, DH
        self.packed = nn.Linear(D, 3 * D)
        self.o_proj = nn.Linear(D, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (z.reshape(b, t, H, DH).transpose(1, 2) for z in self.packed(x).split(D, -1))
        ctx = torch.softmax(q @ k.transpose(-1, -2) / DH**0.5, -1) @ v
        out: torch.Tensor = self.o_proj(ctx.transpose(1, 2).reshape(b, t, D))
        return out


def test_a_projection_wider_than_the_heads_is_refused_whatever_its_name() -> None:
    # aud37c: 48 features = 12 x head_dim were taken for 12 grouped-query "key heads" of a 4-head module
    model = nn.Sequential(Fused())
    with pytest.raises(UnsupportedModelError, match=r"48 features.*4 heads x 4 features.*num_heads="):
        components(model, "0.packed", unit="head")
    # num_heads= still splits it on purpose (the user's call)
    assert components(model, "0.packed", unit="head", num_heads=12).sites[0].num_heads == 12


@pytest.mark.parametrize("proj, n", [("q_proj", H), ("k_proj", 2), ("v_proj", 2)])
def test_llama_grouped_query_projection_heads_match_zeroing_their_slices(proj: str, n: int) -> None:
    model = hf_last(lambda: T.LlamaModel(T.LlamaConfig(hidden_size=D, num_attention_heads=H, num_key_value_heads=2,
                                                   intermediate_size=32, num_hidden_layers=1, vocab_size=V)))
    x = _ids()
    path = f"m.layers.0.self_attn.{proj}"
    players = components(model, path, unit="head")
    got = tribute.explain(model, x, method="feature_ablation", players=players, target=0).values.numpy()
    assert got.shape == (2, n)
    truth = _zeroed(model, x, model.get_submodule(path), n, DH, pre=False)
    np.testing.assert_allclose(got, truth, atol=1e-12)


@pytest.mark.parametrize("proj, given", [("k_proj", 4), ("v_proj", 4), ("q_proj", 2)])
def test_num_heads_contradicting_a_projections_head_count_is_refused(proj: str, given: int) -> None:
    # aud37c: num_heads=4 (the model's query heads) on a grouped-query k_proj (2 key heads of 4
    # features) split it into 4 half-heads of 2 features, with no warning
    model = hf_last(lambda: T.LlamaModel(T.LlamaConfig(hidden_size=D, num_attention_heads=H, num_key_value_heads=2,
                                                   intermediate_size=32, num_hidden_layers=1, vocab_size=V)))
    path = f"m.layers.0.self_attn.{proj}"
    with pytest.raises(InputError, match=rf"num_heads={given} but '{path}' projects"):
        components(model, path, unit="head", num_heads=given)
    right = H if proj == "q_proj" else 2
    assert components(model, path, unit="head", num_heads=right).sites[0].num_heads == right


def test_a_gated_query_projection_is_refused_not_split_into_query_and_gate_halves() -> None:
    # aud37c: Qwen3-Next's q_proj returns each head's query and output gate (32 features for 4
    # heads of 4): it was split into 8 "heads", half of them gates
    if not hasattr(T, "Qwen3NextModel"):
        pytest.skip("transformers without Qwen3-Next")
    cfg = T.Qwen3NextConfig(hidden_size=D, num_attention_heads=H, num_key_value_heads=2, head_dim=DH,
                            intermediate_size=32, num_hidden_layers=1, vocab_size=V, layer_types=["full_attention"],
                            num_experts=2, num_experts_per_tok=1, moe_intermediate_size=8,
                            shared_expert_intermediate_size=8)
    model = hf_last(lambda: T.Qwen3NextModel(cfg))
    with pytest.raises(UnsupportedModelError, match=r"32 features.*4 heads x 4 features"):
        components(model, "m.layers.0.self_attn.q_proj", unit="head")
    assert components(model, "m.layers.0.self_attn.k_proj", unit="head").sites[0].num_heads == 2
    assert components(model, "m.layers.0.self_attn", unit="head").sites[0].path == "m.layers.0.self_attn.o_proj"
