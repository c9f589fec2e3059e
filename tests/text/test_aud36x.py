"""Audit aud36x: text games on decoder and RoBERTa classifiers built from configs, with
word-level Hugging Face fast tokenizers built offline (the ``tokenizers`` package).

Truths are computed outside tribute: the model run by hand on the masked inputs (the removal's
embedding written into ``inputs_embeds``, or the ids of the shortened text), Shapley values by
enumeration. Models are float64, so tolerances are float64 rounding, whatever the draws.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from _text_models import all_masks, shapley_by_enumeration

import tribute
from tribute.models.text import segment

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

WORDS = ["!", "the", "cat", "sat", "on", "mat", "a", "dog", "barked", "loudly", "today"]
EOS = "<|endoftext|>"


def word_tokenizer(specials: list[str], post: Any = None, **kw: Any) -> Any:
    """A fast tokenizer over ``WORDS`` (ids 0..10), then ``specials`` (ids 11, 12, ...)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS + specials)}
    unk = kw.get("unk_token")
    raw = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    if post is not None:
        raw.post_processor = post(vocab)
    return PreTrainedTokenizerFast(tokenizer_object=raw, **kw)


def gpt2_classifier(vocab: int, pad_id: int | None, seed: int = 0) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2ForSequenceClassification

    torch.manual_seed(seed)
    settings: dict[str, Any] = dict(vocab_size=vocab, n_positions=32, n_embd=16, n_layer=2, n_head=2, num_labels=2,
                     pad_token_id=pad_id, bos_token_id=None, eos_token_id=None, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0)
    cfg: Any = GPT2Config(**settings)
    model: torch.nn.Module = GPT2ForSequenceClassification(cfg).double().eval()
    with torch.no_grad():  # larger weights: credits well above rounding
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(10)
    return model


def by_embeds(model: torch.nn.Module, ids: list[int], removed: list[bool], rid: int, target: int) -> float:
    """The model on the text's input embeddings, the removal token's row at removed tokens (the
    documented removal: same length, positions unchanged; nothing else changes)."""
    w = model.get_input_embeddings().weight.detach()  # type: ignore[operator]
    e = w[torch.tensor(ids)].clone()
    for j, r in enumerate(removed):
        if r:
            e[j] = w[rid]
    with torch.no_grad():
        return float(model(inputs_embeds=e[None]).logits[0, target])


def shapley_truth(model: torch.nn.Module, text: str, tok: Any, rid: int, target: int) -> tuple[list[float], dict]:
    enc = segment(text, tok, "words")
    ids, tp, n = enc.input_ids[0].tolist(), enc.token_player[0].tolist(), enc.n_players[0]
    v = {s: by_embeds(model, ids, [p >= 0 and s[p] == 0 for p in tp], rid, target) for s in all_masks(n)}
    return shapley_by_enumeration(v, n), v


# ------------------------------------------------------------------ F1: one function per game
def test_decoder_classifier_removal_by_its_pad_token_keeps_its_readout() -> None:
    """GPT-2's tokenizer: no mask token, unk = eos = pad, and the classifier pools at its last
    token that is not ``config.pad_token_id``. The default removal (unk) replaced ids by that
    pad id on binary masks but mixed embeddings on autograd passes: the first call on a model
    (its rows checked with autograd) and every later call gave different credits (last word
    -0.0205 vs -0.236 on one draw), and integrated gradients a completeness gap of 0.21."""
    tok = word_tokenizer([EOS], unk_token=EOS, eos_token=EOS, pad_token=EOS)
    eos = tok.convert_tokens_to_ids(EOS)
    model = gpt2_classifier(len(WORDS) + 1, pad_id=eos)
    text = "the cat sat on"
    truth, v = shapley_truth(model, text, tok, eos, 1)
    n = len(truth)
    for call in ("first", "second"):
        attr = tribute.explain(model, text, tokenizer=tok, method="exact_shapley", target=1, progress=False)
        np.testing.assert_allclose(attr.values[0], truth, rtol=0, atol=1e-12, err_msg=call)
    loo = [v[(1,) * n] - v[tuple(0 if k == j else 1 for k in range(n))] for j in range(n)]
    attr = tribute.explain(model, text, tokenizer=tok, method="feature_ablation", target=1, progress=False)
    np.testing.assert_allclose(attr.values[0], loo, rtol=0, atol=1e-12)
    ig = tribute.explain(model, text, tokenizer=tok, method="integrated_gradients", target=1, progress=False)
    full_minus_empty = v[(1,) * n] - v[(0,) * n]
    scale = max(abs(full_minus_empty), 1.0)
    assert abs(float(ig.values[0].sum()) - full_minus_empty) < 1e-3 * scale  # IG's quadrature error
    assert abs(float(np.asarray(ig.gap).ravel()[0])) < 1e-3 * scale


