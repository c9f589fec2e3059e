"""Models for the AttnLRP tests: tiny GPT-2/Llama/BERT built offline, next-token logits wrapper."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class NextTokenLogits(nn.Module):
    """A causal LM as a classifier: the logits of the token after each (right-padded) text."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def get_input_embeddings(self) -> nn.Module:
        emb: nn.Module = self.lm.get_input_embeddings()  # type: ignore[operator]
        return emb

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        logits: torch.Tensor = self.lm(input_ids=input_ids, attention_mask=attention_mask).logits
        last = attention_mask.long().sum(1) - 1
        return logits[torch.arange(logits.shape[0]), last]


def tiny_lm(kind: str, vocab: int, seed: int = 0, dtype: torch.dtype = torch.float64,
            attn: str = "eager") -> Any:
    """A randomly initialised 2-layer GPT-2 or Llama causal LM (width 32), eval mode."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    model: Any
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if kind == "gpt2":
            cfg: Any = GPT2Config(vocab_size=vocab, n_positions=48, n_embd=32, n_layer=2, n_head=2,
                                  bos_token_id=2, eos_token_id=3)
            cfg._attn_implementation = attn
            model = GPT2LMHeadModel(cfg)
        else:
            cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                              max_position_embeddings=48, bos_token_id=2, eos_token_id=3,
                              pad_token_id=0)
            cfg._attn_implementation = attn
            model = LlamaForCausalLM(cfg)
    return model.to(dtype).eval()
