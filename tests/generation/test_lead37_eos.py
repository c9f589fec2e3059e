"""Greedy generation stops at every EOS id of the model, not only the tokenizer's (lead, stop 37).

Llama-3 lists several ids in ``generation_config.eos_token_id`` (``<|end_of_text|>``,
``<|eot_id|>``); ``model.generate`` stops at any of them, while tribute read only the
tokenizer's ``eos_token_id`` and explained a continuation past the model's end of turn.
"""

from __future__ import annotations

import torch
from gen_models import make_lm
from test_aud37g import _tokenizer_without_bos

import tribute


def test_greedy_stops_at_any_of_the_models_eos_ids() -> None:
    tok = _tokenizer_without_bos()
    lm = make_lm("llama", len(tok))
    free = tribute.explain_generation(lm, tok, "the cat sat on", max_new_tokens=8,
                                      method="saliency").generated_ids
    k = next(i for i, t in enumerate(free) if t not in free[:i] and i >= 1)
    lm.generation_config.eos_token_id = [tok.eos_token_id, free[k]]  # a second end-of-turn id
    res = tribute.explain_generation(lm, tok, "the cat sat on", max_new_tokens=8, method="saliency")
    assert res.generated_ids == free[: k + 1]
    ids = torch.tensor([res.prompt_ids])
    with torch.no_grad():
        want = lm.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)[0, ids.shape[1]:]
    assert res.generated_ids == want.tolist()
