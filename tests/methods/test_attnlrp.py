"""AttnLRP (method="attnlrp"): closed form, conservation, lxt parity, model restored, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tribute
from tribute.errors import InputError, UnsupportedModelError
from tribute.methods.lrp import attnlrp_rules
from tribute.models.text import WordTokenizer, segment

transformers = pytest.importorskip("transformers")

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "generation"))
sys.path.insert(0, str(HERE.parent / "text"))
from _attnlrp_models import NextTokenLogits, tiny_lm  # noqa: E402
from _text_models import BagOfEmbeddings, tiny_bert  # noqa: E402
from gen_models import make_tokenizer  # noqa: E402

TEXTS = ["the cat sat on the mat", "a quick brown fox jumps"]
GAP_TOL = {"gpt2": 0.9, "llama": 0.5, "bert": 0.8}  # just above the measured |gap| / |f| (see below)
WORDS = "the cat sat on mat a quick brown fox jumps".split()


def _snapshot(model: nn.Module) -> Any:
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()],
        [dict(vars(m)).get("forward") for m in model.modules()],
    )


def _same(a: Any, b: Any) -> bool:
    return all(torch.equal(a[0][k], b[0][k]) for k in a[0]) and a[1:] == b[1:]


def _setup(kind: str) -> tuple[nn.Module, Any, int]:
    if kind == "bert":
        tok = WordTokenizer(WORDS, bos=True)
        model = tiny_bert(tok.vocab_size, num_labels=3)
        model.config._attn_implementation = "eager"
        return model, tok, 1
    return NextTokenLogits(tiny_lm(kind, 90)), make_tokenizer(), 5


def test_closed_form_bag_of_embeddings() -> None:
    """Masked mean -> tanh -> linear: R_t = sum_d e_td m_t / |m| * tanh(h_d) / h_d * W_cd."""
    tok = WordTokenizer(WORDS)
    model = BagOfEmbeddings(tok.vocab_size, out=3)
    attr = tribute.explain(model, TEXTS, tokenizer=tok, method="attnlrp", target=2, progress=False)
    for i, text in enumerate(TEXTS):
        ids = torch.tensor([tok.encode_offsets(text)[0]])
        e = model.emb(ids)[0].detach()
        h = e.mean(0)
        terms = e / e.shape[0] * (torch.tanh(h) / h * model.lin.weight[2].detach())
        ref = terms.sum(-1)
        # The identity rule's stabiliser (eps=1e-10 on y / x) moves each term by at most
        # |term| * eps / |h_d|; a relative tolerance fails where the terms cancel (CI's CPU
        # draws other embeddings than ours: one credit was -0.0055 from terms of ~0.3).
        bound = (terms.abs() * 1e-10 / h.abs()).sum(-1).numpy()
        n = len(text.split())
        err = np.abs(np.asarray(attr.values)[i, :n] - ref.numpy())
        assert np.all(err <= 2 * bound + 1e-13), (err, bound)
        # gap: the output bias, plus what the stabiliser moved the credits by (the CI failure of
        # stop 35: an unseeded bias of -0.0055 missed rtol=1e-8 by the 1.9e-10 the credits carry)
        gap_err = abs(float(np.asarray(attr.gap).ravel()[i]) + float(model.lin.bias[2]))
        assert gap_err <= 2 * float(bound.sum()) + 1e-13, (gap_err, bound)


def test_uniform_rule_splits_bilinear_product() -> None:
    """f = sum(x * x) (a product of two input-dependent tensors): R = x * x / 2 * 2 = x^2."""
    x = torch.tensor([[0.5, -1.5, 2.0]], dtype=torch.float64, requires_grad=True)

    class Square(nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return (t * t).sum(-1, keepdim=True)

    m = Square()
    with attnlrp_rules(m):
        (g,) = torch.autograd.grad(m(x).sum(), x)
    np.testing.assert_allclose((x * g).detach().numpy(), (x * x).detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "bert"])
def test_conservation_and_restored(kind: str) -> None:
    model, tok, target = _setup(kind)
    before = _snapshot(model)
    attr = tribute.explain(model, TEXTS, tokenizer=tok, method="attnlrp", target=target, progress=False)
    assert _same(before, _snapshot(model))
    vals = np.nan_to_num(np.asarray(attr.values))
    expl = np.asarray(attr.extra["explained"]).ravel()
    gap = np.asarray(attr.gap).ravel()
    total = vals.reshape(len(TEXTS), -1).sum(-1) + np.asarray(attr.extra["unassigned"]).ravel()
    np.testing.assert_allclose(total - expl, gap, atol=1e-12)
    # Stated tolerance: on these random tiny models relevance is conserved up to what biases,
    # the softmax linearisation and the position embeddings absorb (measured |gap| / |f|:
    # gpt2 0.06 / 0.83, llama 0.24 / 0.40, bert 0.70 / 0.70); exact conservation of the other
    # rules is checked on an absorber-free model below.
    assert np.all(np.isfinite(gap)) and np.all(np.abs(gap) <= GAP_TOL[kind] * np.abs(expl)), (gap, expl)
    # same model under SDPA attention: identical relevance (the fused kernel gets the split too)
    if kind != "bert":
        sdpa = NextTokenLogits(tiny_lm(kind, 90, attn="sdpa"))
        again = tribute.explain(sdpa, TEXTS, tokenizer=tok, method="attnlrp", target=target, progress=False)
        # (Llama's RMSNorm computes in float32, so the two paths agree to float32 precision)
        np.testing.assert_allclose(np.asarray(again.values), np.asarray(attr.values), rtol=1e-6, atol=1e-9)


def test_exact_conservation_without_absorbers() -> None:
    """Bias-free linear layers, LayerNorm/RMSNorm, GELU/SiLU, a gated product: the rules conserve
    relevance exactly (nothing absorbs it), so sum_i x_i g_i == f(x)."""
    torch.manual_seed(1)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln = nn.LayerNorm(6, bias=False)
            self.rms = nn.RMSNorm(6, eps=1e-6)
            self.gate, self.up = nn.Linear(6, 8, bias=False), nn.Linear(6, 8, bias=False)
            self.act = nn.SiLU()
            self.down = nn.Linear(8, 6, bias=False)
            self.head = nn.Linear(6, 1, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.ln(x)
            h = h + self.down(self.act(self.gate(h)) * self.up(h))
            return self.head(nn.functional.gelu(self.rms(h)))

    m = Block().double()
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    with attnlrp_rules(m):
        out = m(x)
        (g,) = torch.autograd.grad(out.sum(), x)
    np.testing.assert_allclose((x * g).sum(-1).detach().numpy(), out[:, 0].detach().numpy(), rtol=1e-8)


def _lxt_relevance(tmp: Path, model: nn.Module, kind: str, tok: Any, target: int, variant: str) -> np.ndarray:
    pytest.importorskip("lxt")
    lm: Any = model if kind == "bert" else model.lm
    lm.save_pretrained(tmp / kind)
    enc = segment(TEXTS, tok, "tokens", include_special=True)
    extra: dict[str, Any] = {"types": enc.token_type_ids.numpy()} if kind == "bert" and enc.token_type_ids is not None else {}
    np.savez(tmp / "in.npz", ids=enc.input_ids.numpy(), mask=enc.attention_mask.numpy(), target=target, **extra)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(HERE / "_lxt_side.py"), str(tmp / kind), kind, str(tmp / "in.npz"),
                        str(tmp / "out.npz"), variant], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rel = np.load(tmp / "out.npz")["relevance"] * enc.attention_mask.numpy()
    tp = enc.token_player.numpy()
    out = np.zeros((len(TEXTS), int(tp.max()) + 1))
    for b, t in zip(*np.nonzero(tp >= 0)):
        out[b, tp[b, t]] += rel[b, t]
    return out


@pytest.mark.parametrize(("kind", "variant"), [("gpt2", "attnlrp"), ("llama", "attnlrp"), ("bert", "attnlrp"),
                                               pytest.param("llama", "cp", marks=pytest.mark.slow),
                                               pytest.param("gpt2", "cp", marks=pytest.mark.slow)])
def test_parity_with_lxt(tmp_path: Path, kind: str, variant: str) -> None:
    """Same tiny float64 model, every token a player: tribute's relevance equals lxt's."""
    model, tok, target = _setup(kind)
    ref = _lxt_relevance(tmp_path, model, kind, tok, target, variant)
    attr = tribute.explain(model, TEXTS, tokenizer=tok, method="attnlrp", players="tokens",
                           include_special=True, target=target, variant=variant, progress=False)
    mine = np.nan_to_num(np.asarray(attr.values).reshape(len(TEXTS), -1))
    assert np.abs(mine - ref).max() <= 1e-6 * np.abs(ref).max()


def test_planted_exception_mid_backward_restores_model() -> None:
    model, tok, target = _setup("llama")
    before = _snapshot(model)
    lm: Any = model.lm

    def boom(mod: nn.Module, gin: Any, gout: Any) -> Any:
        raise RuntimeError("planted failure in backward")

    h = lm.model.layers[0].mlp.down_proj.register_full_backward_hook(boom)
    with_hook = _snapshot(model)
    try:
        with pytest.raises(RuntimeError, match="planted failure"):
            tribute.explain(model, TEXTS, tokenizer=tok, method="attnlrp", target=target, progress=False)
        assert _same(with_hook, _snapshot(model))
    finally:
        h.remove()
    assert _same(before, _snapshot(model))
    # and the next call works: no rule or mode left behind
    tribute.explain(model, TEXTS, tokenizer=tok, method="attnlrp", target=target, progress=False)
    assert torch.overrides._get_current_function_mode_stack() == []


def test_unsupported_module_and_bad_options() -> None:
    tok = WordTokenizer(WORDS)

    class ConvText(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(tok.vocab_size, 4)
            self.conv = nn.Conv1d(4, 2, 3, padding=1)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.conv(self.emb(ids).transpose(1, 2)).mean(-1)

    model = ConvText().double()
    before = _snapshot(model)
    with pytest.raises(UnsupportedModelError, match=r"'conv' of type Conv1d.*method='lrp'"):
        tribute.explain(model, TEXTS, tokenizer=tok, method="attnlrp", target=0, progress=False)
    assert _same(before, _snapshot(model))

    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(tok.vocab_size, 4)
            self.norm = nn.GroupNorm(2, 4)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.norm(self.emb(ids).mean(1))

    with pytest.raises(UnsupportedModelError, match="GroupNorm"):
        tribute.explain(Odd().double(), TEXTS, tokenizer=tok, method="attnlrp", target=0, progress=False)
    with pytest.raises(InputError, match="variant"):
        tribute.explain(BagOfEmbeddings(tok.vocab_size), TEXTS, tokenizer=tok, method="attnlrp",
                        variant="bogus", target=0, progress=False)
    with pytest.raises(InputError, match="output="):
        tribute.explain(BagOfEmbeddings(tok.vocab_size), TEXTS, tokenizer=tok, method="attnlrp",
                        output="probability", target=0, progress=False)


def test_multihead_attention_model_matches_explicit_attention() -> None:
    """nn.MultiheadAttention gets the same rules as an explicit SDPA block with its weights."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=True).double().eval()

    class Explicit(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            w, b = mha.in_proj_weight, mha.in_proj_bias
            q, k, v = (nn.functional.linear(x, w[i * 8:(i + 1) * 8], b[i * 8:(i + 1) * 8])
                       .reshape(1, -1, 2, 4).transpose(1, 2) for i in range(3))
            o = nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(1, -1, 8)
            return mha.out_proj(o).sum((1, 2))

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = mha

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.attn(x, x, x, need_weights=False)[0].sum((1, 2))

    x = torch.randn(1, 5, 8, dtype=torch.float64)
    grads = []
    for m in (Wrapped(), Explicit()):
        xx = x.clone().requires_grad_(True)
        with attnlrp_rules(m if isinstance(m, Wrapped) else nn.ModuleList([mha, m])):
            (g,) = torch.autograd.grad(m(xx).sum(), xx)
        grads.append(g)
    np.testing.assert_allclose(grads[0].numpy(), grads[1].numpy(), rtol=1e-10, atol=1e-13)


def test_generation_refused_with_reason() -> None:
    tok = make_tokenizer()
    lm = tiny_lm("gpt2", 90)
    with pytest.raises(UnsupportedModelError, match="next-token logit"):
        tribute.explain_generation(lm, tok, "the cat sat on the", max_new_tokens=2, method="attnlrp")


def test_planted_trigger_word_ranked_first() -> None:
    """Faithfulness sanity check: on the trained planted-trigger transformer (tribute bench's
    planted_words case) the top AttnLRP word is a trigger word (measured 200/200 on held-out
    positives, benchmarks/bench_attnlrp.py; saliency 156/200)."""
    from tribute import bench
    from tribute import datasets as D

    case = bench.build_suite("tiny", seed=0, cases=["planted_words"]).cases[0]
    assert case.tokens is not None
    texts = [" ".join(t) for t in case.tokens]
    attr = tribute.explain(case.model, texts, tokenizer=D.planted_words_tokenizer(), removal="mask",
                           method="attnlrp", target=1, progress=False)
    top = np.nanargmax(np.asarray(attr.values).reshape(len(texts), -1), -1)
    hits = [t.split()[j] in D._text.TRIGGER_WORDS for t, j in zip(texts, top)]
    assert sum(hits) == len(hits), hits