def test_roberta_pad_removal_keeps_positions() -> None:
    """RoBERTa numbers positions from ``input_ids != pad``: pad tokens written into the ids
    shift every later token's position (documented: positions unchanged)."""
    from tokenizers import processors
    from transformers import RobertaConfig, RobertaForSequenceClassification

    def post(vocab: dict) -> Any:
        return processors.RobertaProcessing(("</s>", vocab["</s>"]), ("<s>", vocab["<s>"]))

    tok = word_tokenizer(["<s>", "<pad>", "</s>", "<unk>", "<mask>"], post=post, bos_token="<s>",
                         eos_token="</s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                         cls_token="<s>", sep_token="</s>")
    torch.manual_seed(1)
    settings: dict[str, Any] = dict(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=40,
                        pad_token_id=tok.pad_token_id, num_labels=2, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    cfg: Any = RobertaConfig(**settings)
    model = RobertaForSequenceClassification(cfg).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(10)
    text = "the dog barked loudly"
    truth, _ = shapley_truth(model, text, tok, tok.pad_token_id, 0)
    for call in ("first", "second"):
        attr = tribute.explain(model, text, tokenizer=tok, method="exact_shapley", removal="pad",
                               target=0, progress=False)
        np.testing.assert_allclose(attr.values[0], truth, rtol=0, atol=1e-12, err_msg=call)


# ------------------------------------------------------------------ F2: the model's pad id pads
def test_gpt2_tokenizer_without_pad_token_pads_with_the_models_pad_id() -> None:
    """GPT-2's tokenizer has no pad token; the usual recipe sets ``config.pad_token_id`` to eos.
    Texts were padded with id 0 (``"!"``), so the classifier pooled a shorter text at its last
    padding position: credits of "a dog barked" next to a longer text were not its own."""
    tok = word_tokenizer([EOS], unk_token=EOS, eos_token=EOS)
    eos = tok.convert_tokens_to_ids(EOS)
    assert tok.pad_token_id is None and eos != 0
    model = gpt2_classifier(len(WORDS) + 1, pad_id=eos, seed=2)
    texts = ["the cat sat on the mat today", "a dog barked"]
    both = tribute.explain(model, texts, tokenizer=tok, method="feature_ablation", target=1, progress=False)
    for i, text in enumerate(texts):
        enc = segment(text, tok, "words")
        ids, tp, n = enc.input_ids[0].tolist(), enc.token_player[0].tolist(), enc.n_players[0]
        full = by_embeds(model, ids, [False] * len(ids), eos, 1)
        loo = [full - by_embeds(model, ids, [p == j for p in tp], eos, 1) for j in range(n)]
        np.testing.assert_allclose(both.values[i][:n], loo, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ F3: no padding seen
class NextTokenScores(torch.nn.Module):
    """A decoder's next-token scores (position -1) over a few words: a wrapper written for
    left padding, as Hugging Face batching of decoders is."""

    def __init__(self, lm: torch.nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        logits: torch.Tensor = self.lm(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits[:, -1, :4]


def _lm(vocab: int) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(3)
    cfg: Any = GPT2Config(vocab_size=vocab, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                     bos_token_id=None, eos_token_id=None, resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0)
    lm: torch.nn.Module = GPT2LMHeadModel(cfg).double().eval()
    with torch.no_grad():
        for p in lm.parameters():
            if p.ndim == 2:
                p.mul_(10)
    return lm


def _run_ids(model: torch.nn.Module, ids: list[int], target: int) -> float:
    with torch.no_grad():
        return float(model(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))[0, target])


@pytest.mark.parametrize("removal", ["pad", "delete"])
def test_last_position_wrapper_never_reads_padding(removal: str) -> None:
    """A module reading position -1 read the padding of shorter texts (right-padded) and of
    rows shortened by ``removal="delete"``: one text's credits depended on the other texts
    (0.0051 instead of 0.164 on one draw) and deletion credits were not the shortened text's."""
    tok = word_tokenizer([EOS], unk_token=EOS, eos_token=EOS, pad_token=EOS, padding_side="left")
    eos = tok.convert_tokens_to_ids(EOS)
    model = NextTokenScores(_lm(len(WORDS) + 1))
    texts = ["the cat sat on the mat today", "a dog barked"]
    both = tribute.explain(model, texts, tokenizer=tok, method="feature_ablation", removal=removal,
                           target=1, progress=False)
    for i, text in enumerate(texts):
        enc = segment(text, tok, "words")
        ids, tp, n = enc.input_ids[0].tolist(), enc.token_player[0].tolist(), enc.n_players[0]
        full = _run_ids(model, ids, 1)
        if removal == "delete":
            loo = [full - _run_ids(model, [t for t, p in zip(ids, tp) if p != j], 1) for j in range(n)]
        else:
            loo = [full - _run_ids(model, [eos if p == j else t for t, p in zip(ids, tp)], 1) for j in range(n)]
        np.testing.assert_allclose(both.values[i][:n], loo, rtol=0, atol=1e-12)
        one = tribute.explain(model, text, tokenizer=tok, method="feature_ablation", removal=removal,
                              target=1, progress=False)
        np.testing.assert_allclose(both.values[i][:n], one.values[0], rtol=0, atol=1e-12)


def test_llama_classifier_with_a_left_padding_tokenizer_batch_equals_single() -> None:
    """A Llama classifier pools at its last non-pad token, so the right padding tribute uses is
    read correctly whatever the tokenizer's padding side (right before the fixes); with
    ``config.pad_token_id`` = unk = the default removal it failed before, as GPT-2's did
    (ids replaced by the pad id move the readout). Shapley values of each text by enumeration
    on ``inputs_embeds``."""
    from tokenizers import processors
    from transformers import LlamaConfig, LlamaForSequenceClassification

    def post(vocab: dict) -> Any:
        return processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])

    tok = word_tokenizer(["<unk>", "<s>", "</s>"], post=post, unk_token="<unk>", bos_token="<s>",
                         eos_token="</s>", padding_side="left")
    torch.manual_seed(4)
    settings: dict[str, Any] = dict(vocab_size=len(WORDS) + 3, hidden_size=16, intermediate_size=32,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                      max_position_embeddings=32, num_labels=3, pad_token_id=tok.unk_token_id)
    cfg: Any = LlamaConfig(**settings)
    model = LlamaForSequenceClassification(cfg).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(10)
    texts = ["the cat sat on", "a dog"]
    both = tribute.explain(model, texts, tokenizer=tok, method="exact_shapley", target=2, progress=False)
    for i, text in enumerate(texts):
        truth, _ = shapley_truth(model, text, tok, tok.unk_token_id, 2)
        got = np.asarray(both.values[i], dtype=float)
        np.testing.assert_allclose(got[: len(truth)], truth, rtol=0, atol=1e-12)
        assert all(math.isnan(x) for x in got[len(truth):])


# ------------------------------------------------------------------ F6, F7: T5 encoder
class FirstStateHead(torch.nn.Module):
    """A classifier on a T5 encoder's first hidden state (a plain module around an HF encoder)."""

    def __init__(self, encoder: torch.nn.Module, dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(dim, 2, generator=g, dtype=torch.float64))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        out: torch.Tensor = h[:, 0] @ self.w
        return out


def test_t5_encoder_tied_embedding_and_documented_default_removal() -> None:
    """transformers 5's T5 answers get_input_embeddings() with ``shared``, a module its stack
    never calls (it calls ``encoder.embed_tokens``, tied to the same weight): the hook never ran,
    so the first call on a model gave all-zero credits, the second the right ones, and
    integrated gradients crashed. And a tokenizer with pad and unk but no mask token (T5's)
    got removal 'pad', where the documented default is the mask, else unk, else pad token."""
    from tokenizers import processors
    from transformers import T5Config, T5EncoderModel

    def post(vocab: dict) -> Any:
        return processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])

    tok = word_tokenizer(["<pad>", "</s>", "<unk>"], post=post, pad_token="<pad>", eos_token="</s>",
                         unk_token="<unk>")
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=len(WORDS) + 3, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
                   dropout_rate=0.0, pad_token_id=tok.pad_token_id)
    model = FirstStateHead(T5EncoderModel(cfg).double().eval(), 16)
    text = "a dog barked loudly"
    enc = segment(text, tok, "words")
    ids, tp, n = enc.input_ids[0].tolist(), enc.token_player[0].tolist(), enc.n_players[0]
    unk = tok.unk_token_id
    v = {s: _run_ids(model, [t if p < 0 or s[p] else unk for t, p in zip(ids, tp)], 1) for s in all_masks(n)}
    truth = shapley_by_enumeration(v, n)
    assert max(abs(x) for x in truth) > 1e-3
    for call in ("first", "second"):
        attr = tribute.explain(model, text, tokenizer=tok, method="exact_shapley", target=1, progress=False)
        assert attr.extra["removal"] == "unk"
        np.testing.assert_allclose(attr.values[0], truth, rtol=0, atol=1e-12, err_msg=call)
    ig = tribute.explain(model, text, tokenizer=tok, method="integrated_gradients", target=1, progress=False)
    assert np.max(np.abs(ig.values[0])) > 1e-3  # the embeddings were mixed (not all zero)
    # its gap is its quadrature error against the game's own v(full) - v(empty)
    miss = abs(float(ig.values[0].sum()) - (v[(1,) * n] - v[(0,) * n]))
    assert abs(abs(float(np.asarray(ig.gap).ravel()[0])) - miss) < 1e-9


