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
