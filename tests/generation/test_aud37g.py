"""Audit aud37g: generation attributions against direct computations outside tribute."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from gen_models import make_lm

import tribute
from tribute.errors import InputError


def _tokenizer_without_bos() -> Any:
    """A word-level tokenizer that adds no special token (as GPT-2's): every prompt token is a player."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2}
    for w in "the cat sat on mat dog a big red log".split():
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]")


@pytest.mark.parametrize("kv", [True, False], ids=["kv", "nokv"])
@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_delete_of_every_prompt_token_is_refused_not_scored_from_position_minus_one(kind: str, kv: bool) -> None:
    # without a BOS the empty coalition deleted the whole prompt: the first token's logits were
    # read at position -1 (the right padding's end: another token's prediction), 0.15 off on
    # GPT-2 without prefix reuse, and an IndexError with it
    tok = _tokenizer_without_bos()
    lm = make_lm(kind, len(tok))
    lm.train()
    with pytest.raises(InputError, match=r"removal='delete' removed every token of the prompt.*BOS"):
        tribute.explain_generation(lm, tok, "the cat sat", max_new_tokens=2, method="exact_shapley",
                                   removal="delete", kv_reuse=kv)
    assert lm.training  # left as it was after the error


def test_delete_without_bos_is_right_when_no_coalition_is_empty() -> None:
    # leave-one-out never deletes every token: values equal one plain forward per coalition
    tok = _tokenizer_without_bos()
    lm = make_lm("llama", len(tok))
    res = tribute.explain_generation(lm, tok, "the cat sat on", max_new_tokens=3, removal="delete")
    prompt, cont = res.prompt_ids, res.generated_ids

    def value(ids: list[int]) -> np.ndarray:
        with torch.no_grad():
            lp = torch.log_softmax(lm(input_ids=torch.tensor([ids + cont])).logits[0].double(), -1)
        per = [float(lp[len(ids) - 1 + i, c]) for i, c in enumerate(cont)]
        return np.array([*per, sum(per)])

    full = value(prompt)
    want = np.stack([full - value(prompt[:i] + prompt[i + 1:]) for i in range(len(prompt))], 1)
    np.testing.assert_allclose(res.values, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("removal", [np.int64(0), torch.tensor(0)], ids=["numpy", "tensor"])
def test_a_token_id_read_off_an_array_is_a_removal_id(gpt2: Any, tok: Any, removal: Any, tmp_path: Any) -> None:
    # removal=np.int64(0) (an id read off an array) was refused as "not ... a token id (int)"
    want = tribute.explain_generation(gpt2, tok, "the cat sat", max_new_tokens=2, removal=0)
    res = tribute.explain_generation(gpt2, tok, "the cat sat", max_new_tokens=2, removal=removal)
    np.testing.assert_array_equal(res.values, want.values)
    assert res.params["removal"] == 0 and type(res.params["removal"]) is int
    res.save(tmp_path / "g.npz")  # the recorded id is a plain int in the file's header


@pytest.mark.parametrize("kv_reuse", ["False", 0, None])
def test_kv_reuse_must_be_a_bool(gpt2: Any, tok: Any, kv_reuse: Any) -> None:
    # kv_reuse="False" was read as True
    with pytest.raises(InputError, match=r"kv_reuse=.* must be True or False"):
        tribute.explain_generation(gpt2, tok, "the cat sat", max_new_tokens=2, kv_reuse=kv_reuse)


class _IntKeepLM(torch.nn.Module):
    """A Hugging Face LM behind a forward whose ``logits_to_keep`` is an int only
    (``logits[:, -k:]``, the pattern of remote-code models)."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def get_input_embeddings(self) -> Any:
        return self.inner.get_input_embeddings()

    def forward(self, input_ids: Any = None, inputs_embeds: Any = None, attention_mask: Any = None,
                past_key_values: Any = None, use_cache: Any = None, logits_to_keep: int = 0) -> Any:
        out = self.inner(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                         past_key_values=past_key_values, use_cache=use_cache)
        if logits_to_keep:
            out.logits = out.logits[:, -logits_to_keep:, :]
        return out


@pytest.mark.parametrize("kv", [True, False], ids=["kv", "nokv"])
def test_an_lm_taking_logits_to_keep_as_an_int_gets_direct_values(tok: Any, kv: bool) -> None:
    # a tensor of positions was passed as logits_to_keep: TypeError inside such a model
    from gen_models import shapley_by_enumeration

    inner = make_lm("llama", len(tok))
    res = tribute.explain_generation(_IntKeepLM(inner), tok, "the cat sat on", max_new_tokens=3,
                                     method="exact_shapley", removal="pad", kv_reuse=kv)
    prompt, cont, pad = res.prompt_ids, res.generated_ids, tok.pad_token_id

    def value(keep: tuple[int, ...]) -> np.ndarray:  # BOS (position 0) is never removed
        ids = [prompt[0]] + [t if k else pad for t, k in zip(prompt[1:], keep, strict=True)]
        with torch.no_grad():
            lp = torch.log_softmax(inner(input_ids=torch.tensor([ids + cont])).logits[0].double(), -1)
        per = [float(lp[len(ids) - 1 + i, c]) for i, c in enumerate(cont)]
        return np.array([*per, sum(per)])

    np.testing.assert_allclose(res.values, shapley_by_enumeration(value, len(prompt) - 1), rtol=0, atol=1e-10)