def test_an_embedding_that_never_runs_is_refused_not_credited_zero() -> None:
    """A model whose input embedding module is not the one its forward pass calls: never
    all-zero credits. 0/1 masks replace the ids (rev36a: the model reads ids only by indexing
    its table, so that is the documented removal; main did it too); a removal that only exists
    on embeddings is refused with an error naming the module."""
    from tribute.errors import ModelOutputError

    class Detached(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unused = torch.nn.Embedding(len(WORDS) + 1, 4).double()  # found first, never called
            self.real = torch.nn.Parameter(torch.randn(len(WORDS) + 1, 4, dtype=torch.float64))

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
            return self.real[input_ids].sum(1)

    tok = word_tokenizer([EOS], unk_token=EOS, pad_token=EOS)
    model = Detached()
    eos = tok.convert_tokens_to_ids(EOS)
    ids = tok("the cat sat")["input_ids"]
    full = model(torch.tensor([ids]))[0, 0]
    loo = [float(full - model(torch.tensor([[*ids[:j], eos, *ids[j + 1:]]]))[0, 0]) for j in range(3)]
    attr = tribute.explain(model, "the cat sat", tokenizer=tok, method="feature_ablation", target=0,
                           progress=False)
    np.testing.assert_allclose(attr.values[0], loo, rtol=0, atol=1e-12)
    assert np.abs(loo).min() > 1e-3
    with pytest.raises(ModelOutputError, match="did not run in the model's forward pass"):
        tribute.explain(model, "the cat sat", tokenizer=tok, method="feature_ablation", target=0,
                        removal="zero", progress=False)
