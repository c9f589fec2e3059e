"""rev41b: explain_generation's refusal names which limit applied (the model's config
positions, the tokenizer's ``model_max_length``) with their values, and how to lift a
tokenizer limit below the model's positions (explain_generation has no ``max_length=``).

Truth: the numbers set here (48 positions in the model's config, the tokenizer's limit)."""

from __future__ import annotations

import pytest
from gen_models import make_lm, make_tokenizer

import tribute
from tribute.errors import InputError


def test_generation_limit_refusal_names_both_limits_and_the_fix() -> None:
    tok = make_tokenizer()
    lm = make_lm("gpt2", len(tok))  # n_positions=48
    prompt = "the cat sat on"
    n_ids = len(tok(prompt)["input_ids"])
    tok.model_max_length = n_ids + 1
    # before: "(the smaller of its config's positions and the tokenizer's model_max_length)",
    # no numbers, no way out named
    with pytest.raises(InputError, match=rf"config allows 48 positions, its tokenizer's model_max_length is "
                                         rf"{n_ids + 1} \(the smaller; .*tokenizer.model_max_length = 48"):
        tribute.explain_generation(lm, tok, prompt, max_new_tokens=3)
    with pytest.raises(InputError, match=rf"model_max_length is {n_ids + 1} .*shorten the prompt or the target"):
        tribute.explain_generation(lm, tok, prompt, target=" the cat sat")
    tok.model_max_length = 48  # the fix the message names: the model's own 48 positions hold it
    assert len(tribute.explain_generation(lm, tok, prompt, max_new_tokens=3).generated_ids) == 3
    tok.model_max_length = int(1e30)  # Hugging Face's "no limit": the config's alone, said so
    with pytest.raises(InputError, match=r"maximum length 48 \(the model's config allows 48 positions\)"):
        tribute.explain_generation(lm, tok, prompt, max_new_tokens=48)
