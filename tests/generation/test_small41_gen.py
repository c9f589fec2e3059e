"""small41: explain_generation on a special token typed in the prompt (a player named as typed,
with or without character offsets), the tokenizer's model_max_length as a limit, and model
errors wrapped with the method's name (the model's exception kept as ``__cause__``).

Truths: the tokenizer's own ids (``tok(prompt)["input_ids"]``); the result with offsets for
the one without (same ids, same players, same credits)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from gen_models import make_lm, make_tokenizer
from torch import nn

import tribute
from tribute.errors import InputError


def _state(m: nn.Module) -> tuple[dict[str, torch.Tensor], bool, int]:
    hooks = sum(len(x._forward_hooks) + len(x._forward_pre_hooks) + len(x._backward_hooks)
                for x in m.modules())
    return {k: v.detach().clone() for k, v in m.state_dict().items()}, m.training, hooks


class _NoOffsets:
    """A Hugging Face tokenizer seen without character offsets (as a slow tokenizer is)."""

    is_fast = False

    def __init__(self, tok: Any) -> None:
        self._tok = tok
        for name in ("pad_token_id", "unk_token_id", "eos_token_id", "bos_token_id",
                     "mask_token_id", "all_special_ids"):
            setattr(self, name, getattr(tok, name))

    def __call__(self, text: str, **kw: Any) -> Any:
        return self._tok(text, **kw)

    def __len__(self) -> int:
        return len(self._tok)

    def decode(self, ids: Any) -> str:
        return str(self._tok.decode(ids))

    def convert_ids_to_tokens(self, ids: Any) -> Any:
        return self._tok.convert_ids_to_tokens(ids)


def test_explain_generation_typed_special_token_is_a_player_with_and_without_offsets() -> None:
    tok = make_tokenizer()
    lm = make_lm("gpt2", len(tok))
    prompt = "the cat [EOS] sat on"
    res = tribute.explain_generation(lm, tok, prompt, max_new_tokens=2)
    assert res.prompt_tokens == ["the", "cat", "[EOS]", "sat", "on"]
    assert res.prompt_ids == tok(prompt)["input_ids"]
    # without offsets (before: the typed [EOS] was taken for the template's and was no player)
    slow = tribute.explain_generation(lm, _NoOffsets(tok), prompt, max_new_tokens=2)
    assert slow.prompt_ids == res.prompt_ids
    assert len(slow.prompt_tokens) == 5 and slow.prompt_tokens[2] == "[EOS]"
    assert slow.generated_ids == res.generated_ids
    torch.testing.assert_close(torch.as_tensor(slow.matrix), torch.as_tensor(res.matrix),
                               rtol=1e-9, atol=1e-9)
    # the template's BOS is still no player
    assert slow.prompt_ids[0] == tok.bos_token_id


def test_explain_generation_checks_the_tokenizer_limit_too() -> None:
    tok = make_tokenizer()
    lm = make_lm("gpt2", len(tok))  # 48 positions
    prompt = "the cat sat on"
    n_ids = len(tok(prompt)["input_ids"])
    tok.model_max_length = n_ids + 1
    with pytest.raises(InputError, match=rf"= {n_ids + 3} positions exceeds the model's maximum length {n_ids + 1}"):
        tribute.explain_generation(lm, tok, prompt, max_new_tokens=3)
    res = tribute.explain_generation(lm, tok, prompt, max_new_tokens=1)
    assert len(res.generated_ids) == 1


def test_explain_generation_model_errors_are_wrapped_with_the_method() -> None:
    tok = make_tokenizer()
    lm = make_lm("gpt2", len(tok))

    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = lm

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("size mismatch in the wrapped LM")

    broken = Broken()
    before = _state(broken)
    with pytest.raises(InputError, match=r"method='kernel_shap'.*\(Broken\).*size mismatch") as info:
        tribute.explain_generation(broken, tok, "the cat sat", max_new_tokens=2, method="kernel_shap")
    assert isinstance(info.value.__cause__, RuntimeError)
    after = _state(broken)
    assert after[1:] == before[1:] and all(torch.equal(after[0][k], v) for k, v in before[0].items())
