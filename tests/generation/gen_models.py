"""Tiny causal language models and tokenizers built offline (nothing is downloaded).

Imported by the generation tests (and their conftest) as ``gen_models``."""

from __future__ import annotations

from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

CORPUS = [
    "the cat sat on the mat and the dog sat on the log",
    "a quick brown fox jumps over the lazy dog",
    "colourless green ideas sleep furiously tonight",
    "she sells sea shells by the sea shore",
    "the rain in spain stays mainly in the plain",
    "walking talking singing dancing jumping running",
] * 4


def make_tokenizer(vocab_size: int = 90) -> Any:
    """A byte-pair tokenizer trained on a tiny corpus: sub-word tokens, offsets, a BOS added
    to every text and pad/unk/eos/mask special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "[MASK]"]
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials))
    bos = tok.token_to_id("[BOS]")
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   bos_token="[BOS]", eos_token="[EOS]", mask_token="[MASK]")


def make_lm(kind: str, vocab: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> Any:
    """A randomly initialised 2-layer GPT-2 or Llama causal LM (width 32)."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    model: Any
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if kind == "gpt2":
            model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=48, n_embd=32,
                                               n_layer=2, n_head=2, bos_token_id=2, eos_token_id=3))
        else:
            model = LlamaForCausalLM(LlamaConfig(
                vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=48,
                bos_token_id=2, eos_token_id=3, pad_token_id=0))
    return model.to(dtype).eval()




def shapley_by_enumeration(value: Any, n: int) -> Any:
    """Exact Shapley values ``outputs x n`` of ``value(keep) -> outputs`` (a numpy vector for a
    0/1 tuple of length ``n``), by enumerating every coalition (the textbook formula)."""
    import itertools
    from math import factorial

    import numpy as np

    vals = {s: np.asarray(value(s), dtype=np.float64) for s in itertools.product((0, 1), repeat=n)}
    phi = np.zeros((len(vals[(1,) * n]), n))
    for s, v in vals.items():
        for i in range(n):
            if not s[i]:
                k = sum(s)
                phi[:, i] += (factorial(k) * factorial(n - k - 1) / factorial(n)
                              * (vals[(*s[:i], 1, *s[i + 1:])] - v))
    return phi
