"""AttnLRP on ViT-style models (the patch-embedding convolution is a linear layer) and 16-bit models (audit aud34l).

Before, every convolution was refused, so a ViT (whose patch embedding is an ``nn.Conv2d``
with stride == kernel size) had no propagation method at all: method='lrp' refuses its
LayerNorm and attention, method='attnlrp' its convolution. Truth on a tiny Hugging Face ViT
(lxt's rule functions patched into Transformers' ViT, float64) agreed to 1.8e-10 relative
(/work/notes34/aud34l/enc_probe.py); here: exact conservation on an absorber-free model and
the end-to-end ``explain`` equal to ``x * grad`` under the rules.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import UnsupportedModelError
from tribute.methods.lrp import attnlrp_rules


class _PatchNet(nn.Module):
    """Patchify conv (no bias) -> LayerNorm (no bias) -> GELU -> mean over patches -> head."""

    def __init__(self, overlap: bool = False) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 3 if overlap else 2, stride=2, padding=1 if overlap else 0, bias=False)
        self.ln = nn.LayerNorm(8, bias=False)
        self.act = nn.GELU()
        self.head = nn.Linear(8, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.patch(x).flatten(2).transpose(1, 2)  # N x patches x 8
        return self.head(self.act(self.ln(h)).sum(1))


def test_patch_embedding_is_linear_and_relevance_is_conserved() -> None:
    torch.manual_seed(0)
    m = _PatchNet().double().eval()
    x = torch.randn(4, 3, 6, 6, dtype=torch.float64)
    attr = tribute.explain(m, x, method="attnlrp", target=[0, 2], progress=False)
    with torch.no_grad():
        f = m(x)[:, [0, 2]].numpy()
    rel = attr.values.numpy().reshape(4, 2, -1)  # players: the game's default grouping
    np.testing.assert_allclose(rel.sum(-1), f, rtol=1e-9)  # nothing absorbs relevance here
    np.testing.assert_allclose(np.asarray(attr.gap), 0.0, atol=1e-9 * np.abs(f).max())


def test_overlapping_convolution_is_still_refused() -> None:
    m = _PatchNet(overlap=True).double().eval()
    with pytest.raises(UnsupportedModelError, match="patch-embedding convolution"):
        tribute.explain(m, torch.randn(2, 3, 6, 6, dtype=torch.float64), method="attnlrp", target=0,
                        progress=False)


def test_hugging_face_vit_end_to_end() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=8, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=32, num_labels=3)
    cfg._attn_implementation = "eager"
    vit = transformers.ViTForImageClassification(cfg).double().eval()

    class Logits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vit = vit

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.vit(pixel_values=x).logits
            return out

    model = Logits()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    attr = tribute.explain(model, x, method="attnlrp", target=1, progress=False)
    xg = x.clone().requires_grad_(True)
    with attnlrp_rules(model):
        (g,) = torch.autograd.grad(model(xg)[:, 1].sum(), xg)
    np.testing.assert_allclose(attr.flat().reshape(2, -1), (x * g).reshape(2, -1).numpy(), rtol=1e-10,
                               atol=1e-14)
    assert np.isfinite(np.asarray(attr.gap)).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_identity_rule_at_a_zero_input_in_16_bit(dtype: torch.dtype) -> None:
    """aud34l: in float16 the identity rule's eps=1e-10 rounded to 0, so a SiLU/RMSNorm input
    exactly 0 gave 0/0 and NaN relevance for every input feature."""
    torch.manual_seed(0)
    first = nn.Linear(3, 3, bias=False)
    ref = nn.Sequential(first, nn.SiLU(), nn.RMSNorm(3), nn.Linear(3, 1, bias=False)).double()
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, -1.0, 0.0], [0.5, 0.5, 0.5], [0.0, 0.0, 1.0]]))
    half = nn.Sequential(nn.Linear(3, 3, bias=False), nn.SiLU(), nn.RMSNorm(3), nn.Linear(3, 1, bias=False))
    half.load_state_dict(ref.state_dict())
    half = half.to(dtype)
    x = torch.tensor([[1.0, 1.0, 0.0], [0.5, -0.25, 2.0]])  # row 0: unit 0's pre-activation is exactly 0
    rel = {}
    for name, m, xx in (("half", half, x.to(dtype)), ("ref", ref, x.double())):
        xg = xx.clone().requires_grad_(True)
        with attnlrp_rules(m):
            (g,) = torch.autograd.grad(m(xg).sum(), xg)
        rel[name] = (xg * g).detach().double().numpy()
    assert np.isfinite(rel["half"]).all()
    np.testing.assert_allclose(rel["half"], rel["ref"], atol=3e-2 * np.abs(rel["ref"]).max())


@pytest.mark.parametrize("with_input", [False, True])
def test_uniform_rule_on_baddbmm(with_input: bool) -> None:
    """aud34l: Bloom's attention scores (``alibi.baddbmm(batch1=q, batch2=k)``) and GPT-2's
    ``reorder_and_upcast_attn`` path went through as a plain gradient, which gives both
    factors the full relevance: f = sum(baddbmm(c, x, x^T)) summed 2 f over x, not f."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 3, 3, dtype=torch.float64)

    class Scores(nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            base = t[:, :, :3] if with_input else c  # an input-dependent 'input' term, or a constant
            return base.baddbmm(batch1=t, batch2=t.transpose(1, 2), beta=0.5, alpha=0.25).sum((1, 2))

    m = Scores()
    with attnlrp_rules(m):
        out = m(x)
        (g,) = torch.autograd.grad(out.sum(), x)
    rel = (x * g).sum((1, 2)).detach().numpy()
    prod = 0.25 * (x @ x.transpose(1, 2)).sum((1, 2)).detach().numpy()
    if with_input:  # the input term is linear: its relevance is its value
        np.testing.assert_allclose(rel, prod + 0.5 * x[:, :, :3].sum((1, 2)).detach().numpy(), rtol=1e-12)
    else:  # the constant absorbs its share
        np.testing.assert_allclose(rel, prod, rtol=1e-12)
    with torch.no_grad():
        np.testing.assert_allclose(out.numpy(), m(x).numpy(), rtol=0, atol=0)  # values unchanged


def test_uniform_rule_on_in_place_product() -> None:
    """``h *= gate`` (two input-dependent tensors) gets the uniform rule like ``h * gate``."""
    x = torch.tensor([[0.5, -1.5, 2.0]], dtype=torch.float64, requires_grad=True)

    class Square(nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            h = t * 1.0
            h *= t
            return h.sum(-1, keepdim=True)

    m = Square()
    with attnlrp_rules(m):
        (g,) = torch.autograd.grad(m(x).sum(), x)
    np.testing.assert_allclose((x * g).detach().numpy(), (x * x).detach().numpy(), rtol=1e-12)


def test_gpt2_reordered_attention_equals_the_default_path() -> None:
    """GPT-2's ``reorder_and_upcast_attn`` computes Q K^T with ``torch.baddbmm``: same model,
    same relevance as the default (matmul) path (before: 6e-4 relative apart, Q and K each
    getting the full relevance of the scores)."""
    transformers = pytest.importorskip("transformers")
    ids = torch.tensor([[5, 17, 33, 8, 41, 12]])
    rel = []
    for reorder in (False, True):
        torch.manual_seed(0)
        cfg = transformers.GPT2Config(vocab_size=90, n_positions=48, n_embd=32, n_layer=2, n_head=2,
                                      reorder_and_upcast_attn=reorder)
        cfg._attn_implementation = "eager"
        lm = transformers.GPT2LMHeadModel(cfg).eval()  # float32: the reordered path upcasts to it
        e = lm.get_input_embeddings()(ids).detach().requires_grad_(True)
        with attnlrp_rules(lm):
            (g,) = torch.autograd.grad(lm(inputs_embeds=e).logits[0, -1, 7], e)
        rel.append((e * g).sum(-1).detach().numpy())
    np.testing.assert_allclose(rel[1], rel[0], rtol=0, atol=1e-6 * np.abs(rel[0]).max())


def test_bloom_gelu_module_gets_the_identity_rule() -> None:
    """Bloom's ``BloomGelu`` (a parameter-free module computing the tanh GELU in its own code)
    is one activation: the same relevance as with ``nn.GELU(approximate='tanh')`` in its place
    (before: the rules took its formula apart; up to 4e-4 apart, 2% of an element, here)."""
    transformers = pytest.importorskip("transformers")
    ids = torch.tensor([[5, 17, 33, 8, 41, 12]])
    rel = []
    for swap in (False, True):
        torch.manual_seed(0)
        cfg = transformers.BloomConfig(vocab_size=90, hidden_size=32, n_layer=2, n_head=4)
        lm = transformers.BloomForCausalLM(cfg).double().eval()
        if swap:
            for block in lm.transformer.h:
                block.mlp.gelu_impl = nn.GELU(approximate="tanh")
        e = lm.get_input_embeddings()(ids).detach().requires_grad_(True)
        with attnlrp_rules(lm):
            (g,) = torch.autograd.grad(lm(inputs_embeds=e).logits[0, -1, 7], e)
        rel.append((e * g).sum(-1).detach().numpy())
    np.testing.assert_allclose(rel[0], rel[1], rtol=0, atol=1e-7 * np.abs(rel[1]).max())


def test_nonlinear_functional_calls_without_a_rule_are_reported() -> None:
    """aud34l: torch.exp / F.layer_norm / a division by an input-dependent tensor in a model's
    own code went through as plain gradients, silently; they are now counted and reported."""

    class Own(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.head = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = nn.functional.layer_norm(self.lin(x), (4,))
            return self.head(h / torch.exp(h).sum(-1, keepdim=True))

    torch.manual_seed(0)
    x = torch.randn(3, 4, dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"nonlinear functions.*div x1, exp x1, layer_norm x1"):
        attr = tribute.explain(Own().double(), x, method="attnlrp", target=0, progress=False)
    assert attr.extra["functional_ops"] == {"div": 1, "exp": 1, "layer_norm": 1}
