"""Custom (non Hugging Face) causal LMs: a logits tensor, a custom cache, no cache keywords.

Values are checked against one plain forward per coalition (no cache, no batching)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from gen_models import shapley_by_enumeration

import tribute
from tribute.errors import UnsupportedModelError
from tribute.methods.generation import prepare_generation

PROMPT = "the cat sat on the"


class TinyLM(torch.nn.Module):
    """A 2-layer GPT-like LM: ``forward(input_ids, attention_mask=None, past_key_values=None,
    use_cache=False)``; its cache is a list of per-layer hidden states (not a Hugging Face
    cache); returns the logits tensor, or an object with ``.logits`` and that cache."""

    def __init__(self, vocab: int, wrapped: bool) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        d = 16
        self.emb = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Embedding(32, d)
        self.att = torch.nn.ModuleList([torch.nn.MultiheadAttention(d, 2, batch_first=True) for _ in range(2)])
        self.head = torch.nn.Linear(d, vocab)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        self.double()
        self.wrapped = wrapped

    def forward(self, input_ids: torch.Tensor, attention_mask: Any = None, past_key_values: Any = None,
                use_cache: bool = False) -> Any:
        n = input_ids.shape[1]
        past = 0 if past_key_values is None else past_key_values[0].shape[1]
        h = self.emb(input_ids) + self.pos(torch.arange(past, past + n))[None]
        cache = []
        for i, att in enumerate(self.att):
            kv = h if past_key_values is None else torch.cat([past_key_values[i], h], 1)
            cache.append(kv)
            hidden = torch.ones(n, kv.shape[1], dtype=torch.bool).tril(past).logical_not()
            h = h + att(h, kv, kv, attn_mask=hidden, need_weights=False)[0]
        logits = self.head(h)
        if not self.wrapped:
            return logits
        return SimpleNamespace(logits=logits, past_key_values=cache if use_cache else None)


class BareLM(torch.nn.Module):
    """``forward(input_ids)`` only: no attention mask, no cache, no ``use_cache``."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.inner = TinyLM(vocab, wrapped=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.inner(input_ids)


def _direct_value(lm: Any, prompt: list[int], cont: list[int], groups: list[list[int]], repl: int,
                  keep: tuple[int, ...]) -> np.ndarray:
    """``T + 1`` log-probs of one coalition by one plain forward (no cache, no batching)."""
    owner = {p: j for j, g in enumerate(groups) for p in g}
    ids = [t if owner.get(p) is None or keep[owner[p]] else repl for p, t in enumerate(prompt)]
    out = lm(torch.tensor([ids + cont]))
    logits = out if torch.is_tensor(out) else out.logits
    lp = torch.log_softmax(logits[0].detach().double(), -1)
    per = [float(lp[len(ids) - 1 + i, c]) for i, c in enumerate(cont)]
    return np.array([*per, sum(per)])


@pytest.mark.parametrize("kind", ["tensor", "wrapped", "bare"])
@pytest.mark.parametrize("kv", [True, False], ids=["kv", "nokv"])
def test_custom_lm_values_equal_direct_enumeration(tok: Any, kind: str, kv: bool) -> None:
    lm: torch.nn.Module = BareLM(len(tok)) if kind == "bare" else TinyLM(len(tok), wrapped=kind == "wrapped")
    lm.eval()
    res = tribute.explain_generation(lm, tok, PROMPT, max_new_tokens=3, method="exact_shapley",
                                     removal="pad", kv_reuse=kv)
    prep = prepare_generation(lm, tok, PROMPT, max_new_tokens=3)
    assert res.generated_ids == prep.continuation
    want = shapley_by_enumeration(
        lambda keep: _direct_value(lm, prep.prompt_ids, prep.continuation, prep.groups, tok.pad_token_id, keep),
        len(prep.groups))
    np.testing.assert_allclose(res.values, want, rtol=0, atol=1e-10)
    # a custom cache is never sliced: every coalition runs the whole sequence
    assert res.positions_run == res.positions_full


def test_custom_lm_greedy_equals_argmax_of_full_forwards(tok: Any) -> None:
    for lm in (TinyLM(len(tok), wrapped=True), BareLM(len(tok))):
        prep = prepare_generation(lm.eval(), tok, PROMPT, max_new_tokens=5)
        ids = list(prep.prompt_ids)
        for _ in range(5):
            out = lm(torch.tensor([ids]))
            logits = out if torch.is_tensor(out) else out.logits
            ids.append(int(logits[0, -1].argmax()))
        assert prep.continuation == ids[len(prep.prompt_ids):]


def test_gradient_method_on_a_model_without_inputs_embeds_is_refused(tok: Any) -> None:
    lm = BareLM(len(tok)).eval()
    setattr(lm, "get_input_embeddings", lambda: lm.inner.emb)  # noqa: B010
    with pytest.raises(UnsupportedModelError, match="inputs_embeds"):
        tribute.explain_generation(lm, tok, PROMPT, max_new_tokens=2, method="integrated_gradients")
