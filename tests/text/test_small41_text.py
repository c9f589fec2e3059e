"""small41: special tokens typed in a text, the token limit of tokenizer and model, model errors
wrapped with their context, and combining marks kept in players' names.

Truths are computed outside tribute: the model run by hand on the ids with a player's tokens
replaced (for a BERT-like model reading ids only through its embedding, replacing ids by the
mask id is the same function as the game's embedding-level replacement), ``str.split()`` for
word players, the tokenizer's own ids (``tok(text)["input_ids"]``) for token counts.
"""

from __future__ import annotations

import pytest
import torch
from _text_models import minilm_tokenizer, tiny_bert
from torch import nn

import tribute
from tribute.errors import InputError
from tribute.models.text import WordTokenizer, segment


def _state(m: nn.Module) -> tuple[dict[str, torch.Tensor], bool, int]:
    hooks = sum(len(x._forward_hooks) + len(x._forward_pre_hooks) + len(x._backward_hooks)
                for x in m.modules())
    return {k: v.detach().clone() for k, v in m.state_dict().items()}, m.training, hooks


def _same_state(m: nn.Module, before: tuple[dict[str, torch.Tensor], bool, int]) -> None:
    params, training, hooks = _state(m)
    assert training == before[1] and hooks == before[2]
    for k, v in before[0].items():
        assert torch.equal(params[k], v), k


# ------------------------------------------------------------------ 1. typed special tokens
def test_a_special_token_typed_in_the_text_is_a_player_named_as_typed() -> None:
    tok = minilm_tokenizer()
    model = tiny_bert(len(tok))
    text = "hello [SEP] world"
    enc = segment(text, tok)
    assert enc.player_names == [["hello", "[SEP]", "world"]]
    ids = tok(text)["input_ids"]
    assert ids.count(tok.sep_token_id) == 2  # the typed one and the template's closing one
    attr = tribute.explain(model, text, tokenizer=tok, method="feature_ablation", target=0)
    assert attr.player_names == ["hello", "[SEP]", "world"]
    # truth: the model on the ids with the typed [SEP] (position 2) replaced by [MASK]
    with torch.no_grad():
        full = model(input_ids=torch.tensor([ids])).logits[0, 0]
        cut = list(ids)
        assert cut[2] == tok.sep_token_id
        cut[2] = tok.mask_token_id
        without = model(input_ids=torch.tensor([cut])).logits[0, 0]
    assert float(attr.values[0, 1]) == pytest.approx(float(full - without), abs=1e-10)
    assert abs(float(full - without)) > 1e-6  # the typed token is read by the model


# ------------------------------------------------------------------ 2. token limits
def test_tokenizer_limit_below_the_models_is_checked() -> None:
    tok = minilm_tokenizer()
    model = tiny_bert(len(tok))  # 64 positions
    text = "one two three four five six seven eight nine ten eleven twelve"
    n_ids = len(tok(text)["input_ids"])
    assert 8 < n_ids <= 64
    tok.model_max_length = 8
    # before: the model's 64 positions were the only limit; the tokenizer's 8 was ignored
    with pytest.raises(InputError, match=rf"{n_ids} tokens but the model takes at most 8"):
        tribute.explain(model, text, tokenizer=tok, method="feature_ablation", target=0)
    # an explicit max_length replaces the tokenizer's limit (never the model's)
    attr = tribute.explain(model, text, tokenizer=tok, method="feature_ablation", target=0,
                           max_length=n_ids)
    assert len(attr.player_names) == len(text.split())
    tok.model_max_length = 512  # larger than the model's: the model's 64 holds
    long = " ".join(["word"] * 70)
    with pytest.raises(InputError, match="but the model takes at most 64"):
        tribute.explain(model, long, tokenizer=tok, method="feature_ablation", target=0)


# ------------------------------------------------------------------ 3. model errors, marks
class _FailsWithGrad(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(12, 4)
        self.lin = nn.Linear(4, 2)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if torch.is_grad_enabled():
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (3x4 and 5x2)")
        return self.lin(self.emb(ids).mean(1))


def test_text_model_errors_are_wrapped_with_their_context_and_cause() -> None:
    tok = WordTokenizer(["the", "cat", "sat"])
    model = _FailsWithGrad().train()
    before = _state(model)
    # before: the RuntimeError reached the user raw, from deep inside the engine
    with pytest.raises(InputError, match=r"text model \(_FailsWithGrad\) failed while tribute "
                                         r"computed gradients.*'the cat sat'.*RuntimeError: mat1") as info:
        tribute.explain(model, "the cat sat", tokenizer=tok, method="integrated_gradients", target=0)
    assert isinstance(info.value.__cause__, RuntimeError)
    _same_state(model, before)


@pytest.mark.parametrize("players", ["words", "tokens"])
def test_combining_marks_stay_in_the_players_names(players: str) -> None:
    tok = minilm_tokenizer()  # strips accents: "cafe\u0301"'s token has the offsets of "cafe"
    text = "cafe\u0301 ok"
    enc = segment(text, tok, players)
    # before: ["cafe", "ok"], the accent lost from the name
    assert enc.player_names == [text.split()]
    hindi = "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e"
    names = segment(hindi, tok, players).player_names[0]
    assert "".join(names) == hindi.replace(" ", "")  # every character, vowel signs included
    if players == "words":
        assert names == hindi.split()  # before: 7 "words", split at the vowel signs


def test_combining_mark_joins_its_word_with_a_tokenizer_that_splits_it() -> None:
    wt = WordTokenizer(["cafe", "ok"])  # "\u0301" is its own (unknown) token
    enc = segment("cafe\u0301 ok", wt, "words")
    assert enc.player_names == [["cafe\u0301", "ok"]]
    assert enc.token_player.tolist() == [[0, 0, 1]]  # the accent's token belongs to its word

